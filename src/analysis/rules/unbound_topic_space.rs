//! ## What it does
//! Warns when a topic space is named by no permission binding.
//!
//! ## Why is this bad?
//! A topic space grants nothing until a binding gives it to a group, so its topics are
//! refused to everyone. It is either left over or missing its binding.
//!
//! ## Example
//! ```yaml
//! topicSpaces:
//!   alarms: { topicTemplates: [ "alarms/#" ] }
//! permissionBindings: {}    # nothing names `alarms`
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.front_end_errors {
        return; // Resources that failed to resolve would make others look unused.
    }
    let policy = cx.resolved();
    for (s, space) in policy.topic_spaces.iter().enumerate() {
        if policy.bindings.iter().any(|b| b.topic_space.value as usize == s) {
            continue;
        }
        out.push(
            Diagnostic::new(Code::UnboundTopicSpace, format!("topic space `{}` is bound to no client group", space.name.value))
                .at(space.name.span)
                .label("unused")
                .help("add a permission binding for it, or remove it"),
        );
    }
}
