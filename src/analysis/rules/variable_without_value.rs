//! ## What it does
//! Warns when a template of a bound topic space uses `$<client.attributes.KEY>` and
//! some enabled members of the bound group lack attribute `KEY` or hold it as an
//! array. The finding names them.
//!
//! ## Why is this bad?
//! Such a template grants nothing to those clients (semantics.md §3): they are in the
//! group, yet the binding gives them nothing, and the broker refuses them with
//! "Not authorized".
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { attributes: { type: sensor, line: l1 } }
//!   sensor2: { attributes: { type: sensor } }            # no `line`
//! topicSpaces:
//!   lines: { topicTemplates: [ "lines/$<client.attributes.line>/#" ] }
//! ```

use super::super::Context;
use crate::compiler::compiled::ClientId;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::model::AttrValue;
use crate::source::topic::Var;
use std::collections::BTreeSet;

const NAMED: usize = 3;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    for b in &policy.bindings {
        let space = &policy.topic_spaces[b.topic_space.value as usize];
        let group = &policy.groups[b.group.value as usize];
        for t in &space.templates {
            let keys: BTreeSet<&str> = t
                .value
                .variables()
                .filter_map(|v| match v {
                    Var::Attribute(k) => Some(k.as_str()),
                    Var::AuthenticationName => None,
                })
                .collect();
            for key in keys {
                let mut named: Vec<ClientId> = Vec::new();
                let mut total = 0;
                for c in cx.group_members(b.group.value) {
                    let client = cx.policy.client(c);
                    let usable = client.is_enabled()
                        && matches!(client.attributes.get(key).map(|v| &v.value), Some(AttrValue::Str(_) | AttrValue::Int(_)));
                    if client.is_enabled() && !usable {
                        total += 1;
                        if named.len() < NAMED {
                            named.push(c);
                        }
                    }
                }
                if total == 0 {
                    continue;
                }
                let clients = cx.name_list(&named, total);
                out.push(
                    Diagnostic::new(
                        Code::VariableWithoutValue,
                        format!(
                            "template `{}` grants nothing to {total} member{} of group `{}` without a single value of attribute `{key}`: {clients}",
                            t.value,
                            if total == 1 { "" } else { "s" },
                            group.name.value
                        ),
                    )
                    .at(t.span)
                    .label(format!("needs `attributes.{key}`"))
                    .related(b.name.span, format!("binding `{}` grants it to group `{}`", b.name.value, group.name.value))
                    .help(format!("give these clients a string or integer attribute `{key}`, or narrow the group's query")),
                );
            }
        }
    }
}
