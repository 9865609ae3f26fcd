//! Filter algebra: exact set operations on MQTT topic filters (semantics.md §3).
//!
//! A filter stands for the set of topic names it matches. Intersection of two
//! filters is again a filter (or empty); subset is decided level by level; and a
//! difference `a \ (b1 ∪ b2 ∪ ...)` is answered with a *witness*: one topic that `a`
//! matches and none of the `b`s does, found by a search that is exact because a
//! level value that equals no literal of a still-matching `b` behaves like every
//! other such value (so one "other" value per level suffices), and topics longer
//! than the longest filter plus one level behave like that length.
//! Topics starting with `$` are never matched by a filter that starts with a wildcard.

use super::filter::{FLevel, Filter};
use std::collections::BTreeSet;

/// Does one filter level accept topic level `value` at depth `d`?
fn level_accepts(level: Option<&FLevel>, value: &str, d: usize) -> bool {
    match level {
        None => false,
        Some(FLevel::Lit(s)) => s == value,
        Some(FLevel::Plus | FLevel::Hash) => !(d == 0 && value.starts_with('$')),
    }
}

/// The filter matching exactly the topics both `a` and `b` match; `None` when none.
pub fn intersect(a: &Filter, b: &Filter) -> Option<Filter> {
    let reserved = |x: &Filter, y: &Filter| {
        matches!(x.levels.first(), Some(FLevel::Plus | FLevel::Hash))
            && matches!(y.levels.first(), Some(FLevel::Lit(s)) if s.starts_with('$'))
    };
    if reserved(a, b) || reserved(b, a) {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match (a.levels.get(i), b.levels.get(i)) {
            (Some(FLevel::Hash), _) => {
                out.extend(b.levels[i..].iter().cloned());
                break;
            }
            (_, Some(FLevel::Hash)) => {
                out.extend(a.levels[i..].iter().cloned());
                break;
            }
            (None, None) => break,
            (None, Some(_)) | (Some(_), None) => return None,
            (Some(FLevel::Plus), Some(y)) => out.push(y.clone()),
            (Some(x), Some(FLevel::Plus)) => out.push(x.clone()),
            (Some(FLevel::Lit(x)), Some(FLevel::Lit(y))) => {
                if x != y {
                    return None;
                }
                out.push(FLevel::Lit(x.clone()));
            }
        }
        i += 1;
    }
    // A lone `#` intersected down to nothing (e.g. `a/#` and `a` give `a`) stays a filter;
    // an empty level list cannot happen because both inputs have at least one level.
    (!out.is_empty()).then_some(Filter { levels: out })
}

/// The first level (0-based) at which `asked`, a topic name or a filter, steps
/// outside `filter`, read level by level as `policy explain` shows it: a `#` of
/// `filter` takes everything below, a `+` any one level but a first `$` level.
/// `None` when no level differs. Not the subset rule ([`is_subset`] is exact);
/// it points at where two strings part ways.
pub fn first_level_outside(filter: &Filter, asked: &Filter) -> Option<usize> {
    let n = filter.levels.len().max(asked.levels.len());
    for i in 0..n {
        match (filter.levels.get(i), asked.levels.get(i)) {
            (Some(FLevel::Hash), _) => return None,
            (Some(FLevel::Plus), Some(FLevel::Lit(v))) if !(i == 0 && v.starts_with('$')) => {}
            (Some(FLevel::Plus), Some(FLevel::Plus)) => {}
            (Some(FLevel::Lit(x)), Some(FLevel::Lit(y))) if x == y => {}
            _ => return Some(i),
        }
    }
    None
}

/// Is every topic `sub` matches also matched by `sup`?
pub fn is_subset(sub: &Filter, sup: &Filter) -> bool {
    // `sub` can match `$`-topics only if it starts with `$` text; `sup` then must too.
    if let (Some(FLevel::Lit(s)), Some(FLevel::Plus | FLevel::Hash)) =
        (sub.levels.first(), sup.levels.first())
    {
        if s.starts_with('$') {
            return false;
        }
    }
    let mut i = 0;
    loop {
        match (sub.levels.get(i), sup.levels.get(i)) {
            (_, Some(FLevel::Hash)) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            // `P/#` is `P/+/#` plus the topic `P` itself; when `P` is no topic (nothing, or
            // the empty string of `/#`), the two are the same set.
            (Some(FLevel::Hash), Some(FLevel::Plus))
                if i == 0 || (i == 1 && sub.levels[0] == FLevel::Lit(String::new())) =>
            {
                return sup.levels.get(i + 1) == Some(&FLevel::Hash);
            }
            (Some(FLevel::Hash), Some(_)) => return false,
            (Some(FLevel::Plus), Some(FLevel::Plus)) => {}
            (Some(FLevel::Plus), Some(FLevel::Lit(_))) => return false,
            (Some(FLevel::Lit(_)), Some(FLevel::Plus)) => {}
            (Some(FLevel::Lit(x)), Some(FLevel::Lit(y))) if x == y => {}
            (Some(FLevel::Lit(_)), Some(FLevel::Lit(_))) => return false,
        }
        i += 1;
    }
}

/// Level values to prefer in witnesses, per depth (e.g. the names other clients'
/// templates use), so that a witness reads `clients/sensor2/status`, not `clients/x/status`.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    levels: Vec<BTreeSet<String>>,
}

impl Vocabulary {
    pub fn new() -> Self {
        Vocabulary::default()
    }

    /// Adds the literal levels of `filter` at their depths.
    pub fn add(&mut self, filter: &Filter) {
        for (d, l) in filter.levels.iter().enumerate() {
            if let FLevel::Lit(s) = l {
                self.add_level(d, s);
            }
        }
    }

    /// Adds one value at depth `d`.
    pub fn add_level(&mut self, d: usize, value: &str) {
        if self.levels.len() <= d {
            self.levels.resize(d + 1, BTreeSet::new());
        }
        if !self.levels[d].contains(value) {
            self.levels[d].insert(value.to_string());
        }
    }

    /// The values at depth `d`, in sorted order (witnesses do not depend on insertion order).
    fn at(&self, d: usize) -> impl Iterator<Item = &String> {
        self.levels.get(d).into_iter().flatten()
    }
}

/// A topic that `a` matches and none of `minus` matches, or `None` when `a` is
/// covered by their union. Exact (see the module comment). Among witnesses it prefers
/// the shortest one with at least as many levels as `a` (under `a/#`, `a/x` says more
/// than the parent `a`), and tries the parent last.
pub fn witness(a: &Filter, minus: &[&Filter], vocab: &Vocabulary) -> Option<String> {
    let max_len = minus
        .iter()
        .chain(std::iter::once(&a))
        .map(|f| f.levels.len())
        .max()
        .unwrap_or(0)
        + 1;
    let base = a.levels.len();
    let parent = (a.ends_with_hash() && base >= 2).then(|| base - 1);
    let mut topic = Vec::new();
    (base..=max_len).chain(parent).find_map(|len| {
        topic.clear();
        search(a, minus, vocab, len, &mut topic).then(|| topic.join("/"))
    })
}

/// An example topic `f` matches.
pub fn example_topic(f: &Filter, vocab: &Vocabulary) -> Option<String> {
    witness(f, &[], vocab)
}

/// Extends `topic` to exactly `len` levels matched by `a` and by none of `minus`.
/// A depth-first search with its own stack (one frame per level being chosen), so a
/// deep filter in a policy or a request is no call depth.
fn search(
    a: &Filter,
    minus: &[&Filter],
    vocab: &Vocabulary,
    len: usize,
    topic: &mut Vec<String>,
) -> bool {
    /// The level at `depth`: the filters still matching the topic before it, and the
    /// values left to try there.
    struct Frame<'f> {
        depth: usize,
        alive: Vec<&'f Filter>,
        values: std::vec::IntoIter<String>,
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    // The filters still matching `topic` when the search enters its next level.
    let mut entering = Some(minus.to_vec());
    loop {
        if let Some(alive) = entering.take() {
            let d = topic.len();
            if d == len {
                // The empty string is no topic name.
                let empty = len == 1 && topic[0].is_empty();
                if !empty && a.accepts_end(d) && alive.iter().all(|b| !b.accepts_end(d)) {
                    return true;
                }
            } else if alive.is_empty() {
                // Nothing left to avoid: finish along `a` without searching.
                if complete(a, vocab, len, topic) {
                    return true;
                }
            } else if let Some(a_level) = a.level_at(d) {
                let values = candidates(a_level, &alive, vocab, d).into_iter();
                stack.push(Frame {
                    depth: d,
                    alive,
                    values,
                });
            }
        }
        // The next value at the deepest open level, or back up one level.
        let Some(frame) = stack.last_mut() else {
            return false;
        };
        let d = frame.depth;
        topic.truncate(d);
        let Some(value) = frame.values.next() else {
            stack.pop();
            continue;
        };
        let next: Vec<&Filter> = frame
            .alive
            .iter()
            .copied()
            .filter(|b| level_accepts(b.level_at(d), &value, d))
            .collect();
        if next.iter().any(|b| b.absorbs_after(d + 1)) {
            continue;
        }
        topic.push(value);
        entering = Some(next);
    }
}

/// Extends `topic` to `len` levels along `a`, with any value where `a` has a wildcard.
fn complete(a: &Filter, vocab: &Vocabulary, len: usize, topic: &mut Vec<String>) -> bool {
    for d in topic.len()..len {
        let value = match a.level_at(d) {
            None => return false,
            Some(FLevel::Lit(s)) => s.clone(),
            Some(FLevel::Plus | FLevel::Hash) => vocab
                .at(d)
                .find(|v| !(d == 0 && v.starts_with('$')))
                .cloned()
                .unwrap_or_else(|| fresh(&[])),
        };
        topic.push(value);
    }
    !(len == 1 && topic[0].is_empty()) && a.accepts_end(len)
}

/// The level values worth trying at depth `d`: `a`'s literal, or for a wildcard each
/// literal a still-matching filter has there plus one value none of them has.
fn candidates(a_level: &FLevel, alive: &[&Filter], vocab: &Vocabulary, d: usize) -> Vec<String> {
    let ok = |v: &str| level_accepts(Some(a_level), v, d);
    match a_level {
        FLevel::Lit(s) => vec![s.clone()],
        FLevel::Plus | FLevel::Hash => {
            let mut out: Vec<String> = Vec::new();
            for b in alive {
                if let Some(FLevel::Lit(s)) = b.level_at(d) {
                    if ok(s) && !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
            let taken = out.clone();
            let other = vocab
                .at(d)
                .find(|v| ok(v) && !taken.contains(v))
                .cloned()
                .unwrap_or_else(|| fresh(&taken));
            out.push(other);
            out
        }
    }
}

/// A level value different from all of `taken` and not starting with `$`.
fn fresh(taken: &[String]) -> String {
    let mut n = 0usize;
    loop {
        let v = if n == 0 {
            "x".to_string()
        } else {
            format!("x{n}")
        };
        if !taken.contains(&v) {
            return v;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Filter {
        Filter::parse(s)
    }

    #[test]
    fn intersections() {
        let i = |a: &str, b: &str| intersect(&f(a), &f(b)).map(|x| x.to_string());
        assert_eq!(
            i("clients/+/status", "clients/sensor1/#").as_deref(),
            Some("clients/sensor1/status")
        );
        assert_eq!(i("a/#", "a").as_deref(), Some("a"));
        assert_eq!(i("#", "+"), Some("+".into()));
        assert_eq!(i("#", "$SYS/a"), None);
        assert_eq!(i("a/+", "a/b/c"), None);
    }

    #[test]
    fn subsets() {
        assert!(is_subset(
            &f("clients/sensor1/status"),
            &f("clients/+/status")
        ));
        assert!(!is_subset(&f("clients/#"), &f("clients/+/status")));
        assert!(is_subset(&f("a"), &f("a/#")));
        assert!(!is_subset(&f("$SYS/a"), &f("#")));
        // Every topic has a level: `#` and `+/#` are the same set (issue 12).
        assert!(is_subset(&f("#"), &f("+/#")));
        assert!(is_subset(&f("+/#"), &f("#")));
        assert!(is_subset(&f("/#"), &f("/+/#")));
        assert!(!is_subset(&f("a/#"), &f("a/+/#")));
        assert!(!is_subset(&f("#"), &f("+/+/#")));
    }

    #[test]
    fn long_filters_do_not_recurse_deeply() {
        let long = vec!["+"; 30_000].join("/");
        let w = witness(&f(&long), &[&f("a/b")], &Vocabulary::new()).unwrap_or_default();
        assert_eq!(w.split('/').count(), 30_000);
        assert!(f(&long).matches(&w));
    }

    /// Deeper than MQTT allows, in the policy or in the request: all loops.
    #[test]
    fn depth_100000_algebra_is_iterative() {
        let deep = f(&("a/".repeat(100_000) + "a"));
        let deep_plus = f(&("+/".repeat(100_000) + "#"));
        assert!(is_subset(&deep, &deep_plus));
        assert!(!is_subset(&deep_plus, &deep));
        assert_eq!(intersect(&deep, &deep_plus), Some(deep.clone()));
        assert_eq!(witness(&deep, &[&deep_plus], &Vocabulary::new()), None);
        let w = witness(&deep_plus, &[&deep], &Vocabulary::new()).unwrap_or_default();
        assert!(deep_plus.matches(&w) && !deep.matches(&w));
    }

    #[test]
    fn witnesses_prefer_vocabulary_and_are_exact() {
        let mut v = Vocabulary::new();
        v.add(&f("clients/sensor1/status"));
        v.add(&f("clients/sensor2/status"));
        let old = f("clients/sensor1/status");
        assert_eq!(
            witness(&f("clients/+/status"), &[&old], &v).as_deref(),
            Some("clients/sensor2/status")
        );
        assert_eq!(
            witness(&f("clients/sensor1/status"), &[&f("clients/+/status")], &v),
            None
        );
        assert_eq!(
            witness(&f("clients/#"), &[&f("clients/+/status")], &v).as_deref(),
            Some("clients/sensor1")
        );
        assert_eq!(
            witness(&f("a/#"), &[&f("a"), &f("a/+"), &f("a/+/#")], &v),
            None
        );
        assert_eq!(
            witness(&f("+"), &[&f("x"), &f("x1")], &Vocabulary::new()).as_deref(),
            Some("x2")
        );
    }
}
