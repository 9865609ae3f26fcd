//! ## What it does
//! Warns when a client group query compares `authenticationName` (with `=`, `!=`,
//! `<>` or `IN`) with a literal that equals a client's authentication name only when
//! case is ignored, e.g. `authenticationName = 'SENSOR1'` for the client `sensor1`.
//!
//! ## Why is this bad?
//! topicgate compares authentication names ignoring case everywhere, in group queries
//! as at CONNECT (semantics.md §2), so the query does select that client here. Azure
//! Event Grid does not document how its queries compare authentication names: the
//! same policy deployed there may leave the client out of the group (or, with `!=`,
//! in it). Writing the name exactly as the client's `authenticationName` means the
//! same thing under either rule.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { authenticationName: Sensor-1 }
//! clientGroups:
//!   first: { query: "authenticationName = 'sensor-1'" }
//! ```
//! Use instead: `authenticationName = 'Sensor-1'`.

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::query::{authentication_name_matches, for_each_leaf, CmpOp, Literal, Operand, Query};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let clients = &cx.resolved().clients;
    for g in &cx.resolved().groups {
        let (Some(q), Some(text)) = (&g.query, &g.query_text) else { continue };
        for_each_leaf(q, &mut |leaf| {
            let literals: Vec<&Literal> = match leaf {
                Query::Cmp { operand: Operand::AuthenticationName { .. }, op: CmpOp::Eq | CmpOp::Ne, literal, .. } => vec![literal],
                Query::In { operand: Operand::AuthenticationName { .. }, literals, .. } => literals.iter().collect(),
                _ => return,
            };
            for lit in literals {
                let Literal::Str(written, at) = lit else { continue };
                // Authentication names are unique ignoring case (TG007): at most one client.
                let differs_in_case = clients.iter().find(|c| {
                    let name = &c.authentication_name.value;
                    name != written && authentication_name_matches(name, written)
                });
                if let Some(c) = differs_in_case {
                    let name = &c.authentication_name.value;
                    out.push(
                        Diagnostic::new(
                            Code::AuthenticationNameCase,
                            format!("in the query of group `{}`: `{written}` matches the authentication name `{name}` of client `{}` only ignoring case", g.name.value, c.name.value),
                        )
                        .at(cx.inner(text.span, &text.value, *at))
                        .label("differs in case")
                        .help(format!("write it exactly as the client's authenticationName: `'{name}'`")),
                    );
                }
            }
        });
    }
}
