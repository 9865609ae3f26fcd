//! ## What it does
//! Warns when a client group's query matches no client of the policy.
//!
//! ## Why is this bad?
//! The group's bindings grant nothing to anyone. It is often a query that does not
//! say what was meant (a misspelt value, `AND` where `OR` was meant), so the clients
//! it should hold are refused at the broker.
//!
//! ## Example
//! ```yaml
//! clientGroups:
//!   sensors: { query: "attributes.type = 'Sensor'" }   # clients say `sensor`
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.front_end_errors {
        return; // Resources that failed to resolve would make others look unused.
    }
    for (g, group) in cx.resolved().groups.iter().enumerate() {
        // `$all` is empty only in a policy without clients; a query that did not parse is reported already.
        if group.is_builtin() || group.query.is_none() || cx.group_size(g as u32) > 0 {
            continue;
        }
        let query = group.query_text.as_ref().map(|q| q.value.as_str()).unwrap_or("");
        out.push(
            Diagnostic::new(Code::EmptyGroup, format!("client group `{}` matches no client", group.name.value))
                .at(group.name.span)
                .label("no members")
                .help(format!("no client satisfies `{query}`")),
        );
    }
}
