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
use crate::topic::Var;
use std::collections::{BTreeSet, HashMap};

const NAMED: usize = 3;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    let mut cache: HashMap<(u32, &str), (usize, Vec<ClientId>)> = HashMap::new();
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
                // Bindings of one group often share keys: count each (group, key) once.
                let (total, named) = cache
                    .entry((b.group.value, key))
                    .or_insert_with(|| lacking(cx, b.group.value, key))
                    .clone();
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

/// How many enabled members of `group` have no single value of attribute `key`, and
/// the first few of them.
fn lacking(cx: &Context, group: u32, key: &str) -> (usize, Vec<ClientId>) {
    let mut named = Vec::new();
    let mut total = 0;
    for c in cx.group_members(group) {
        let client = cx.policy.client(c);
        let usable = matches!(client.attributes.get(key).map(|v| &v.value), Some(AttrValue::Str(_) | AttrValue::Int(_)));
        if client.is_enabled() && !usable {
            total += 1;
            if named.len() < NAMED {
                named.push(c);
            }
        }
    }
    (total, named)
}
