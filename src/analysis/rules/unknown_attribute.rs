//! ## What it does
//! Warns when a client group query names an attribute that no client of the policy
//! has.
//!
//! ## Why is this bad?
//! A missing attribute makes every comparison on it false, `!=` included
//! (semantics.md §2), so the comparison never holds. It is usually a misspelt key.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { attributes: { type: sensor } }
//! clientGroups:
//!   sensors: { query: "attributes.typ = 'sensor'" }
//! ```
//! Use instead: `attributes.type = 'sensor'`.

use super::super::Context;
use crate::diag::{suggestion, Code, Diagnostic, Diagnostics};
use crate::source::query::{for_each_leaf, Operand, Query};
use std::collections::BTreeSet;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let known: BTreeSet<&str> = cx.resolved().clients.iter().flat_map(|c| c.attributes.keys().map(String::as_str)).collect();
    for g in &cx.resolved().groups {
        let (Some(q), Some(text)) = (&g.query, &g.query_text) else { continue };
        for_each_leaf(q, &mut |leaf| {
            let operand = match leaf {
                Query::Cmp { operand, .. } | Query::In { operand, .. } => operand,
                _ => return,
            };
            if let Operand::Attribute { key, at } = operand {
                if !known.contains(key.as_str()) {
                    out.push(
                        Diagnostic::new(Code::UnknownAttribute, format!("no client has attribute `{key}` used by group `{}`", g.name.value))
                            .at(cx.inner(text.span, &text.value, *at))
                            .label("no client has it: always false")
                            .help(suggestion(key, known.iter().copied())),
                    );
                }
            }
        });
    }
}
