//! Matching a topic against many filters at once, held as a trie of filter
//! levels (the broker's subscription router), and the other level-wise
//! questions the broker asks of a filter. The rules are those of
//! [`matches`](super::matches) (semantics.md §3): a trie supplies its nodes, and
//! the walk here decides which of them match.

use smallvec::SmallVec;

/// The multi-level wildcard.
pub const MULTI_LEVEL: &str = "#";
/// The single-level wildcard.
pub const SINGLE_LEVEL: &str = "+";

/// The levels of a topic name or filter, in order (`""` levels included).
pub fn levels(s: &str) -> std::str::Split<'_, char> {
    s.split('/')
}

/// A trie whose edges are filter levels; a node stands for the filter spelled
/// by the levels on the path to it.
pub trait LevelTrie {
    fn child(&self, level: &str) -> Option<&Self>;
}

/// Every node of the trie at `root` whose filter matches `topic`, each once
/// (a node is reached by one path only: the levels of its filter). Walked with an explicit stack: a topic's depth comes from a client, so it
/// must not become call depth.
/// `out` is any collection (the router passes an inline `SmallVec`: one heap
/// allocation less per PUBLISH).
pub fn matching_nodes<'a, N: LevelTrie>(root: &'a N, topic: &'a str, out: &mut impl Extend<&'a N>) {
    let dollar = topic.starts_with('$');
    // (node, the levels left after it, whether it is the root). `None` = no level left.
    let mut stack: SmallVec<[(&N, Option<&str>, bool); 16]> = SmallVec::new();
    stack.push((root, Some(topic), true));
    while let Some((node, rest, at_root)) = stack.pop() {
        // A filter starting with a wildcard never matches a `$` topic.
        let wild_ok = !(dollar && at_root);
        if wild_ok {
            // `#` matches the levels left, and the parent level itself (`a/#` matches `a`).
            if let Some(h) = node.child(MULTI_LEVEL) {
                out.extend([h]);
            }
        }
        let Some(rest) = rest else {
            out.extend([node]);
            continue;
        };
        let (level, after) = match rest.split_once('/') {
            Some((level, after)) => (level, Some(after)),
            None => (rest, None),
        };
        // Pushed in reverse: the literal child is walked first.
        if wild_ok {
            if let Some(c) = node.child(SINGLE_LEVEL) {
                stack.push((c, after, false));
            }
        }
        if let Some(c) = node.child(level) {
            stack.push((c, after, false));
        }
    }
}

/// The part of `filter` before its first wildcard level, without the
/// separator: every topic it matches starts with it (`a/b/#` also matches
/// `a/b`), so a store sorted by topic is scanned from there.
pub fn literal_prefix(filter: &str) -> &str {
    let wild = filter.find(['+', '#']).unwrap_or(filter.len());
    let head = &filter[..wild];
    if wild == filter.len() {
        head
    } else {
        head.strip_suffix('/').unwrap_or(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn literal_prefixes_stop_before_the_first_wildcard_level() {
        assert_eq!(literal_prefix("a/b/#"), "a/b");
        assert_eq!(literal_prefix("a/+/c"), "a");
        assert_eq!(literal_prefix("#"), "");
        assert_eq!(literal_prefix("+/x"), "");
        assert_eq!(literal_prefix("a/b"), "a/b");
    }

    /// A trie that knows the filter it spells at each node.
    #[derive(Default)]
    struct T {
        filter: Option<String>,
        children: HashMap<String, T>,
    }

    impl LevelTrie for T {
        fn child(&self, level: &str) -> Option<&Self> {
            self.children.get(level)
        }
    }

    /// The walk finds exactly the filters `matches` accepts, over every
    /// filter and topic of up to three levels from a small alphabet.
    #[test]
    fn the_walk_agrees_with_matches_exhaustively() {
        let alphabet = ["a", "", "$x", "+", "#"];
        let mut all: Vec<String> = Vec::new();
        let mut frontier: Vec<String> = alphabet.iter().map(|s| s.to_string()).collect();
        for _ in 0..3 {
            all.extend(frontier.iter().cloned());
            frontier = frontier
                .iter()
                .flat_map(|f| alphabet.iter().map(move |l| format!("{f}/{l}")))
                .collect();
        }
        let filters: Vec<&String> = all
            .iter()
            .filter(|f| crate::topic::validate_filter(f).is_ok())
            .collect();
        let mut root = T::default();
        for f in &filters {
            let mut node = &mut root;
            for l in levels(f) {
                node = node.children.entry(l.to_string()).or_default();
            }
            node.filter = Some(f.to_string());
        }
        for t in all
            .iter()
            .filter(|t| crate::topic::validate_name(t).is_ok())
        {
            let mut found = Vec::new();
            matching_nodes(&root, t, &mut found);
            let mut got: Vec<&str> = found.iter().filter_map(|n| n.filter.as_deref()).collect();
            got.sort_unstable();
            let mut want: Vec<&str> = filters
                .iter()
                .filter(|f| crate::topic::matches(f, t))
                .map(|f| f.as_str())
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "topic {t:?}");
        }
    }
}
