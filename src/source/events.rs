//! The fast path of the YAML front end: the spanned tree built straight from the
//! parser's events (granit-parser, the parser under serde-saphyr).
//!
//! Going through serde cost a `Spanned` wrapper (a location map visited per node),
//! a duplicate-key fingerprint per key and the generic event replay machinery; for
//! 100,000 clients that was most of `policy check`. A policy is almost always plain
//! YAML: no anchors, no tags, strings and small integers. This builder handles
//! exactly that subset and answers `None` for anything else (a syntax error, an
//! anchor or alias, a tag, a float, a duplicate key, a limit reached), so that the
//! caller re-reads the file through serde-saphyr, which then decides and reports as
//! it always did. Within the subset both paths build the same tree
//! (`tests/yaml_event_path.rs` compares them on generated documents and policies).

use super::node::{Key, Node, NodeKind};
use crate::diag::span::Span;
use granit_parser::{Event, Parser, ScalarStyle};
use rustc_hash::FxHashSet;
use std::borrow::Cow;

/// The limits of serde-saphyr's budget that this path must not go beyond: past
/// them, the serde path is asked so that it reports the breach as before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_events: usize,
}

/// Builds the tree, or `None` when the text needs the serde path (see the module doc).
pub(crate) fn tree(
    text: &str,
    limits: Limits,
    parser_options: granit_parser::Options,
) -> Option<Node> {
    Builder::new(limits).run(Parser::new_from_str_with_options(text, parser_options))
}

enum Frame {
    Seq {
        span: Span,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        entries: Vec<(Key, Node)>,
        /// The key read, waiting for its value.
        key: Option<Key>,
    },
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
    events: usize,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            root: None,
            documents: 0,
            nodes: 0,
            events: 0,
        }
    }

    fn run<'a, T: granit_parser::BorrowedInput<'a>>(
        mut self,
        parser: Parser<'a, T>,
    ) -> Option<Node> {
        for item in parser {
            // A syntax error: the serde path reports it, with its message and position.
            let (event, span) = item.ok()?;
            self.events += 1;
            if self.events >= self.limits.max_events {
                return None;
            }
            let span = byte_span(&span)?;
            match event {
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
                // A `%YAML` directive may change how scalars read; one document only.
                Event::DocumentStart(_, version) => {
                    self.documents += 1;
                    if version.is_some() || self.documents > 1 {
                        return None;
                    }
                }
                Event::Scalar(value, style, anchor, tag) => {
                    if anchor != 0 || tag.is_some() {
                        return None;
                    }
                    self.scalar(value, style, span)?;
                }
                Event::SequenceStart(_, anchor, tag) => {
                    if anchor != 0 || tag.is_some() {
                        return None;
                    }
                    self.open(Frame::Seq {
                        span,
                        items: Vec::new(),
                    })?;
                }
                Event::MappingStart(_, anchor, tag) => {
                    if anchor != 0 || tag.is_some() {
                        return None;
                    }
                    self.open(Frame::Map {
                        span,
                        entries: Vec::new(),
                        key: None,
                    })?;
                }
                Event::SequenceEnd | Event::MappingEnd => self.close()?,
                // Anchors and aliases are rare in policies and need the serde path's
                // replay limits (alias bombs).
                Event::Alias(_) | Event::Anchor(..) | Event::UnresolvedAlias(_) => return None,
                // Comments are switched off; anything newer is the serde path's business.
                _ => return None,
            }
        }
        if !self.stack.is_empty() {
            return None;
        }
        // A document with no node (only `---` or comments) is left to the serde path.
        self.root
    }

    fn count_node(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes < self.limits.max_nodes).then_some(())
    }

    fn open(&mut self, frame: Frame) -> Option<()> {
        self.count_node()?;
        // A collection as a mapping key is not something a policy has.
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return None;
        }
        if self.stack.len() + 1 >= self.limits.max_depth {
            return None;
        }
        self.stack.push(frame);
        Some(())
    }

    fn close(&mut self) -> Option<()> {
        let node = match self.stack.pop()? {
            Frame::Seq { span, items } => Node {
                kind: NodeKind::Seq(items),
                span,
            },
            Frame::Map { span, entries, key } => {
                if key.is_some() || has_duplicate_key(&entries) {
                    return None;
                }
                Node {
                    kind: NodeKind::Map(entries),
                    span,
                }
            }
        };
        self.place(node)
    }

    fn scalar(&mut self, value: Cow<'_, str>, style: ScalarStyle, span: Span) -> Option<()> {
        self.count_node()?;
        let kind = resolve_scalar(value, style)?;
        if let Some(Frame::Map {
            key: key @ None, ..
        }) = self.stack.last_mut()
        {
            // `<<` is a merge key, which the serde path expands.
            if style == ScalarStyle::Plain && matches!(&kind, NodeKind::Str(s) if s == "<<") {
                return None;
            }
            *key = Some(Key {
                name: key_text(kind),
                span,
            });
            return Some(());
        }
        self.place(Node { kind, span })
    }

    /// Puts a finished node where it belongs: the root, a list item or a mapping value.
    fn place(&mut self, node: Node) -> Option<()> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return None;
                }
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => {
                let key = key.take()?;
                entries.push((key, node));
            }
        }
        Some(())
    }
}

fn byte_span(span: &granit_parser::Span) -> Option<Span> {
    let range = span.byte_range()?;
    Some(Span::new(range.start, range.end))
}

/// A key's text as the serde path spells it (see `KeyText` in `node.rs`).
fn key_text(kind: NodeKind) -> String {
    match kind {
        NodeKind::Str(s) | NodeKind::BigInt(s) => s,
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Bool(b) => b.to_string(),
        NodeKind::Null => "null".into(),
        // `resolve_scalar` never gives these for a scalar; floats go to the serde path.
        NodeKind::Float(f) => f.to_string(),
        NodeKind::Seq(_) | NodeKind::Map(_) => String::new(),
    }
}

/// Two keys with the same text: the serde path decides (an error, or two distinct
/// keys such as `"true"` and `true`).
fn has_duplicate_key(entries: &[(Key, Node)]) -> bool {
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .any(|(i, (k, _))| entries[..i].iter().any(|(o, _)| o.name == k.name));
    }
    let mut seen = FxHashSet::default();
    seen.reserve(entries.len());
    !entries.iter().all(|(k, _)| seen.insert(k.name.as_str()))
}

/// The YAML 1.2 core schema with strict booleans, as serde-saphyr reads an untagged
/// scalar, for the spellings a policy uses; `None` for the rest (floats, `0x1F`,
/// `+1`, `007`, `.inf` ...), which the serde path reads.
fn resolve_scalar(value: Cow<'_, str>, style: ScalarStyle) -> Option<NodeKind> {
    if style != ScalarStyle::Plain {
        return Some(NodeKind::Str(value.into_owned()));
    }
    let kind = match value.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
        "true" | "True" | "TRUE" => NodeKind::Bool(true),
        "false" | "False" | "FALSE" => NodeKind::Bool(false),
        text => match text.as_bytes()[0] {
            b'0'..=b'9' | b'-' => decimal(text)?,
            // Signs, `.5`, `.inf`, `.nan`: the serde path.
            b'+' | b'.' => return None,
            // Whitespace at either end would be trimmed before typing; the parser does
            // not produce it for plain scalars, but do not guess.
            _ if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) => {
                return None
            }
            _ => NodeKind::Str(value.into_owned()),
        },
    };
    Some(kind)
}

/// `0`, `42`, `-7`: the integers the serde path reads as such. A number too large
/// for 64 bits, a leading zero or anything else is left to the serde path.
fn decimal(text: &str) -> Option<NodeKind> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(negative && digits == "0");
    if !plain {
        return None;
    }
    if negative {
        return text.parse::<i64>().ok().map(NodeKind::Int);
    }
    // Above i64 but within u64 the serde path keeps the text (`BigInt`); above u64 it
    // reads a float.
    let v = digits.parse::<u64>().ok()?;
    Some(match i64::try_from(v) {
        Ok(i) => NodeKind::Int(i),
        Err(_) => NodeKind::BigInt(v.to_string()),
    })
}
