//! ## What it does
//! Checks that every comparison in a client group query compares values of the same
//! type: `<`, `>`, `<=` and `>=` take integers, a string attribute is compared with a
//! string, an integer attribute with an integer, `authenticationName` with a string.
//! The type of an attribute is the type the clients of the policy give it.
//!
//! ## Why is this bad?
//! A comparison of mismatched types is false for every client, so the group silently
//! loses members (semantics.md §2) and its bindings grant nothing to them. (On an
//! array attribute, `!=` with an integer holds instead for every client that has it:
//! no string element equals an integer.)
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { attributes: { type: sensor, floor: 3 } }
//! clientGroups:
//!   upper: { query: "attributes.floor > '2'" }   # integer attribute, string literal
//! ```
//! Use instead: `attributes.floor > 2`.

use super::super::Context;
use crate::compiler::membership::bool_literal;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::query::{for_each_leaf, CmpOp, Literal, Operand, Query};
use std::collections::{BTreeSet, HashMap};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let mut types: HashMap<&str, BTreeSet<&'static str>> = HashMap::new();
    for c in &cx.resolved().clients {
        for (k, v) in &c.attributes {
            types.entry(k.as_str()).or_default().insert(v.value.type_name());
        }
    }
    for g in &cx.resolved().groups {
        let (Some(q), Some(text)) = (&g.query, &g.query_text) else { continue };
        for_each_leaf(q, &mut |leaf| {
            let (operand, op, literals): (&Operand, CmpOp, Vec<&Literal>) = match leaf {
                Query::Cmp { operand, op, literal, .. } => (operand, *op, vec![literal]),
                Query::In { operand, literals, .. } => (operand, CmpOp::Eq, literals.iter().collect()),
                _ => return,
            };
            for lit in literals {
                let problem = mismatch(operand, op, lit, &types);
                if let Some((message, help)) = problem {
                    let at = (operand.at().0, lit.at().1);
                    out.push(
                        Diagnostic::new(Code::QueryType, format!("in the query of group `{}`: {message}", g.name.value))
                            .at(cx.inner(text.span, &text.value, at))
                            .label(label(operand, op, lit, &types))
                            .help(help),
                    );
                }
            }
        });
    }
}

fn mismatch(
    operand: &Operand,
    op: CmpOp,
    lit: &Literal,
    types: &HashMap<&str, BTreeSet<&'static str>>,
) -> Option<(String, String)> {
    if op.is_ordering() && matches!(lit, Literal::Str(..)) {
        return Some((
            format!("`{}` compares integers only, not the string {lit}", op.as_str()),
            "use `=`, `!=` or `IN` with strings".into(),
        ));
    }
    match operand {
        Operand::AuthenticationName { .. } => match lit {
            Literal::Int(..) => Some((
                format!("`authenticationName` is a string, compared with the integer {lit}"),
                format!("quote the value: `'{lit}'`"),
            )),
            Literal::Str(..) if op.is_ordering() => None,
            Literal::Str(..) => None,
        },
        Operand::Attribute { key, .. } => {
            let known = types.get(key.as_str())?;
            let fits = match lit {
                Literal::Int(..) => known.contains("integer"),
                Literal::Str(..) => known.contains("string") || known.contains("array of strings"),
            } || match lit {
                // A boolean is compared with `'true'` or `'false'` (decision 0019).
                Literal::Str(s, _) => known.contains("boolean") && bool_literal(s).is_some(),
                Literal::Int(..) => false,
            };
            if op.is_ordering() && !known.contains("integer") {
                let held = known.iter().map(|t| article(t)).collect::<Vec<_>>().join(" or ");
                return Some((
                    format!("`{}` compares integers, but attribute `{key}` is {held} on every client that has it", op.as_str()),
                    "use `=`, `!=` or `IN` with strings".into(),
                ));
            }
            (!fits).then(|| {
                let held = known.iter().map(|t| article(t)).collect::<Vec<_>>().join(" or ");
                let help = match lit {
                    Literal::Int(i, _) => format!("quote the value to compare strings: `'{i}'`"),
                    Literal::Str(..) if known.contains("boolean") => "compare a boolean with `'true'` or `'false'`".to_string(),
                    Literal::Str(s, _) => format!("write the integer without quotes, e.g. `{s}`"),
                };
                (format!("attribute `{key}` is {held} on every client that has it, compared with {} {lit}", article(lit.type_name())), help)
            })
        }
    }
}

/// What the mismatched comparison evaluates to: false, except `!=` on an array,
/// which holds because no element has the literal's type.
fn label(operand: &Operand, op: CmpOp, lit: &Literal, types: &HashMap<&str, BTreeSet<&'static str>>) -> &'static str {
    let Operand::Attribute { key, .. } = operand else { return "always false" };
    let arrays = types.get(key.as_str()).is_some_and(|t| t.contains("array of strings"));
    match (op, lit) {
        (CmpOp::Ne, Literal::Int(..)) if arrays => "true for arrays: no element is an integer",
        _ => "always false",
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array of strings" => format!("an {type_name}"),
        "boolean" => "a boolean".to_string(),
        other => format!("a {other}"),
    }
}
