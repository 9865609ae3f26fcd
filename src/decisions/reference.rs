//! The reference evaluator: a deliberately naive reading of semantics.md §2-§3 over
//! the resolved policy, with no index. It is slow and obviously right; the property
//! tests check that the index always agrees with it.

use crate::compiler::compiled::variable_value;
use crate::compiler::membership;
use crate::compiler::model::{ResolvedPolicy, ALL_GROUP};
use crate::source::model::Permission;
use crate::topic::{self, is_safe_value};

/// Every (binding, template index) that lets client `client` do `permission` on
/// `topic_or_filter`: for publish, the template matches the topic; for subscribe,
/// the filter is a subset of the template.
pub fn grants(
    policy: &ResolvedPolicy,
    client: usize,
    permission: Permission,
    topic_or_filter: &str,
) -> Vec<(usize, usize)> {
    let c = &policy.clients[client];
    if !c.is_enabled() {
        return Vec::new();
    }
    let subject = match permission {
        Permission::Publisher => {
            if topic::validate_name(topic_or_filter).is_err() {
                return Vec::new();
            }
            topic_or_filter
        }
        Permission::Subscriber => match topic::parse_subscription(topic_or_filter) {
            Ok(sub) => sub.filter,
            Err(_) => return Vec::new(),
        },
    };
    if subject.starts_with('$') {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (b, binding) in policy.bindings.iter().enumerate() {
        if binding.permission.value != permission {
            continue;
        }
        let group = &policy.groups[binding.group.value as usize];
        let member = binding.group.value == ALL_GROUP
            || group.query.as_ref().is_some_and(|q| membership::eval(q, c));
        if !member {
            continue;
        }
        let space = &policy.topic_spaces[binding.topic_space.value as usize];
        for (i, template) in space.templates.iter().enumerate() {
            let values: Vec<_> = template
                .value
                .variables()
                .map(|v| (v.clone(), variable_value(c, v)))
                .collect();
            let filter = template.value.substitute(|v| {
                values
                    .iter()
                    .find(|(k, _)| k == v)
                    .and_then(|(_, val)| val.as_deref())
                    .filter(|s| is_safe_value(s))
            });
            let Some(filter) = filter else { continue };
            let ok = match permission {
                Permission::Publisher => topic::matches(&filter, subject),
                Permission::Subscriber => topic::is_subset(
                    &topic::Filter::parse(subject),
                    &topic::Filter::parse(&filter),
                ),
            };
            if ok {
                out.push((b, i));
            }
        }
    }
    out
}

pub fn may_publish(policy: &ResolvedPolicy, client: usize, topic: &str) -> bool {
    !grants(policy, client, Permission::Publisher, topic).is_empty()
}

pub fn may_subscribe(policy: &ResolvedPolicy, client: usize, filter: &str) -> bool {
    !grants(policy, client, Permission::Subscriber, filter).is_empty()
}
