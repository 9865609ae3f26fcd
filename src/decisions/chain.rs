//! The decision chain behind `policy explain`: client -> groups (each query condition
//! with the client's value) -> bindings with the needed permission -> each template
//! substituted for the client, whether it matches and the first level that differs;
//! on a denial, the nearest miss and what would change the decision.

use crate::compiler::compiled::substitute_for;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::{variable_value, CompiledPolicy};
use crate::compiler::membership;
use crate::compiler::model::{Client, ALL_GROUP};
use crate::source::model::{AttrValue, Permission};
use crate::source::query::{Operand, Query};
use crate::topic::{algebra, FLevel, Filter, Vocabulary};
use crate::topic::{is_safe_value, Level, Segment, Template, Var};
use serde::Serialize;

/// One condition (a comparison or `IN`) of a group query, evaluated for the client.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStep {
    pub condition: String,
    /// The operand (`attributes.type`, `authenticationName`).
    pub operand: String,
    /// The client's value, as text; `None` when the attribute is missing.
    pub value: Option<String>,
    pub holds: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupStep {
    pub group: String,
    /// `None` for the built-in `$all`.
    pub query: Option<String>,
    pub member: bool,
    pub conditions: Vec<ConditionStep>,
}

/// Where a substituted template and the asked topic (or filter) first part ways.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LevelDiff {
    /// 1-based level number.
    pub level: usize,
    /// The template's level there (`None`: the template has no such level).
    pub template: Option<String>,
    /// The topic's (or filter's) level there (`None`: it has no such level).
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStep {
    pub template: String,
    /// The template with the client's values; `None` when it grants this client nothing.
    pub substituted: Option<String>,
    /// Why it could not be substituted.
    pub substitution_problem: Option<String>,
    pub matches: bool,
    pub first_difference: Option<LevelDiff>,
    /// Subscribe: a topic the filter can match that this template does not allow.
    pub witness: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BindingStep {
    pub binding: String,
    pub group: String,
    pub topic_space: String,
    pub permission: &'static str,
    pub client_in_group: bool,
    pub templates: Vec<TemplateStep>,
}

/// The whole chain for one client and one question.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    /// The client's resource name (the key in `clients:`).
    pub client_name: String,
    pub enabled: bool,
    pub groups: Vec<GroupStep>,
    /// The permission the question needs (`None` for a connect without a will).
    pub permission: Option<&'static str>,
    /// What the bindings are checked against: the topic, the filter, or the will topic.
    pub checked: Option<String>,
    pub bindings: Vec<BindingStep>,
    /// On a denial: the closest thing to a grant, in words.
    pub nearest_miss: Option<String>,
    /// On a denial: changes that would allow it.
    pub would_allow: Vec<String>,
    /// Subscribe, denied: a topic the filter can match that no template allows.
    pub witness: Option<String>,
}

/// Builds the chain for client `id` asking for `permission` on `subject` (a topic for
/// publish, a filter for subscribe; `None` for a connect without a will).
pub fn build(
    policy: &CompiledPolicy,
    id: ClientId,
    permission: Option<Permission>,
    subject: Option<&str>,
    allowed: bool,
) -> Chain {
    let client = policy.client(id);
    let groups = group_steps(policy, client, id);
    let mut chain = Chain {
        client_name: client.name.value.clone(),
        enabled: client.is_enabled(),
        groups,
        permission: permission.map(Permission::as_str),
        checked: subject.map(str::to_string),
        bindings: Vec::new(),
        nearest_miss: None,
        would_allow: Vec::new(),
        witness: None,
    };
    let asked = match (permission, subject) {
        (Some(permission), Some(subject)) => {
            let subject = match permission {
                Permission::Subscriber => {
                    crate::topic::parse_subscription(subject).map_or(subject, |s| s.filter)
                }
                Permission::Publisher => subject,
            };
            let asked = Filter::parse(subject);
            chain.bindings = binding_steps(policy, id, permission, &asked);
            Some((permission, asked))
        }
        _ => None,
    };
    if !client.is_enabled() {
        // The bindings are shown, but nothing is granted to a disabled client.
        chain.nearest_miss = Some(format!("client `{}` is disabled", client.name.value));
        chain.would_allow.push(format!(
            "set `state: Enabled` on client `{}`",
            client.name.value
        ));
    } else if let (Some((permission, asked)), false) = (asked, allowed) {
        explain_denial(policy, id, permission, &asked, &mut chain);
    }
    chain
}

fn group_steps(policy: &CompiledPolicy, client: &Client, id: ClientId) -> Vec<GroupStep> {
    policy
        .policy
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| GroupStep {
            group: group.name.value.clone(),
            query: group.query.as_ref().map(|q| q.to_string()),
            member: g as u32 == ALL_GROUP || policy.is_member(id, g as u32),
            conditions: group
                .query
                .as_ref()
                .map(|q| conditions(q, client))
                .unwrap_or_default(),
        })
        .collect()
}

fn conditions(query: &Query, client: &Client) -> Vec<ConditionStep> {
    match query {
        Query::Or(parts) | Query::And(parts) => {
            parts.iter().flat_map(|p| conditions(p, client)).collect()
        }
        Query::Cmp { operand, .. } | Query::In { operand, .. } => vec![ConditionStep {
            condition: query.to_string(),
            operand: operand.to_string(),
            value: operand_text(operand, client),
            holds: membership::eval(query, client),
        }],
    }
}

fn operand_text(operand: &Operand, client: &Client) -> Option<String> {
    match operand {
        Operand::AuthenticationName { .. } => Some(client.authentication_name.value.clone()),
        Operand::Attribute { key, .. } => client.attributes.get(key).map(|v| attr_text(&v.value)),
    }
}

fn attr_text(v: &AttrValue) -> String {
    match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Array(items) => format!("[{}]", items.join(", ")),
    }
}

fn binding_steps(
    policy: &CompiledPolicy,
    id: ClientId,
    permission: Permission,
    asked: &Filter,
) -> Vec<BindingStep> {
    let p = &policy.policy;
    p.bindings
        .iter()
        .filter(|b| b.permission.value == permission)
        .map(|b| {
            let space = &p.topic_spaces[b.topic_space.value as usize];
            BindingStep {
                binding: b.name.value.clone(),
                group: p.groups[b.group.value as usize].name.value.clone(),
                topic_space: space.name.value.clone(),
                permission: permission.as_str(),
                client_in_group: policy.is_member(id, b.group.value),
                templates: space
                    .templates
                    .iter()
                    .map(|t| template_step(policy, id, &t.value, permission, asked))
                    .collect(),
            }
        })
        .collect()
}

fn template_step(
    policy: &CompiledPolicy,
    id: ClientId,
    template: &Template,
    permission: Permission,
    asked: &Filter,
) -> TemplateStep {
    let mut step = TemplateStep {
        template: template.to_string(),
        substituted: None,
        substitution_problem: None,
        matches: false,
        first_difference: None,
        witness: None,
    };
    let Some(filter) = substitute_for(policy, id, template) else {
        step.substitution_problem = substitution_problem(policy.client(id), template);
        return step;
    };
    step.substituted = Some(filter.to_string());
    let asked_text = asked.to_string();
    match permission {
        Permission::Publisher => {
            step.matches = filter.matches(&asked_text);
            if !step.matches {
                step.first_difference = first_difference(&filter, asked);
            }
        }
        Permission::Subscriber => {
            // The same subset rule the decision uses.
            step.matches = algebra::is_subset(asked, &filter);
            if !step.matches {
                step.first_difference = first_difference(&filter, asked);
                step.witness = algebra::witness(asked, &[&filter], &Vocabulary::new());
            }
        }
    }
    step
}

/// Why `template` grants `client` nothing: a variable without a usable value.
fn substitution_problem(client: &Client, template: &Template) -> Option<String> {
    template.variables().find_map(|v| match variable_value(client, v) {
        None => Some(match v {
            Var::Attribute(k) if client.attributes.contains_key(k) => {
                format!("`{v}`: attributes.{k} of `{}` is an array, which cannot be substituted", client.name.value)
            }
            Var::Attribute(k) => format!("`{v}`: client `{}` has no attribute `{k}`", client.name.value),
            Var::AuthenticationName => format!("`{v}` has no value"),
        }),
        Some(val) if !is_safe_value(&val) => {
            Some(format!("`{v}`: value `{val}` contains `/`, `+`, `#` or starts with `$` and would change the template's shape"))
        }
        Some(_) => None,
    })
}

fn level_text(l: &FLevel) -> String {
    match l {
        FLevel::Lit(s) => s.clone(),
        FLevel::Plus => "+".into(),
        FLevel::Hash => "#".into(),
    }
}

fn diff_at(i: usize, t: Option<&FLevel>, a: Option<&FLevel>) -> Option<LevelDiff> {
    Some(LevelDiff {
        level: i + 1,
        template: t.map(level_text),
        topic: a.map(level_text),
    })
}

/// The first level at which `asked` (a topic name, or a filter) is not inside
/// `filter`. A topic name has no wildcard, so one definition serves both.
fn first_difference(filter: &Filter, asked: &Filter) -> Option<LevelDiff> {
    let n = filter.levels.len().max(asked.levels.len());
    for i in 0..n {
        let (f, a) = (filter.levels.get(i), asked.levels.get(i));
        match (f, a) {
            (Some(FLevel::Hash), _) => return None,
            (Some(FLevel::Plus), Some(FLevel::Lit(v))) if !(i == 0 && v.starts_with('$')) => {}
            (Some(FLevel::Plus), Some(FLevel::Plus)) => {}
            (Some(FLevel::Lit(x)), Some(FLevel::Lit(y))) if x == y => {}
            _ => return diff_at(i, f, a),
        }
    }
    None
}

/// Fills in the nearest miss, what would allow the access, and (subscribe) the witness.
fn explain_denial(
    policy: &CompiledPolicy,
    id: ClientId,
    permission: Permission,
    asked: &Filter,
    chain: &mut Chain,
) {
    let client = policy.client(id);
    let who = &client.authentication_name.value;
    let kind = permission.as_str();
    if asked
        .levels
        .first()
        .is_some_and(|l| matches!(l, FLevel::Lit(s) if s.starts_with('$')))
    {
        chain.nearest_miss = Some("topics starting with `$` are reserved for the broker".into());
        return;
    }
    if permission == Permission::Subscriber {
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
        chain.witness = algebra::witness(asked, &refs, &Vocabulary::new());
    }
    let mut wrong_group: Option<(&BindingStep, &TemplateStep)> = None;
    let mut wrong_group_shape: Option<(&BindingStep, &TemplateStep)> = None;
    let mut other_value: Option<(&BindingStep, &TemplateStep)> = None;
    let mut closest: Option<(&BindingStep, &TemplateStep, usize)> = None;
    let mut unusable: Option<(&BindingStep, &TemplateStep)> = None;
    for b in &chain.bindings {
        for (i, t) in b.templates.iter().enumerate() {
            let fits = shape_fits(policy, b, i, asked, permission);
            if !b.client_in_group {
                if t.matches {
                    wrong_group = wrong_group.or(Some((b, t)));
                } else if fits {
                    wrong_group_shape = wrong_group_shape.or(Some((b, t)));
                }
                continue;
            }
            if t.substitution_problem.is_some() {
                unusable = unusable.or(Some((b, t)));
            }
            if t.substituted.is_some() && !t.matches {
                if fits {
                    other_value = other_value.or(Some((b, t)));
                }
                let agree = t.first_difference.as_ref().map(|d| d.level).unwrap_or(0);
                if closest.is_none_or(|(_, _, best)| agree > best) {
                    closest = Some((b, t, agree));
                }
            }
        }
    }
    let not_in_group = |b: &BindingStep| {
        let group = chain.groups.iter().find(|g| g.group == b.group);
        let because = group.map(failed_conditions).unwrap_or_default();
        let allow = format!(
            "make client `{}` match the query of group `{}`: {}",
            client.name.value,
            b.group,
            group.and_then(|g| g.query.clone()).unwrap_or_default()
        );
        (
            format!("client is not in group `{}`{because}", b.group),
            allow,
        )
    };
    let (miss, allow) = if let Some((b, t)) = wrong_group {
        let (why, allow) = not_in_group(b);
        (
            format!(
                "template `{}` of binding `{}` would allow it, but {why}",
                t.template, b.binding
            ),
            allow,
        )
    } else if let Some((b, t)) = other_value.or(closest.map(|(b, t, _)| (b, t))) {
        let sub = t.substituted.clone().unwrap_or_default();
        let miss = match permission {
            Permission::Publisher => format!("template `{}` gives {who} `{sub}`, not `{asked}`", t.template),
            Permission::Subscriber => match &t.witness {
                Some(w) => format!("template `{}` gives {who} `{sub}`, which does not contain `{asked}` (it can match `{w}`)", t.template),
                None => format!("template `{}` gives {who} `{sub}`, which does not contain `{asked}`", t.template),
            },
        };
        let allow = variable_hint(policy, b, t, asked).unwrap_or_else(|| {
            format!("add a template {} `{asked}` to a topic space bound with {kind} to a group of `{who}`", relation(permission))
        });
        // A template of another group with the right shape says more than a distant one of the client's own.
        match (other_value, wrong_group_shape) {
            (None, Some((wb, wt))) => {
                let (why, allow) = not_in_group(wb);
                let extra = wt
                    .substitution_problem
                    .as_ref()
                    .map(|p| format!("; it would also need {p}"))
                    .unwrap_or_default();
                (format!("template `{}` of binding `{}` has the shape of `{asked}`, but {why}{extra}", wt.template, wb.binding), allow)
            }
            _ => (miss, allow),
        }
    } else if let Some((wb, wt)) = wrong_group_shape {
        let (why, allow) = not_in_group(wb);
        let extra = wt
            .substitution_problem
            .as_ref()
            .map(|p| format!("; it would also need {p}"))
            .unwrap_or_default();
        (
            format!(
                "template `{}` of binding `{}` has the shape of `{asked}`, but {why}{extra}",
                wt.template, wb.binding
            ),
            allow,
        )
    } else if let Some((b, t)) = unusable {
        (
            format!(
                "template `{}` of binding `{}` grants {who} nothing: {}",
                t.template,
                b.binding,
                t.substitution_problem.clone().unwrap_or_default()
            ),
            format!(
                "give client `{}` a single, safe value for the template's variables",
                client.name.value
            ),
        )
    } else {
        let mine: Vec<&str> = chain
            .groups
            .iter()
            .filter(|g| g.member)
            .map(|g| g.group.as_str())
            .collect();
        (
            format!(
                "no {kind} binding applies to a group of {who} (groups: {})",
                mine.join(", ")
            ),
            format!(
                "bind a topic space with a template {} `{asked}` as {kind} to one of these groups",
                relation(permission)
            ),
        )
    };
    chain.nearest_miss = Some(miss);
    chain.would_allow.push(allow);
}

/// Does template `i` of binding step `b`, with every variable level taken as `+`, match
/// (publish) or contain (subscribe) what is asked? Then only values stand in the way.
fn shape_fits(
    policy: &CompiledPolicy,
    b: &BindingStep,
    i: usize,
    asked: &Filter,
    permission: Permission,
) -> bool {
    let Some(space) = policy.policy.space_by_name(&b.topic_space) else {
        return false;
    };
    let Some(t) = policy.policy.topic_spaces[space as usize].templates.get(i) else {
        return false;
    };
    let Some(shape) = t.value.skeleton() else {
        return false;
    };
    match permission {
        Permission::Publisher => shape.matches(&asked.to_string()),
        Permission::Subscriber => algebra::is_subset(asked, &shape),
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

/// When the differing level is one whole variable, the value that would have matched:
/// "only a client whose `$<client.authenticationName>` is `sensor1` may".
fn variable_hint(
    policy: &CompiledPolicy,
    b: &BindingStep,
    t: &TemplateStep,
    asked: &Filter,
) -> Option<String> {
    let d = t.first_difference.as_ref()?;
    let space = policy.policy.space_by_name(&b.topic_space)?;
    let template = policy.policy.topic_spaces[space as usize]
        .templates
        .iter()
        .find(|x| x.value.to_string() == t.template)?;
    let Level::Pattern(segs) = template.value.levels.get(d.level - 1)? else {
        return None;
    };
    let [Segment::Var(v)] = segs.as_slice() else {
        return None;
    };
    let FLevel::Lit(wanted) = asked.levels.get(d.level - 1)? else {
        return None;
    };
    Some(format!(
        "the template allows `{asked}` only to a client whose `{v}` is `{wanted}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_points_at_the_level() {
        let d = first_difference(
            &Filter::parse("clients/sensor2/status"),
            &Filter::parse("clients/sensor1/status"),
        );
        assert_eq!(
            d,
            Some(LevelDiff {
                level: 2,
                template: Some("sensor2".into()),
                topic: Some("sensor1".into())
            })
        );
        let d = first_difference(&Filter::parse("a/b"), &Filter::parse("a/b/c"));
        assert_eq!(
            d,
            Some(LevelDiff {
                level: 3,
                template: None,
                topic: Some("c".into())
            })
        );
        let d = first_difference(
            &Filter::parse("clients/+/status"),
            &Filter::parse("clients/#"),
        );
        assert_eq!(
            d,
            Some(LevelDiff {
                level: 2,
                template: Some("+".into()),
                topic: Some("#".into())
            })
        );
        assert_eq!(
            first_difference(&Filter::parse("a/#"), &Filter::parse("a/+/b")),
            None
        );
    }
}
