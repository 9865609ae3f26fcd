//! The decision chain behind `policy explain`: client -> groups (each query condition
//! with the client's value) -> bindings with the needed permission -> each template
//! substituted for the client, whether it matches and the first level that differs.
//! On a denial, [`super::denial`] adds the nearest miss and what would change it.

use crate::compiler::compiled::substitute_for;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::{variable_value, CompiledPolicy};
use crate::compiler::membership;
use crate::compiler::model::{Client, ALL_GROUP};
use crate::source::model::{AttrValue, Permission};
use crate::source::query::{Operand, Query};
use crate::topic::{algebra, FLevel, Filter, Vocabulary};
use crate::topic::{is_safe_value, Template, Var};
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
        super::denial::explain_denial(policy, id, permission, &asked, &mut chain);
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

/// The first level at which `asked` (a topic name, or a filter) is not inside
/// `filter`, with both levels as text.
fn first_difference(filter: &Filter, asked: &Filter) -> Option<LevelDiff> {
    let i = crate::topic::first_level_outside(filter, asked)?;
    Some(LevelDiff {
        level: i + 1,
        template: filter.levels.get(i).map(FLevel::to_string),
        topic: asked.levels.get(i).map(FLevel::to_string),
    })
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
