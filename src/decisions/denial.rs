//! Denial diagnosis for `policy explain`: given the chain of a denied request, the
//! nearest miss (the closest thing to a grant, in words) and a change that would
//! allow it, and for a subscription a topic the filter can match that nothing allows.
//!
//! The steps: a reserved `$` topic ends it; otherwise the templates of the chain are
//! sorted into candidates ([`Candidates`]), and the best candidate, in a fixed order
//! of preference, says what is missing.

use super::chain::{BindingStep, Chain, GroupStep, TemplateStep};
use crate::compiler::compiled::{ClientId, CompiledPolicy};
use crate::compiler::model::Client;
use crate::source::model::Permission;
use crate::topic::{algebra, FLevel, Filter, Level, Segment, Vocabulary};

/// Fills in the nearest miss, what would allow the access, and (subscribe) the witness.
pub(super) fn explain_denial(
    policy: &CompiledPolicy,
    id: ClientId,
    permission: Permission,
    asked: &Filter,
    chain: &mut Chain,
) {
    if asked.is_reserved() {
        chain.nearest_miss = Some("topics starting with `$` are reserved for the broker".into());
        return;
    }
    if permission == Permission::Subscriber {
        chain.witness = witness(chain, asked);
    }
    let denial = Denial {
        policy,
        client: policy.client(id),
        groups: &chain.groups,
        permission,
        asked,
    };
    let (miss, allow) = denial.nearest_miss(&Candidates::collect(&denial, &chain.bindings));
    chain.nearest_miss = Some(miss);
    chain.would_allow.push(allow);
}

/// A topic the asked filter can match that none of the client's own substituted
/// templates allows.
fn witness(chain: &Chain, asked: &Filter) -> Option<String> {
    let own: Vec<Filter> = chain
        .bindings
        .iter()
        .filter(|b| b.client_in_group)
        .flat_map(|b| {
            b.templates
                .iter()
                .filter_map(|t| t.substituted.as_deref())
                .map(Filter::parse)
        })
        .collect();
    let refs: Vec<&Filter> = own.iter().collect();
    algebra::witness(asked, &refs, &Vocabulary::new())
}

/// A template of a binding: the pair every candidate names.
type Pick<'a> = (&'a BindingStep, &'a TemplateStep);

/// The templates of the chain that come closest to a grant, each the first of its
/// kind in policy order.
#[derive(Default)]
struct Candidates<'a> {
    /// Of a group the client is not in, and it matches what is asked.
    wrong_group: Option<Pick<'a>>,
    /// Of a group the client is not in, and its shape (variables as `+`) fits.
    wrong_group_shape: Option<Pick<'a>>,
    /// The client's own, its shape fits: only the client's values stand in the way.
    other_value: Option<Pick<'a>>,
    /// The client's own, substituted, agreeing with what is asked on the most levels.
    closest: Option<(Pick<'a>, usize)>,
    /// The client's own, but it cannot be substituted for the client.
    unusable: Option<Pick<'a>>,
}

impl<'a> Candidates<'a> {
    fn collect(d: &Denial<'_>, bindings: &'a [BindingStep]) -> Self {
        let mut c = Candidates::default();
        for b in bindings {
            for (i, t) in b.templates.iter().enumerate() {
                let fits = d.shape_fits(b, i);
                if !b.client_in_group {
                    if t.matches {
                        c.wrong_group = c.wrong_group.or(Some((b, t)));
                    } else if fits {
                        c.wrong_group_shape = c.wrong_group_shape.or(Some((b, t)));
                    }
                    continue;
                }
                if t.substitution_problem.is_some() {
                    c.unusable = c.unusable.or(Some((b, t)));
                }
                if t.substituted.is_some() && !t.matches {
                    if fits {
                        c.other_value = c.other_value.or(Some((b, t)));
                    }
                    let agree = t.first_difference.as_ref().map_or(0, |d| d.level);
                    if c.closest.is_none_or(|(_, best)| agree > best) {
                        c.closest = Some(((b, t), agree));
                    }
                }
            }
        }
        c
    }
}

/// One denied request, and what the diagnosis reads of it.
struct Denial<'a> {
    policy: &'a CompiledPolicy,
    client: &'a Client,
    groups: &'a [GroupStep],
    permission: Permission,
    asked: &'a Filter,
}

impl Denial<'_> {
    fn who(&self) -> &str {
        &self.client.authentication_name.value
    }

    /// The nearest miss and a change that would allow the access, from the best
    /// candidate: a template that would allow it in another group; one of the
    /// client's own with another value; one of another group with the right shape;
    /// one that cannot be substituted; else no binding at all.
    fn nearest_miss(&self, c: &Candidates<'_>) -> (String, String) {
        if let Some(pick) = c.wrong_group {
            self.allowed_in_another_group(pick)
        } else if let Some(pick) = c.other_value.or(c.closest.map(|(pick, _)| pick)) {
            match (c.other_value, c.wrong_group_shape) {
                // A template of another group with the right shape says more than a
                // distant one of the client's own.
                (None, Some(shape)) => self.shape_in_another_group(shape),
                _ => self.own_template_misses(pick),
            }
        } else if let Some(shape) = c.wrong_group_shape {
            self.shape_in_another_group(shape)
        } else if let Some(pick) = c.unusable {
            self.not_substitutable(pick)
        } else {
            self.no_binding()
        }
    }

    fn allowed_in_another_group(&self, (b, t): Pick<'_>) -> (String, String) {
        let (why, allow) = self.not_in_group(b);
        (
            format!(
                "template `{}` of binding `{}` would allow it, but {why}",
                t.template, b.binding
            ),
            allow,
        )
    }

    fn shape_in_another_group(&self, (b, t): Pick<'_>) -> (String, String) {
        let (why, allow) = self.not_in_group(b);
        let extra = t
            .substitution_problem
            .as_ref()
            .map(|p| format!("; it would also need {p}"))
            .unwrap_or_default();
        (
            format!(
                "template `{}` of binding `{}` has the shape of `{}`, but {why}{extra}",
                t.template, b.binding, self.asked
            ),
            allow,
        )
    }

    fn own_template_misses(&self, (b, t): Pick<'_>) -> (String, String) {
        let (who, asked) = (self.who(), self.asked);
        let sub = t.substituted.clone().unwrap_or_default();
        let miss = match (self.permission, &t.witness) {
            (Permission::Publisher, _) => {
                format!("template `{}` gives {who} `{sub}`, not `{asked}`", t.template)
            }
            (Permission::Subscriber, Some(w)) => format!(
                "template `{}` gives {who} `{sub}`, which does not contain `{asked}` (it can match `{w}`)",
                t.template
            ),
            (Permission::Subscriber, None) => format!(
                "template `{}` gives {who} `{sub}`, which does not contain `{asked}`",
                t.template
            ),
        };
        let allow = self.variable_hint(b, t).unwrap_or_else(|| {
            format!(
                "add a template {} `{asked}` to a topic space bound with {} to a group of `{who}`",
                relation(self.permission),
                self.permission.as_str()
            )
        });
        (miss, allow)
    }

    fn not_substitutable(&self, (b, t): Pick<'_>) -> (String, String) {
        (
            format!(
                "template `{}` of binding `{}` grants {} nothing: {}",
                t.template,
                b.binding,
                self.who(),
                t.substitution_problem.clone().unwrap_or_default()
            ),
            format!(
                "give client `{}` a single, safe value for the template's variables",
                self.client.name.value
            ),
        )
    }

    fn no_binding(&self) -> (String, String) {
        let kind = self.permission.as_str();
        let mine: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| g.member)
            .map(|g| g.group.as_str())
            .collect();
        (
            format!(
                "no {kind} binding applies to a group of {} (groups: {})",
                self.who(),
                mine.join(", ")
            ),
            format!(
                "bind a topic space with a template {} `{}` as {kind} to one of these groups",
                relation(self.permission),
                self.asked
            ),
        )
    }

    /// Why the client is not in the binding's group, and how to put it there.
    fn not_in_group(&self, b: &BindingStep) -> (String, String) {
        let group = self.groups.iter().find(|g| g.group == b.group);
        let because = group.map(failed_conditions).unwrap_or_default();
        let allow = format!(
            "make client `{}` match the query of group `{}`: {}",
            self.client.name.value,
            b.group,
            group.and_then(|g| g.query.clone()).unwrap_or_default()
        );
        (
            format!("client is not in group `{}`{because}", b.group),
            allow,
        )
    }

    /// Does template `i` of binding step `b`, with every variable level taken as `+`,
    /// match (publish) or contain (subscribe) what is asked? Then only values stand in
    /// the way.
    fn shape_fits(&self, b: &BindingStep, i: usize) -> bool {
        let Some(space) = self.policy.policy.space_by_name(&b.topic_space) else {
            return false;
        };
        let Some(t) = self.policy.policy.topic_spaces[space as usize]
            .templates
            .get(i)
        else {
            return false;
        };
        let Some(shape) = t.value.skeleton() else {
            return false;
        };
        match self.permission {
            Permission::Publisher => shape.matches(&self.asked.to_string()),
            Permission::Subscriber => algebra::is_subset(self.asked, &shape),
        }
    }

    /// When the differing level is one whole variable, the value that would have
    /// matched: "only a client whose `$<client.authenticationName>` is `sensor1` may".
    fn variable_hint(&self, b: &BindingStep, t: &TemplateStep) -> Option<String> {
        let d = t.first_difference.as_ref()?;
        let space = self.policy.policy.space_by_name(&b.topic_space)?;
        let template = self.policy.policy.topic_spaces[space as usize]
            .templates
            .iter()
            .find(|x| x.value.to_string() == t.template)?;
        let Level::Pattern(segs) = template.value.levels.get(d.level - 1)? else {
            return None;
        };
        let [Segment::Var(v)] = segs.as_slice() else {
            return None;
        };
        let FLevel::Lit(wanted) = self.asked.levels.get(d.level - 1)? else {
            return None;
        };
        Some(format!(
            "the template allows `{}` only to a client whose `{v}` is `{wanted}`",
            self.asked
        ))
    }
}

/// How a template must relate to what is asked: match a topic, contain a filter.
fn relation(permission: Permission) -> &'static str {
    match permission {
        Permission::Publisher => "matching",
        Permission::Subscriber => "containing",
    }
}

/// ` because attributes.type is `actuator`` for a group the client is not in.
fn failed_conditions(g: &GroupStep) -> String {
    let failed: Vec<String> = g
        .conditions
        .iter()
        .filter(|c| !c.holds)
        .map(|c| match &c.value {
            Some(v) => format!("{} is `{v}` (needs {})", c.operand, c.condition),
            None => format!("{} is missing (needs {})", c.operand, c.condition),
        })
        .collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!(" because {}", failed.join(" and "))
    }
}
