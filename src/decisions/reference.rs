//! The reference evaluator: a deliberately naive reading of semantics.md §2-§3 over
//! the resolved policy, with no index. It is slow and obviously right; the property
//! tests check that the index always agrees with it.
//!
//! It shares nothing with the fast path but the policy model and the topic module's
//! validation and matching primitives: group queries, variable values and template
//! substitution are evaluated here, on their own, so that a bug in the compiler's
//! membership or the index's substitution shows up as a disagreement
//! (`tests/differential.rs`) instead of being repeated on both sides.

use crate::compiler::model::{Client, ResolvedPolicy, ALL_GROUP};
use crate::source::model::{AttrValue, Permission};
use crate::source::query::{CmpOp, Literal, Operand, Query};
use crate::topic::{self, Level, Segment, Template, Var};

/// Every (binding, template index) that lets client `client` do `permission` on
/// `topic_or_filter`: for publish, the template matches the topic; for subscribe,
/// the filter is a subset of the template.
pub fn grants(
    policy: &ResolvedPolicy,
    client: usize,
    permission: Permission,
    topic_or_filter: &str,
) -> Vec<(usize, usize)> {
    let subject = match permission {
        Permission::Publisher => publishable(topic_or_filter),
        Permission::Subscriber => subscribable(topic_or_filter),
    };
    let Some(subject) = subject else {
        return Vec::new();
    };
    granted_templates(policy, client, permission, |filter| match permission {
        Permission::Publisher => topic::matches(filter, subject),
        Permission::Subscriber => topic::is_subset(
            &topic::Filter::parse(subject),
            &topic::Filter::parse(filter),
        ),
    })
}

pub fn may_publish(policy: &ResolvedPolicy, client: usize, topic: &str) -> bool {
    !grants(policy, client, Permission::Publisher, topic).is_empty()
}

pub fn may_subscribe(policy: &ResolvedPolicy, client: usize, filter: &str) -> bool {
    !grants(policy, client, Permission::Subscriber, filter).is_empty()
}

/// May `client` receive a message published on `topic`? Only what can be published
/// is received, and then through a subscriber template that matches it.
pub fn may_receive(policy: &ResolvedPolicy, client: usize, topic: &str) -> bool {
    let Some(topic) = publishable(topic) else {
        return false;
    };
    !granted_templates(policy, client, Permission::Subscriber, |filter| {
        topic::matches(filter, topic)
    })
    .is_empty()
}

/// Is `client` a member of group `group`?
pub fn is_member(policy: &ResolvedPolicy, client: usize, group: usize) -> bool {
    if group == ALL_GROUP as usize {
        return true;
    }
    let (Some(c), Some(g)) = (policy.clients.get(client), policy.groups.get(group)) else {
        return false;
    };
    g.query.as_ref().is_some_and(|q| holds(q, c))
}

/// A topic name a client may publish: valid and not reserved.
fn publishable(topic: &str) -> Option<&str> {
    (topic::validate_name(topic).is_ok() && !topic.starts_with('$')).then_some(topic)
}

/// The filter a subscription is authorized as (`$share/NAME/F` as `F`): valid and not reserved.
fn subscribable(filter: &str) -> Option<&str> {
    let inner = topic::parse_subscription(filter).ok()?.filter;
    (!inner.starts_with('$')).then_some(inner)
}

/// The (binding, template) pairs granting `client` `permission` whose template,
/// substituted for the client, `accepts`.
fn granted_templates(
    policy: &ResolvedPolicy,
    client: usize,
    permission: Permission,
    accepts: impl Fn(&str) -> bool,
) -> Vec<(usize, usize)> {
    let Some(c) = policy.clients.get(client) else {
        return Vec::new();
    };
    if !c.is_enabled() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (b, binding) in policy.bindings.iter().enumerate() {
        if binding.permission.value != permission
            || !is_member(policy, client, binding.group.value as usize)
        {
            continue;
        }
        let Some(space) = policy.topic_spaces.get(binding.topic_space.value as usize) else {
            continue;
        };
        for (i, template) in space.templates.iter().enumerate() {
            if substituted(&template.value, c).is_some_and(|f| accepts(&f)) {
                out.push((b, i));
            }
        }
    }
    out
}

// ---- Group queries (semantics.md §2) ----

/// Does `query` hold for `client`? Walked with an explicit stack, not recursion:
/// the nesting depth comes from the policy.
fn holds(query: &Query, client: &Client) -> bool {
    enum Step<'q> {
        Visit(&'q Query),
        /// Replace the last `n` results by their OR (`any`) or AND.
        Combine {
            any: bool,
            n: usize,
        },
    }
    let mut todo = vec![Step::Visit(query)];
    let mut results: Vec<bool> = Vec::new();
    while let Some(step) = todo.pop() {
        match step {
            Step::Visit(Query::Or(parts)) | Step::Visit(Query::And(parts)) => {
                let any = matches!(step, Step::Visit(Query::Or(_)));
                todo.push(Step::Combine {
                    any,
                    n: parts.len(),
                });
                todo.extend(parts.iter().map(Step::Visit));
            }
            Step::Visit(leaf) => results.push(leaf_holds(leaf, client)),
            Step::Combine { any, n } => {
                let from = results.len().saturating_sub(n);
                let parts = results.split_off(from);
                results.push(if any {
                    parts.contains(&true)
                } else {
                    !parts.contains(&false)
                });
            }
        }
    }
    results.pop().unwrap_or(false)
}

/// What an operand is for one client.
enum Value<'c> {
    /// A string; the authentication name compares ignoring case.
    Text {
        text: &'c str,
        ignore_case: bool,
    },
    Int(i64),
    /// Equals the string literal `'true'` or `'false'`, in any case (decision 0019).
    Bool(bool),
    List(&'c [String]),
}

fn value_of<'c>(operand: &Operand, client: &'c Client) -> Option<Value<'c>> {
    match operand {
        Operand::AuthenticationName { .. } => Some(Value::Text {
            text: &client.authentication_name.value,
            ignore_case: true,
        }),
        Operand::Attribute { key, .. } => Some(match &client.attributes.get(key)?.value {
            AttrValue::Str(s) => Value::Text {
                text: s,
                ignore_case: false,
            },
            AttrValue::Int(i) => Value::Int(*i),
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Array(items) => Value::List(items),
        }),
    }
}

fn leaf_holds(leaf: &Query, client: &Client) -> bool {
    match leaf {
        Query::Cmp {
            operand,
            op,
            literal,
            ..
        } => value_of(operand, client).is_some_and(|v| compare(&v, *op, literal)),
        Query::In {
            operand, literals, ..
        } => value_of(operand, client)
            .is_some_and(|v| literals.iter().any(|l| compare(&v, CmpOp::Eq, l))),
        Query::Or(_) | Query::And(_) => false,
    }
}

/// One comparison. A missing value never gets here (every comparison on it is false).
fn compare(value: &Value, op: CmpOp, literal: &Literal) -> bool {
    match value {
        // Membership: `=` some element equals the literal, `!=` none does (an integer
        // literal equals no string element). Order means nothing on a list.
        Value::List(items) => {
            let found = match literal {
                Literal::Str(s, _) => items.contains(s),
                Literal::Int(..) => false,
            };
            match op {
                CmpOp::Eq => found,
                CmpOp::Ne => !found,
                _ => false,
            }
        }
        Value::Text { text, ignore_case } => {
            let Literal::Str(s, _) = literal else {
                return false;
            };
            let equal = if *ignore_case {
                text.to_lowercase() == s.to_lowercase()
            } else {
                text == s
            };
            match op {
                CmpOp::Eq => equal,
                CmpOp::Ne => !equal,
                _ => false,
            }
        }
        Value::Bool(b) => {
            let Literal::Str(s, _) = literal else {
                return false;
            };
            let l = match s.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return false,
            };
            match op {
                CmpOp::Eq => *b == l,
                CmpOp::Ne => *b != l,
                _ => false,
            }
        }
        Value::Int(v) => {
            let Literal::Int(l, _) = literal else {
                return false;
            };
            match op {
                CmpOp::Eq => v == l,
                CmpOp::Ne => v != l,
                CmpOp::Lt => v < l,
                CmpOp::Gt => v > l,
                CmpOp::Le => v <= l,
                CmpOp::Ge => v >= l,
            }
        }
    }
}

// ---- Substitution (semantics.md §3) ----

/// The client's text for a variable: none for a missing or array attribute, and
/// none for a value that would change the template's shape.
fn variable_text(client: &Client, var: &Var) -> Option<String> {
    let text = match var {
        Var::AuthenticationName => client.authentication_name.value.clone(),
        Var::Attribute(key) => match &client.attributes.get(key)?.value {
            AttrValue::Str(s) => s.clone(),
            AttrValue::Int(i) => format!("{i}"),
            // A boolean fills no template variable (decision 0019).
            AttrValue::Bool(_) | AttrValue::Array(_) => return None,
        },
    };
    let changes_shape =
        text.starts_with('$') || text.chars().any(|ch| matches!(ch, '/' | '+' | '#' | '\0'));
    (!changes_shape).then_some(text)
}

/// The template as a plain filter for `client`, or none when a variable has no usable value.
fn substituted(template: &Template, client: &Client) -> Option<String> {
    let mut levels = Vec::with_capacity(template.levels.len());
    for level in &template.levels {
        levels.push(match level {
            Level::Hash => "#".to_string(),
            Level::Plus => "+".to_string(),
            Level::Literal(text) => text.clone(),
            Level::Pattern(segments) => {
                let mut text = String::new();
                for segment in segments {
                    match segment {
                        Segment::Text(t) => text.push_str(t),
                        Segment::Var(v) => text.push_str(&variable_text(client, v)?),
                    }
                }
                text
            }
        });
    }
    Some(levels.join("/"))
}
