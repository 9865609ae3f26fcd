//! Client group queries (semantics.md §2): parsing with `grammar/query.pest` into an
//! AST whose nodes keep their byte offsets inside the query string.

use pest::iterators::Pair;
use pest::Parser;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/query.pest"]
struct QueryParser;

/// A byte range inside the query text.
pub type Offsets = (usize, usize);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Or(Vec<Query>),
    And(Vec<Query>),
    Cmp {
        operand: Operand,
        op: CmpOp,
        literal: Literal,
        at: Offsets,
    },
    In {
        operand: Operand,
        literals: Vec<Literal>,
        at: Offsets,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operand {
    /// `attributes.KEY`
    Attribute { key: String, at: Offsets },
    /// `authenticationName`
    AuthenticationName { at: Offsets },
}

impl Operand {
    pub fn at(&self) -> Offsets {
        match self {
            Operand::Attribute { at, .. } | Operand::AuthenticationName { at } => *at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
        }
    }
    /// `<`, `>`, `<=`, `>=` compare integers only.
    pub fn is_ordering(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Gt | CmpOp::Le | CmpOp::Ge)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Literal {
    Str(String, Offsets),
    Int(i64, Offsets),
}

impl Literal {
    pub fn at(&self) -> Offsets {
        match self {
            Literal::Str(_, at) | Literal::Int(_, at) => *at,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Literal::Str(..) => "string",
            Literal::Int(..) => "integer",
        }
    }
}

/// A query that does not parse: message and byte offsets inside the query text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
    pub at: Offsets,
}

pub fn parse(text: &str) -> Result<Query, QueryError> {
    let mut pairs = QueryParser::parse(Rule::query, text).map_err(|e| pest_error(e, text))?;
    let query = pairs.next().and_then(|q| q.into_inner().next());
    match query {
        Some(or) => build_or(or),
        None => Err(QueryError {
            message: "empty query".into(),
            at: (0, text.len()),
        }),
    }
}

fn pest_error(e: pest::error::Error<Rule>, text: &str) -> QueryError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let found = text[pos.min(text.len())..].chars().next();
    let expected = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe(positives),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let message = match found {
        None if text.trim().is_empty() => {
            "empty query: expected a comparison such as `attributes.type = 'sensor'`".to_string()
        }
        None => format!("unexpected end of query: expected {expected}"),
        Some(c) => {
            let word: String = text[pos..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .take(20)
                .collect();
            if word.eq_ignore_ascii_case("not") {
                "`NOT` is not part of Event Grid's query language".to_string()
            } else {
                format!(
                    "unexpected `{}`: expected {expected}",
                    if word.is_empty() { c.to_string() } else { word }
                )
            }
        }
    };
    let end = (pos + found.map(char::len_utf8).unwrap_or(0)).min(text.len());
    QueryError {
        message,
        at: (pos, end),
    }
}

fn describe(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules
        .iter()
        .map(|r| match r {
            Rule::attr_operand | Rule::auth_operand => "`attributes.KEY` or `authenticationName`",
            Rule::attr_key => "an attribute name",
            Rule::cmp_op => "a comparison (`=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`)",
            Rule::kw_in => "`IN`",
            Rule::kw_or => "`OR`",
            Rule::kw_and => "`AND`",
            Rule::sq_string | Rule::dq_string | Rule::integer => "a quoted string or an integer",
            Rule::group => "`(`",
            Rule::EOI => "end of query",
            _ => "a comparison",
        })
        .collect();
    names.dedup();
    names.join(" or ")
}

fn offsets(pair: &Pair<Rule>) -> Offsets {
    let s = pair.as_span();
    (s.start(), s.end())
}

fn build_or(pair: Pair<Rule>) -> Result<Query, QueryError> {
    let mut parts = Vec::new();
    for p in pair.into_inner() {
        if p.as_rule() == Rule::and_expr {
            parts.push(build_and(p)?);
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Query::Or(parts)
    })
}

fn build_and(pair: Pair<Rule>) -> Result<Query, QueryError> {
    let mut parts = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::group => {
                if let Some(inner) = p.into_inner().next() {
                    parts.push(build_or(inner)?);
                }
            }
            Rule::cmp_expr => parts.push(build_cmp(p)?),
            Rule::in_expr => parts.push(build_in(p)?),
            _ => {}
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Query::And(parts)
    })
}

fn build_operand(pair: Pair<Rule>) -> Operand {
    let at = offsets(&pair);
    match pair.as_rule() {
        Rule::attr_operand => {
            let key = pair
                .into_inner()
                .next()
                .map(|k| k.as_str().to_string())
                .unwrap_or_default();
            Operand::Attribute { key, at }
        }
        _ => Operand::AuthenticationName { at },
    }
}

fn build_literal(pair: Pair<Rule>) -> Result<Literal, QueryError> {
    let at = offsets(&pair);
    match pair.as_rule() {
        Rule::integer => pair
            .as_str()
            .parse::<i64>()
            .map(|i| Literal::Int(i, at))
            .map_err(|_| QueryError {
                message: format!("integer `{}` is out of the 64-bit range", pair.as_str()),
                at,
            }),
        _ => Ok(Literal::Str(
            pair.into_inner()
                .next()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            at,
        )),
    }
}

fn build_cmp(pair: Pair<Rule>) -> Result<Query, QueryError> {
    let at = offsets(&pair);
    let mut inner = pair.into_inner();
    let (Some(operand), Some(op), Some(lit)) = (inner.next(), inner.next(), inner.next()) else {
        return Err(QueryError {
            message: "incomplete comparison".into(),
            at,
        });
    };
    let op = match op.as_str() {
        "=" => CmpOp::Eq,
        "!=" | "<>" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        ">" => CmpOp::Gt,
        "<=" => CmpOp::Le,
        _ => CmpOp::Ge,
    };
    Ok(Query::Cmp {
        operand: build_operand(operand),
        op,
        literal: build_literal(lit)?,
        at,
    })
}

fn build_in(pair: Pair<Rule>) -> Result<Query, QueryError> {
    let at = offsets(&pair);
    let mut inner = pair.into_inner();
    let Some(operand) = inner.next() else {
        return Err(QueryError {
            message: "incomplete IN".into(),
            at,
        });
    };
    let literals = inner
        .filter(|p| p.as_rule() != Rule::kw_in)
        .map(build_literal)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Query::In {
        operand: build_operand(operand),
        literals,
        at,
    })
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s, _) if s.contains('\'') => write!(f, "\"{s}\""),
            Literal::Str(s, _) => write!(f, "'{s}'"),
            Literal::Int(i, _) => write!(f, "{i}"),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Attribute { key, .. } => write!(f, "attributes.{key}"),
            Operand::AuthenticationName { .. } => f.write_str("authenticationName"),
        }
    }
}

impl fmt::Display for Query {
    /// Canonical text: keywords upper-case, single spaces, parentheses only where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Or(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" OR ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            Query::And(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" AND ")?;
                    }
                    match p {
                        Query::Or(_) => write!(f, "({p})")?,
                        _ => write!(f, "{p}")?,
                    }
                }
                Ok(())
            }
            Query::Cmp {
                operand,
                op,
                literal,
                ..
            } => write!(f, "{operand} {} {literal}", op.as_str()),
            Query::In {
                operand, literals, ..
            } => {
                write!(f, "{operand} IN [")?;
                for (i, l) in literals.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Does `authenticationName` equal `literal` in a query? Authentication names compare
/// ignoring case (Unicode lowercase on both sides), as the broker compares them at
/// CONNECT and as their uniqueness is checked (semantics.md §1, §2).
pub fn authentication_name_matches(authentication_name: &str, literal: &str) -> bool {
    authentication_name == literal || authentication_name.to_lowercase() == literal.to_lowercase()
}

/// Calls `f` on every comparison of the query, in source order.
pub fn for_each_leaf<'a>(q: &'a Query, f: &mut impl FnMut(&'a Query)) {
    match q {
        Query::Or(parts) | Query::And(parts) => parts.iter().for_each(|p| for_each_leaf(p, f)),
        leaf => f(leaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_binds_tighter() {
        let q = parse("attributes.a = 'x' OR attributes.b = 1 and attributes.c in ['p', \"q\"]")
            .unwrap();
        assert_eq!(
            q.to_string(),
            "attributes.a = 'x' OR attributes.b = 1 AND attributes.c IN ['p', 'q']"
        );
        assert!(matches!(q, Query::Or(ref v) if v.len() == 2));
    }

    #[test]
    fn parentheses_and_all_operators() {
        for op in ["=", "!=", "<>", "<", ">", "<=", ">="] {
            parse(&format!("(attributes.floor {op} 3)")).unwrap();
        }
        let q = parse("(attributes.a = 'x' OR attributes.b = 'y') AND authenticationName <> 'z'")
            .unwrap();
        assert_eq!(
            q.to_string(),
            "(attributes.a = 'x' OR attributes.b = 'y') AND authenticationName != 'z'"
        );
    }

    #[test]
    fn errors_carry_the_column() {
        let e = parse("attributes.type = ").unwrap_err();
        assert_eq!(e.at.0, 18, "{e:?}");
        let e = parse("attributes.type == 'x'").unwrap_err();
        assert_eq!(e.at.0, 17, "{e:?}");
        let e = parse("NOT attributes.type = 'x'").unwrap_err();
        assert!(e.message.contains("NOT"), "{e:?}");
        let e = parse("attributes.type = 'x' AND").unwrap_err();
        assert!(e.message.contains("end of query"), "{e:?}");
        assert!(parse("").is_err());
        assert!(parse("attributes.x = 99999999999999999999").is_err());
        assert!(parse("attributes.x = 'unterminated").is_err());
        assert!(parse("attributes.x IN []").is_err());
    }

    #[test]
    fn keywords_are_case_insensitive_and_need_a_boundary() {
        parse("attributes.a = 1 Or attributes.b = 2 aNd attributes.c iN [1]").unwrap();
        assert!(parse("attributes.a = 1 ORattributes.b = 2").is_err());
    }
}
