//! The template index: one trie over topic levels shared by every template of every
//! topic space. A decision walks it once along the topic's levels; variable nodes
//! compare against the asking client's own values, and each template end carries
//! the topic space it belongs to, which the client's permission profile either
//! grants or not. The cost is about the number of levels, whatever the number of
//! clients, and grows only with the templates that share a path with the topic.

use super::model::SpaceId;
use crate::source::topic::{Level, Segment, Template, Var};
use rustc_hash::FxHashMap;

/// Index of a template in [`TemplateIndex::templates`].
pub type TemplateId = u32;
/// Index of a variable in [`TemplateIndex::vars`].
pub type VarId = u32;

/// Where a template came from: its topic space and its position in that space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRef {
    pub space: SpaceId,
    pub index: u32,
}

#[derive(Debug, Clone)]
enum PatSeg {
    Text(Box<str>),
    Var(VarId),
}

#[derive(Debug, Default)]
struct Node {
    literal: FxHashMap<Box<str>, u32>,
    plus: Option<u32>,
    patterns: Vec<(Box<[PatSeg]>, u32)>,
    /// Templates that end exactly here.
    ends: Vec<TemplateId>,
    /// Templates that end with `#` below this node: they match this level and all below.
    hash_ends: Vec<TemplateId>,
}

#[derive(Debug, Default)]
pub struct TemplateIndex {
    nodes: Vec<Node>,
    pub templates: Vec<TemplateRef>,
    /// Every variable some template uses; a client's values are stored in this order.
    pub vars: Vec<Var>,
}

impl TemplateIndex {
    pub fn new() -> Self {
        TemplateIndex {
            nodes: vec![Node::default()],
            templates: Vec::new(),
            vars: Vec::new(),
        }
    }

    fn var_id(&mut self, var: &Var) -> VarId {
        match self.vars.iter().position(|v| v == var) {
            Some(i) => i as VarId,
            None => {
                self.vars.push(var.clone());
                (self.vars.len() - 1) as VarId
            }
        }
    }

    fn child(&mut self, node: u32, level: &Level) -> u32 {
        let existing = match level {
            Level::Literal(t) => self.nodes[node as usize].literal.get(t.as_str()).copied(),
            Level::Plus => self.nodes[node as usize].plus,
            Level::Pattern(_) | Level::Hash => None,
        };
        if let Some(c) = existing {
            return c;
        }
        let pattern = match level {
            Level::Pattern(segs) => Some(
                segs.iter()
                    .map(|s| match s {
                        Segment::Text(t) => PatSeg::Text(t.as_str().into()),
                        Segment::Var(v) => PatSeg::Var(self.var_id(v)),
                    })
                    .collect::<Box<[PatSeg]>>(),
            ),
            _ => None,
        };
        let id = self.nodes.len() as u32;
        self.nodes.push(Node::default());
        let n = &mut self.nodes[node as usize];
        match level {
            Level::Literal(t) => {
                n.literal.insert(t.as_str().into(), id);
            }
            Level::Plus => n.plus = Some(id),
            _ => n.patterns.push((pattern.unwrap_or_default(), id)),
        }
        id
    }

    /// Adds a template of topic space `space`.
    pub fn insert(&mut self, template: &Template, at: TemplateRef) {
        let id = self.templates.len() as TemplateId;
        self.templates.push(at);
        let mut node = 0u32;
        for level in &template.levels {
            if *level == Level::Hash {
                self.nodes[node as usize].hash_ends.push(id);
                return;
            }
            node = self.child(node, level);
        }
        self.nodes[node as usize].ends.push(id);
    }

    /// The first template (in trie order) matching topic name `topic` that `granted`
    /// accepts. `values[var]` is the asking client's value of each variable, `None`
    /// where it has none that can be substituted.
    pub fn find_publish(
        &self,
        topic: &str,
        values: &[Option<Box<str>>],
        granted: &impl Fn(TemplateId) -> bool,
    ) -> Option<TemplateId> {
        self.walk(0, topic.split('/'), values, granted, false)
    }

    /// The first template whose filter contains every topic `filter` can match.
    pub fn find_subscribe(
        &self,
        filter: &str,
        values: &[Option<Box<str>>],
        granted: &impl Fn(TemplateId) -> bool,
    ) -> Option<TemplateId> {
        self.walk(0, filter.split('/'), values, granted, true)
    }

    fn walk<'t>(
        &self,
        node: u32,
        mut rest: std::str::Split<'t, char>,
        values: &[Option<Box<str>>],
        granted: &impl Fn(TemplateId) -> bool,
        filter: bool,
    ) -> Option<TemplateId> {
        let n = &self.nodes[node as usize];
        // `T/#` covers this level and anything below, so any rest (even none) matches.
        if let Some(t) = n.hash_ends.iter().copied().find(|t| granted(*t)) {
            return Some(t);
        }
        let Some(level) = rest.next() else {
            return n.ends.iter().copied().find(|t| granted(*t));
        };
        if filter && level == "#" {
            // Only a template `#` at this level contains a filter `#`, checked above.
            return None;
        }
        if filter && level == "+" {
            // A `+` in the filter is contained only by a `+` in the template.
            return n
                .plus
                .and_then(|p| self.walk(p, rest, values, granted, filter));
        }
        if let Some(&c) = n.literal.get(level) {
            if let Some(t) = self.walk(c, rest.clone(), values, granted, filter) {
                return Some(t);
            }
        }
        if let Some(p) = n.plus {
            if let Some(t) = self.walk(p, rest.clone(), values, granted, filter) {
                return Some(t);
            }
        }
        for (pattern, c) in &n.patterns {
            if pattern_matches(pattern, level, values) {
                if let Some(t) = self.walk(*c, rest.clone(), values, granted, filter) {
                    return Some(t);
                }
            }
        }
        None
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// Does `level` equal the pattern with the client's values substituted?
fn pattern_matches(pattern: &[PatSeg], level: &str, values: &[Option<Box<str>>]) -> bool {
    let mut rest = level;
    for seg in pattern {
        let piece: &str = match seg {
            PatSeg::Text(t) => t,
            PatSeg::Var(v) => match values.get(*v as usize) {
                Some(Some(value)) => value,
                _ => return false,
            },
        };
        match rest.strip_prefix(piece) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}
