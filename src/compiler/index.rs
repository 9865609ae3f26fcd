//! The template index: one trie over topic levels shared by every template of every
//! topic space. A decision walks it once along the topic's levels; variable nodes
//! compare against the asking client's own values, and each template end carries
//! the topic space it belongs to, which the client's permission profile either
//! grants or not. The cost is about the number of levels, whatever the number of
//! clients, and grows only with the templates that share a path with the topic.

use super::model::SpaceId;
use crate::topic::scan::next_slash;
use crate::topic::{Level, Segment, Template, Var};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

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
        self.walk::<false>(topic, values, granted)
    }

    /// The first template whose filter contains every topic `filter` can match.
    pub fn find_subscribe(
        &self,
        filter: &str,
        values: &[Option<Box<str>>],
        granted: &impl Fn(TemplateId) -> bool,
    ) -> Option<TemplateId> {
        self.walk::<true>(filter, values, granted)
    }

    /// Depth-first search in trie order (literal, then `+`, then patterns) with an
    /// explicit stack: the depth of a topic or filter is the client's choice, and
    /// must not become call depth. The stack lives inline for ordinary depths, so a
    /// decision allocates nothing. `FILTER` is known at compile time, so the
    /// publish walk carries none of the filter's wildcard tests.
    fn walk<const FILTER: bool>(
        &self,
        topic_or_filter: &str,
        values: &[Option<Box<str>>],
        granted: &impl Fn(TemplateId) -> bool,
    ) -> Option<TemplateId> {
        let bytes = topic_or_filter.as_bytes();
        let mut stack = Stack::default();
        stack.push(Step {
            node: 0,
            no_topic_yet: true,
            rest: 0,
        });
        while let Some(Step {
            node,
            no_topic_yet,
            rest,
        }) = stack.pop()
        {
            let n = &self.nodes[node as usize];
            // `T/#` covers this level and anything below, so any rest (even none) matches.
            if let Some(t) = n.hash_ends.iter().copied().find(|t| granted(*t)) {
                return Some(t);
            }
            if rest == NO_LEVEL_LEFT {
                if let Some(t) = n.ends.iter().copied().find(|t| granted(*t)) {
                    return Some(t);
                }
                continue;
            }
            // `/` is ASCII, so a byte scan splits the UTF-8 text at character boundaries.
            let (level, after) = match next_slash(bytes, rest) {
                Some(i) => (&topic_or_filter[rest..i], i + 1),
                None => (&topic_or_filter[rest..], NO_LEVEL_LEFT),
            };
            // Only a filter's `#` asks whether the levels before form no topic.
            let no_topic = FILTER && no_topic_yet && node == 0 && level.is_empty();
            if FILTER && level == "#" {
                // A template `#` here contains a filter `#`, checked above. So does
                // `+/#` when the levels before are no topic: every topic has a level
                // there (`#` and `+/#` are the same set; `/#` and `/+/#` too).
                if no_topic_yet {
                    let plus_hash = n.plus.map(|p| &self.nodes[p as usize].hash_ends);
                    if let Some(t) = plus_hash
                        .into_iter()
                        .flatten()
                        .copied()
                        .find(|t| granted(*t))
                    {
                        return Some(t);
                    }
                }
                continue;
            }
            if FILTER && level == "+" {
                // A `+` in the filter is contained only by a `+` in the template.
                if let Some(p) = n.plus {
                    stack.push(Step::to(p, after, false));
                }
                continue;
            }
            // Pushed in reverse so that they are tried in trie order.
            for (pattern, c) in n.patterns.iter().rev() {
                if pattern_matches(pattern, level, values) {
                    stack.push(Step::to(*c, after, no_topic));
                }
            }
            if let Some(p) = n.plus {
                stack.push(Step::to(p, after, no_topic));
            }
            if let Some(&c) = n.literal.get(level) {
                stack.push(Step::to(c, after, no_topic));
            }
        }
        None
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// The walk's stack, whose top lives in a local: most levels have one child to go
/// on with, which is then pushed and popped without touching the vector.
#[derive(Default)]
struct Stack {
    top: Option<Step>,
    below: SmallVec<[Step; 16]>,
}

impl Stack {
    #[inline]
    fn push(&mut self, step: Step) {
        if let Some(previous) = self.top.replace(step) {
            self.below.push(previous);
        }
    }
    #[inline]
    fn pop(&mut self) -> Option<Step> {
        self.top.take().or_else(|| self.below.pop())
    }
}

/// `Step::rest` when the topic has no level left after the node.
const NO_LEVEL_LEFT: usize = usize::MAX;

/// One pending step of the walk: a trie node and where the levels after it start.
#[derive(Clone, Copy)]
struct Step {
    node: u32,
    /// Whether the levels before the node form no topic: none, or the one empty
    /// level of `/...`.
    no_topic_yet: bool,
    /// Byte offset of the next level in the topic, or [`NO_LEVEL_LEFT`].
    rest: usize,
}

impl Step {
    fn to(node: u32, rest: usize, no_topic_yet: bool) -> Step {
        Step {
            node,
            no_topic_yet,
            rest,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u32) -> TemplateRef {
        TemplateRef { space: 0, index }
    }

    /// Deeper than MQTT allows: the walk is a loop with its own stack.
    #[test]
    fn depth_100000_walks_do_not_recurse() {
        let mut index = TemplateIndex::new();
        let deep = Template {
            levels: vec![Level::Literal("a".into()); 100_000],
        };
        let mut wild = vec![Level::Plus; 100_000];
        wild.push(Level::Hash);
        index.insert(&deep, at(0));
        index.insert(&Template { levels: wild }, at(1));
        let all = |_: TemplateId| true;
        let only_wild = |t: TemplateId| t == 1;
        let topic = vec!["a"; 100_000].join("/");
        assert_eq!(index.find_publish(&topic, &[], &all), Some(0));
        assert_eq!(index.find_publish(&topic, &[], &only_wild), Some(1));
        let longer = topic.clone() + "/b";
        assert_eq!(index.find_publish(&longer, &[], &all), Some(1));
        let filter = vec!["+"; 100_000].join("/");
        assert_eq!(index.find_subscribe(&filter, &[], &all), Some(1));
        assert_eq!(index.find_subscribe(&(filter + "/#"), &[], &all), Some(1));
        assert_eq!(index.find_publish("b", &[], &all), None);
    }
}
