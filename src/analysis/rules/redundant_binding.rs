//! ## What it does
//! Warns when a permission binding grants nothing that another binding does not
//! already grant: the other binding has the same permission, its group contains every
//! member of this binding's group, and its topic space covers every template of this
//! binding's topic space.
//!
//! ## Why is this bad?
//! Bindings only grant (semantics.md §3), so the redundant one has no effect. Removing
//! it later changes nothing, which surprises whoever expects it to matter; it often
//! hides a binding meant for another group or permission.
//!
//! ## Example
//! ```yaml
//! permissionBindings:
//!   all-status:     { clientGroup: $all,    topicSpace: status, permission: subscriber }
//!   sensors-status: { clientGroup: sensors, topicSpace: status, permission: subscriber }
//! ```

use super::super::Context;
use crate::compiler::model::{Binding, TopicSpace};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::topic::{is_subset, Filter, Template};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.front_end_errors {
        return; // Resources that failed to resolve would make others look unused.
    }
    let policy = cx.resolved();
    let bindings = &policy.bindings;
    for (i, b) in bindings.iter().enumerate() {
        if cx.group_size(b.group.value) == 0 {
            continue; // An empty group is reported by its own rule.
        }
        let covering = bindings.iter().enumerate().find(|(j, other)| {
            *j != i && covers(cx, other, b) && (!covers(cx, b, other) || *j < i)
        });
        if let Some((_, other)) = covering {
            out.push(
                Diagnostic::new(
                    Code::RedundantBinding,
                    format!("binding `{}` grants nothing that binding `{}` does not already grant", b.name.value, other.name.value),
                )
                .at(b.name.span)
                .label("redundant")
                .related(other.name.span, "already grants it")
                .help("remove it, or change its group, topic space or permission to what was meant"),
            );
        }
    }
}

/// Does binding `a` grant everything binding `b` grants?
fn covers(cx: &Context, a: &Binding, b: &Binding) -> bool {
    let policy = cx.resolved();
    a.permission.value == b.permission.value
        && group_contains(cx, a.group.value, b.group.value)
        && space_covers(&policy.topic_spaces[a.topic_space.value as usize], &policy.topic_spaces[b.topic_space.value as usize])
}

/// Is every member of group `inner` a member of group `outer`? Decided per profile.
fn group_contains(cx: &Context, outer: u32, inner: u32) -> bool {
    outer == inner
        || cx
            .policy
            .profiles
            .iter()
            .enumerate()
            .filter(|(p, profile)| profile.groups.contains(&inner) && !cx.profile_members(*p).is_empty())
            .all(|(_, profile)| profile.groups.contains(&outer))
}

fn space_covers(a: &TopicSpace, b: &TopicSpace) -> bool {
    b.templates.iter().all(|t| a.templates.iter().any(|u| template_covers(&u.value, &t.value)))
}

fn template_covers(sup: &Template, sub: &Template) -> bool {
    sup == sub || (!sup.has_variables() && !sub.has_variables() && is_subset(&Filter::parse(&sub.to_string()), &Filter::parse(&sup.to_string())))
}
