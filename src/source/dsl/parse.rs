//! The DSL's syntax: the pest grammar, limits checked before it runs, and the
//! parse tree turned into spanned statements.

use super::super::node::{Key, Node, NodeKind};
use super::super::yaml::MAX_POLICY_BYTES;
use crate::diag::span::Span;
use crate::diag::{Code, Diagnostic, Diagnostics};
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/policy.pest"]
struct DslParser;

/// One statement: a keyword, its values, and its block.
#[derive(Debug)]
pub(super) struct Stmt {
    pub(super) key: Key,
    pub(super) values: Vec<Node>,
    pub(super) block: Option<(Vec<Stmt>, Span)>,
    pub(super) span: Span,
}

fn span(pair: &Pair<Rule>) -> Span {
    Span::new(pair.as_span().start(), pair.as_span().end())
}

/// The DSL text as statements, or `None` (reported) when it does not parse or
/// is too large or too deep to parse safely.
pub(super) fn statements(text: &str, diags: &mut Diagnostics) -> Option<Vec<Stmt>> {
    if text.len() > MAX_POLICY_BYTES {
        diags.push(Diagnostic::new(
            Code::Io,
            format!(
                "policy file is {} bytes, more than the limit of {MAX_POLICY_BYTES} bytes",
                text.len()
            ),
        ));
        return None;
    }
    if let Some(at) = too_deep(text) {
        diags.push(
            Diagnostic::new(
                Code::Syntax,
                format!("invalid policy: blocks and lists nest deeper than {MAX_DEPTH} levels"),
            )
            .at(Span::new(at, at + 1))
            .label("too deep"),
        );
        return None;
    }
    let file = match DslParser::parse(Rule::file, text) {
        Ok(mut pairs) => pairs.next()?,
        Err(e) => {
            diags.push(syntax_error(&e, text));
            return None;
        }
    };
    Some(
        file.into_inner()
            .filter(|p| p.as_rule() == Rule::stmt)
            .map(stmt)
            .collect(),
    )
}

/// Blocks and lists nest at most this deep: a policy needs three levels, and the
/// parser recurses once per level, so hostile nesting must not reach it.
pub const MAX_DEPTH: usize = 32;

/// The offset of the first `{` or `[` nested deeper than [`MAX_DEPTH`], skipping
/// strings and comments.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        if in_comment {
            in_comment = b != b'\n';
        } else if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') | (false, b'\n') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'#' => in_comment = true,
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(i);
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

fn syntax_error(e: &pest::error::Error<Rule>, text: &str) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let found = text[pos.min(text.len())..].chars().next();
    let what = match found {
        None => "unexpected end of file".to_string(),
        Some('\n') | Some('\r') => "unexpected end of line".to_string(),
        Some(c) => format!("unexpected `{c}`"),
    };
    let end = (pos + found.map(char::len_utf8).unwrap_or(0)).min(text.len());
    Diagnostic::new(Code::Syntax, format!("invalid policy: {what}"))
        .at(Span::new(pos, end))
        .label("here")
        .help("statements are `KEYWORD VALUES... { BLOCK }`, one per line; quote topics and text with `\"`")
}

fn stmt(pair: Pair<Rule>) -> Stmt {
    let whole = span(&pair);
    let Some(inner) = pair.into_inner().next() else {
        return Stmt {
            key: Key {
                name: String::new(),
                span: whole,
            },
            values: Vec::new(),
            block: None,
            span: whole,
        };
    };
    match inner.as_rule() {
        Rule::group_short => {
            let mut parts = inner.into_inner();
            let kw = parts.next().map(|p| key_of(&p)).unwrap_or(Key {
                name: "group".into(),
                span: whole,
            });
            let name = parts.next().map(value).unwrap_or(Node {
                kind: NodeKind::Null,
                span: whole,
            });
            let query = parts.next().map(query_node).unwrap_or(Node {
                kind: NodeKind::Null,
                span: whole,
            });
            let query_key = Key {
                name: "query".into(),
                span: query.span,
            };
            let body = vec![Stmt {
                key: query_key,
                values: vec![query],
                block: None,
                span: whole,
            }];
            Stmt {
                key: kw,
                values: vec![name],
                block: Some((body, whole)),
                span: whole,
            }
        }
        Rule::query_stmt => {
            let mut parts = inner.into_inner();
            let kw = parts.next().map(|p| key_of(&p)).unwrap_or(Key {
                name: "query".into(),
                span: whole,
            });
            let query = parts.next().map(query_node).unwrap_or(Node {
                kind: NodeKind::Null,
                span: whole,
            });
            Stmt {
                key: kw,
                values: vec![query],
                block: None,
                span: whole,
            }
        }
        _ => {
            let mut key = Key {
                name: String::new(),
                span: whole,
            };
            let mut values = Vec::new();
            let mut block = None;
            for p in inner.into_inner() {
                match p.as_rule() {
                    Rule::key => key = key_of(&p),
                    Rule::block => {
                        let s = span(&p);
                        block = Some((
                            p.into_inner()
                                .filter(|x| x.as_rule() == Rule::stmt)
                                .map(stmt)
                                .collect(),
                            s,
                        ));
                    }
                    _ => values.push(value(p)),
                }
            }
            Stmt {
                key,
                values,
                block,
                span: whole,
            }
        }
    }
}

fn key_of(pair: &Pair<Rule>) -> Key {
    Key {
        name: pair.as_str().to_string(),
        span: span(pair),
    }
}

/// The query text without trailing blanks, spanned exactly (no quotes to skip).
fn query_node(pair: Pair<Rule>) -> Node {
    let s = pair.as_span();
    let text = pair.as_str().trim_end();
    Node {
        kind: NodeKind::Str(text.to_string()),
        span: Span::new(s.start(), s.start() + text.len()),
    }
}

fn value(pair: Pair<Rule>) -> Node {
    let s = span(&pair);
    let kind = match pair.as_rule() {
        Rule::integer => match pair.as_str().parse::<i64>() {
            Ok(i) => NodeKind::Int(i),
            Err(_) => NodeKind::BigInt(pair.as_str().to_string()),
        },
        Rule::word => match pair.as_str() {
            "true" => NodeKind::Bool(true),
            "false" => NodeKind::Bool(false),
            w => NodeKind::Str(w.to_string()),
        },
        Rule::string => NodeKind::Str(unescape(
            pair.into_inner().next().map(|c| c.as_str()).unwrap_or(""),
        )),
        Rule::list => NodeKind::Seq(pair.into_inner().map(value).collect()),
        _ => NodeKind::Null,
    };
    Node { kind, span: s }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
