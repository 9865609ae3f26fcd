//! Group membership: evaluating a group query against one client (semantics.md §2).

use super::model::Client;
use crate::source::model::AttrValue;
use crate::source::query::{authentication_name_matches, CmpOp, Literal, Operand, Query};

/// The value an operand takes for a client: `None` when the attribute is missing.
fn operand_value<'a>(operand: &Operand, client: &'a Client) -> Option<OperandValue<'a>> {
    match operand {
        Operand::AuthenticationName { .. } => {
            Some(OperandValue::AuthName(&client.authentication_name.value))
        }
        Operand::Attribute { key, .. } => client
            .attributes
            .get(key)
            .map(|v| OperandValue::Attr(&v.value)),
    }
}

enum OperandValue<'a> {
    /// Authentication names compare case-insensitively, as the broker compares them.
    AuthName(&'a str),
    Attr(&'a AttrValue),
}

/// Does `query` hold for `client`? A missing attribute makes every comparison on
/// it false, including `!=` (decision); mismatched types compare false.
pub fn eval(query: &Query, client: &Client) -> bool {
    match query {
        Query::Or(parts) => parts.iter().any(|p| eval(p, client)),
        Query::And(parts) => parts.iter().all(|p| eval(p, client)),
        Query::Cmp {
            operand,
            op,
            literal,
            ..
        } => match operand_value(operand, client) {
            None => false,
            Some(v) => compare(&v, *op, literal),
        },
        Query::In {
            operand, literals, ..
        } => match operand_value(operand, client) {
            None => false,
            Some(v) => literals.iter().any(|l| compare(&v, CmpOp::Eq, l)),
        },
    }
}

fn compare(value: &OperandValue, op: CmpOp, literal: &Literal) -> bool {
    match (value, literal) {
        (OperandValue::AuthName(name), Literal::Str(s, _)) => match op {
            CmpOp::Eq => authentication_name_matches(name, s),
            CmpOp::Ne => !authentication_name_matches(name, s),
            _ => false,
        },
        (OperandValue::Attr(AttrValue::Str(v)), Literal::Str(s, _)) => match op {
            CmpOp::Eq => v == s,
            CmpOp::Ne => v != s,
            _ => false,
        },
        (OperandValue::Attr(AttrValue::Int(v)), Literal::Int(i, _)) => match op {
            CmpOp::Eq => v == i,
            CmpOp::Ne => v != i,
            CmpOp::Lt => v < i,
            CmpOp::Gt => v > i,
            CmpOp::Le => v <= i,
            CmpOp::Ge => v >= i,
        },
        // A boolean equals the string literal `'true'` or `'false'` (any case): the
        // query language has no boolean literal (decision 0019). Any other literal is
        // a type mismatch, false for `!=` too.
        (OperandValue::Attr(AttrValue::Bool(b)), Literal::Str(s, _)) => match bool_literal(s) {
            Some(l) => match op {
                CmpOp::Eq => *b == l,
                CmpOp::Ne => *b != l,
                _ => false,
            },
            None => false,
        },
        // On an array, `=` and `IN` mean membership; `!=` means no element matches,
        // whatever the literal's type: no string element equals an integer.
        (OperandValue::Attr(AttrValue::Array(items)), literal) => {
            let has = match literal {
                Literal::Str(s, _) => items.iter().any(|i| i == s),
                Literal::Int(..) => false,
            };
            match op {
                CmpOp::Eq => has,
                CmpOp::Ne => !has,
                _ => false,
            }
        }
        // A string compared with an integer, or the reverse, is false, `!=` included.
        _ => false,
    }
}

/// The boolean a query's string literal stands for: `'true'` or `'false'`, any case.
pub fn bool_literal(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}
