//! A YAML document as a tree of spanned nodes.
//!
//! serde-saphyr stops at the first error it meets, so typed deserialization would
//! report one mistake per run. We deserialize only the tree shape (which fails only
//! on YAML syntax) and check the schema ourselves in [`super::yaml`], collecting
//! every error at once, each at its exact position.
//!
//! The `Deserialize` impls below are the serde path. Ordinary policies take the
//! faster event path ([`super::events`]), which builds the same tree; the serde
//! path reads whatever the event path declines (decision 0013).

use crate::diag::span::Span;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer outside i64 (kept as text for the error message).
    BigInt(String),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always a string in a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl NodeKind {
    /// The YAML type name, for "expected a string, found a list" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::BigInt(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

pub(crate) fn span_of(loc: &serde_saphyr::Location) -> Span {
    let s = loc.span();
    match (s.byte_offset(), s.byte_len()) {
        (Some(o), Some(l)) => Span::new(o as usize, (o + l) as usize),
        _ => Span::NONE,
    }
}

/// The node without its span; deserialized inside `Spanned` to learn the span.
struct Bare(NodeKind);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Bare>::deserialize(d)?;
        Ok(Node {
            kind: spanned.value.0,
            span: span_of(&spanned.referenced),
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KeyText>::deserialize(d)?;
        Ok(Key {
            name: spanned.value.0,
            span: span_of(&spanned.referenced),
        })
    }
}

/// A key's text: scalars of any type are accepted and shown as written.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Bare::deserialize(d)?.0 {
            NodeKind::Str(s) | NodeKind::BigInt(s) => Ok(KeyText(s)),
            NodeKind::Int(i) => Ok(KeyText(i.to_string())),
            NodeKind::Bool(b) => Ok(KeyText(b.to_string())),
            NodeKind::Float(f) => Ok(KeyText(f.to_string())),
            NodeKind::Null => Ok(KeyText("null".into())),
            other => Err(de::Error::custom(format!(
                "a mapping key must be a string, found {}",
                other.type_name()
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Bare {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BareVisitor)
    }
}

struct BareVisitor;

impl<'de> Visitor<'de> for BareVisitor {
    type Value = Bare;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Int(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Bare, E> {
        Ok(Bare(
            i64::try_from(v)
                .map(NodeKind::Int)
                .unwrap_or(NodeKind::BigInt(v.to_string())),
        ))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Bare, E> {
        Ok(Bare(
            i64::try_from(v)
                .map(NodeKind::Int)
                .unwrap_or(NodeKind::BigInt(v.to_string())),
        ))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Bare, E> {
        Ok(Bare(
            i64::try_from(v)
                .map(NodeKind::Int)
                .unwrap_or(NodeKind::BigInt(v.to_string())),
        ))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Str(v)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Bare, E> {
        Err(E::custom("binary values are not allowed in a policy"))
    }
    fn visit_unit<E>(self) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Null))
    }
    fn visit_none<E>(self) -> Result<Bare, E> {
        Ok(Bare(NodeKind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Bare, D::Error> {
        Bare::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bare, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Bare(NodeKind::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bare, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Bare(NodeKind::Map(entries)))
    }
}
