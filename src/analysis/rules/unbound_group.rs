//! ## What it does
//! Warns when a client group is named by no permission binding.
//!
//! ## Why is this bad?
//! A group grants nothing by itself: only bindings do. An unbound group is either
//! left over from an edit or a binding that was forgotten, and its clients lack the
//! access the group was made for.
//!
//! ## Example
//! ```yaml
//! clientGroups:
//!   cameras: { query: "attributes.type = 'camera'" }
//! permissionBindings: {}    # nothing names `cameras`
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.front_end_errors {
        return; // Resources that failed to resolve would make others look unused.
    }
    let policy = cx.resolved();
    for (g, group) in policy.groups.iter().enumerate() {
        if group.is_builtin() || policy.bindings.iter().any(|b| b.group.value as usize == g) {
            continue;
        }
        out.push(
            Diagnostic::new(Code::UnboundGroup, format!("client group `{}` is bound to no topic space", group.name.value))
                .at(group.name.span)
                .label("unused")
                .help("add a permission binding for it, or remove it"),
        );
    }
}
