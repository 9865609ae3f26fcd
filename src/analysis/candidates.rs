//! The bindings that could grant a topic to someone: used to tell a user which
//! binding would grant a will topic or an intent, and why it does not grant it to
//! this client (not a member of the group, or the template's variables take other
//! values for this client).

use super::Context;
use crate::compiler::compiled::{variable_value, ClientId};
use crate::compiler::model::BindingId;
use crate::source::model::Permission;
use crate::topic::{self, is_safe_value};

/// A binding whose template matches `subject` when its variables may take any value.
pub struct Candidate {
    pub binding: BindingId,
    pub template: usize,
}

/// Publisher (or subscriber) bindings with a template that would match `subject` (a
/// topic name, or with `filter` a filter that must be contained) for some values of
/// its variables.
pub fn candidates(
    cx: &Context,
    permission: Permission,
    subject: &str,
    filter: bool,
) -> Vec<Candidate> {
    let policy = cx.resolved();
    let levels: Vec<&str> = topic::trie::levels(subject).collect();
    let mut out = Vec::new();
    for (b, binding) in policy.bindings.iter().enumerate() {
        if binding.permission.value != permission {
            continue;
        }
        let space = &policy.topic_spaces[binding.topic_space.value as usize];
        if let Some(i) = space
            .templates
            .iter()
            .position(|t| t.value.loosely_matches(&levels, filter))
        {
            out.push(Candidate {
                binding: b as BindingId,
                template: i,
            });
        }
    }
    out
}

/// Why candidate `c` does not grant `subject` to `client`, as a label for its binding.
pub fn why_not(cx: &Context, client: ClientId, c: &Candidate) -> String {
    let policy = cx.resolved();
    let b = &policy.bindings[c.binding as usize];
    let group = &policy.groups[b.group.value as usize].name.value;
    let who = &cx.policy.client(client).name.value;
    let template = &policy.topic_spaces[b.topic_space.value as usize].templates[c.template].value;
    if !cx.policy.is_member(client, b.group.value) {
        return format!(
            "binding `{}` grants `{template}` to group `{group}`, which `{who}` is not in",
            b.name.value
        );
    }
    match own_topic(cx, client, c) {
        Some(own) => format!(
            "binding `{}` grants `{template}`, which for `{who}` is `{own}`",
            b.name.value
        ),
        None => format!(
            "binding `{}` grants `{template}`, which `{who}` has no value for",
            b.name.value
        ),
    }
}

/// The candidate's template substituted with `client`'s own values.
pub fn own_topic(cx: &Context, client: ClientId, c: &Candidate) -> Option<String> {
    let policy = cx.resolved();
    let b = &policy.bindings[c.binding as usize];
    let template = &policy.topic_spaces[b.topic_space.value as usize].templates[c.template].value;
    let data = cx.policy.client(client);
    let values: Vec<_> = template
        .variables()
        .map(|v| (v, variable_value(data, v).filter(|s| is_safe_value(s))))
        .collect();
    template.substitute(|v| {
        values
            .iter()
            .find(|(k, _)| *k == v)
            .and_then(|(_, x)| x.as_deref())
    })
}
