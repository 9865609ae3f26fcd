//! Topic filters as values, and matching: the one implementation of "does this
//! filter match this topic name" (semantics.md §3) for the broker, the decisions,
//! the explanations and the analyses.

use std::fmt;

/// One level of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FLevel {
    Lit(String),
    Plus,
    /// `#`: this level and everything below, including the parent level itself.
    Hash,
}

/// A topic filter (a topic name is a filter without wildcards).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter {
    pub levels: Vec<FLevel>,
}

impl Filter {
    /// Reads a filter that has already been validated (or a substituted template):
    /// `+` and `#` are wildcards only as whole levels.
    pub fn parse(text: &str) -> Filter {
        let levels = text
            .split('/')
            .map(|l| match l {
                "+" => FLevel::Plus,
                "#" => FLevel::Hash,
                other => FLevel::Lit(other.to_string()),
            })
            .collect();
        Filter { levels }
    }

    /// Is the first level a `$` level, reserved for the broker?
    pub fn is_reserved(&self) -> bool {
        matches!(self.levels.first(), Some(FLevel::Lit(s)) if s.starts_with('$'))
    }

    pub fn is_topic(&self) -> bool {
        self.levels.iter().all(|l| matches!(l, FLevel::Lit(_)))
    }

    /// Does this filter match topic name `topic`?
    pub fn matches(&self, topic: &str) -> bool {
        matches_levels(self.levels.iter().map(LevelRef::of), topic)
    }

    pub(super) fn ends_with_hash(&self) -> bool {
        matches!(self.levels.last(), Some(FLevel::Hash))
    }

    /// The filter's level at topic depth `d` (a trailing `#` covers every deeper level).
    pub(super) fn level_at(&self, d: usize) -> Option<&FLevel> {
        match self.levels.get(d) {
            Some(l) => Some(l),
            None if self.ends_with_hash() => self.levels.last(),
            None => None,
        }
    }

    /// Does the filter match a topic whose `d` levels all matched so far and that ends here?
    pub(super) fn accepts_end(&self, d: usize) -> bool {
        self.levels.len() == d || (self.ends_with_hash() && d + 1 >= self.levels.len())
    }

    /// Once `d` levels matched, does every continuation (and ending here) match too?
    pub(super) fn absorbs_after(&self, d: usize) -> bool {
        self.ends_with_hash() && d + 1 >= self.levels.len()
    }
}

impl fmt::Display for FLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FLevel::Lit(s) => f.write_str(s),
            FLevel::Plus => f.write_str("+"),
            FLevel::Hash => f.write_str("#"),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match l {
                FLevel::Lit(s) => f.write_str(s)?,
                FLevel::Plus => f.write_str("+")?,
                FLevel::Hash => f.write_str("#")?,
            }
        }
        Ok(())
    }
}

/// One filter level as matching reads it, borrowed from a string or a [`Filter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LevelRef<'a> {
    Lit(&'a str),
    Plus,
    Hash,
}

impl<'a> LevelRef<'a> {
    pub(super) fn of_text(level: &'a str) -> Self {
        match level {
            "+" => LevelRef::Plus,
            "#" => LevelRef::Hash,
            other => LevelRef::Lit(other),
        }
    }

    pub(super) fn of(level: &'a FLevel) -> Self {
        match level {
            FLevel::Lit(s) => LevelRef::Lit(s),
            FLevel::Plus => LevelRef::Plus,
            FLevel::Hash => LevelRef::Hash,
        }
    }
}

/// Does topic name `topic` match filter `filter`? The MQTT rules, with `$`-topics
/// never matched by a filter that starts with a wildcard. A loop, allocation-free:
/// the broker asks it for every retained message a subscription may receive.
pub fn matches(filter: &str, topic: &str) -> bool {
    matches_levels(filter.split('/').map(LevelRef::of_text), topic)
}

fn matches_levels<'a>(mut filter: impl Iterator<Item = LevelRef<'a>>, topic: &str) -> bool {
    // A wildcard may match the first level only when it does not start with `$`.
    let mut wild_ok = !topic.starts_with('$');
    let mut levels = topic.split('/');
    loop {
        match (filter.next(), levels.next()) {
            // `#` also matches the parent: `a/#` matches `a`.
            (Some(LevelRef::Hash), _) => return wild_ok,
            (Some(LevelRef::Plus), Some(_)) if wild_ok => {}
            (Some(LevelRef::Lit(f)), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
        wild_ok = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        for (f, t, want) in [
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a/c", false),
            ("a/+", "a", false),
            ("+/+", "/a", true),
            ("+/+", "/", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/+", "$SYS/x", true),
            ("a//b", "a//b", true),
            ("a/b", "a/b/c", false),
            ("a/+/#", "a/b", true),
        ] {
            assert_eq!(matches(f, t), want, "{f} {t}");
            assert_eq!(Filter::parse(f).matches(t), want, "{f} {t}");
        }
    }

    #[test]
    fn depth_100000_matching_is_a_loop() {
        let deep = "a/".repeat(100_000) + "a";
        let deep_plus = "+/".repeat(100_000) + "a";
        assert!(matches(&deep, &deep));
        assert!(matches(&deep_plus, &deep));
        assert!(!matches(&deep_plus, &(deep.clone() + "/b")));
        assert!(Filter::parse(&deep_plus).matches(&deep));
    }
}
