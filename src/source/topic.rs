//! Topic names, filters and templates (semantics.md §3): the template grammar
//! (`grammar/topic.pest`), validation of names and filters, and the plain
//! definitions of matching and subset that everything else is checked against.

use pest::Parser;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/topic.pest"]
struct TopicParser;

/// A variable inside a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Var {
    AuthenticationName,
    Attribute(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::AuthenticationName => f.write_str("$<client.authenticationName>"),
            Var::Attribute(k) => write!(f, "$<client.attributes.{k}>"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Segment {
    Text(String),
    Var(Var),
}

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// `#`: this level and everything below, including the parent level itself.
    Hash,
    /// `+`: exactly one level.
    Plus,
    /// Plain text (possibly empty).
    Literal(String),
    /// Text with at least one variable, e.g. `$<client.authenticationName>.f1`.
    Pattern(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Template {
    pub levels: Vec<Level>,
}

/// A template that does not parse: message and byte offsets inside its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub kind: TemplateErrorKind,
    pub message: String,
    pub at: (usize, usize),
    pub help: Option<String>,
}

/// What kind of mistake a [`TemplateError`] is, so that each has its own rule code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// Wildcards misplaced, unterminated variables, empty or oversized text.
    Syntax,
    /// A variable other than `client.authenticationName` or `client.attributes.KEY`.
    UnknownVariable,
    /// A template whose first level starts with `$`.
    Reserved,
}

/// The variable names a template may use, for "did you mean".
pub const VARIABLE_FORMS: [&str; 2] = ["client.authenticationName", "client.attributes.KEY"];

/// Maximum length of a topic name or filter in bytes (MQTT's 16-bit length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

impl Template {
    /// Parses a template. Variables are `$<client.authenticationName>`,
    /// `$<client.attributes.KEY>`, or the same inside `${...}`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        common_checks(text)?;
        let mut pairs = TopicParser::parse(Rule::template, text).map_err(|e| {
            let pos = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            };
            TemplateError {
                kind: TemplateErrorKind::Syntax,
                message: "invalid topic template".into(),
                at: (pos, pos),
                help: None,
            }
        })?;
        let mut levels = Vec::new();
        let top = pairs.next().map(|p| p.into_inner()).into_iter().flatten();
        let level_pairs: Vec<_> = top.filter(|p| p.as_rule() == Rule::level).collect();
        let count = level_pairs.len();
        for (i, level) in level_pairs.into_iter().enumerate() {
            let span = level.as_span();
            let mut inner = level.into_inner().peekable();
            let first = inner.peek().map(|p| p.as_rule());
            match first {
                Some(Rule::whole_hash) => {
                    if i + 1 != count {
                        return Err(TemplateError {
                            kind: TemplateErrorKind::Syntax,
                            message: "`#` must be the last level".into(),
                            at: (span.start(), span.end()),
                            help: Some("use `+` for a single level in the middle".into()),
                        });
                    }
                    levels.push(Level::Hash);
                }
                Some(Rule::whole_plus) => levels.push(Level::Plus),
                _ => {
                    let mut segments = Vec::new();
                    for piece in inner {
                        let at = (piece.as_span().start(), piece.as_span().end());
                        match piece.as_rule() {
                            Rule::text => segments.push(Segment::Text(piece.as_str().to_string())),
                            Rule::variable => {
                                let name = piece.into_inner().next().map(|n| n.as_str()).unwrap_or("");
                                segments.push(Segment::Var(parse_var(name, at)?));
                            }
                            Rule::stray_wildcard => {
                                return Err(TemplateError {
                                    kind: TemplateErrorKind::Syntax,
                                    message: format!("`{}` must be a whole level", piece.as_str()),
                                    at,
                                    help: Some("wildcards cannot share a level with text or variables".into()),
                                })
                            }
                            _ => {
                                return Err(TemplateError {
                                    kind: TemplateErrorKind::Syntax,
                                    message: "unterminated variable".into(),
                                    at: (at.0, span.end()),
                                    help: Some("write `$<client.authenticationName>` or `$<client.attributes.KEY>`".into()),
                                })
                            }
                        }
                    }
                    let has_var = segments.iter().any(|s| matches!(s, Segment::Var(_)));
                    if has_var {
                        levels.push(Level::Pattern(merge_text(segments)));
                    } else {
                        let text: String = segments
                            .into_iter()
                            .map(|s| match s {
                                Segment::Text(t) => t,
                                Segment::Var(_) => String::new(),
                            })
                            .collect();
                        levels.push(Level::Literal(text));
                    }
                }
            }
        }
        if let Some(Level::Literal(first)) = levels.first() {
            if first.starts_with('$') {
                return Err(TemplateError {
                    kind: TemplateErrorKind::Reserved,
                    message:
                        "a template may not start with `$`: such topics are reserved for the broker"
                            .into(),
                    at: (0, first.len()),
                    help: None,
                });
            }
        }
        Ok(Template { levels })
    }

    pub fn has_variables(&self) -> bool {
        self.levels.iter().any(|l| matches!(l, Level::Pattern(_)))
    }

    pub fn variables(&self) -> impl Iterator<Item = &Var> {
        self.levels.iter().flat_map(|l| match l {
            Level::Pattern(segs) => segs
                .iter()
                .filter_map(|s| match s {
                    Segment::Var(v) => Some(v),
                    Segment::Text(_) => None,
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }

    /// The template as a filter for one client: each variable replaced by `value(var)`.
    /// `None` when a value is missing or would change the template's shape.
    pub fn substitute<'a>(&self, mut value: impl FnMut(&Var) -> Option<&'a str>) -> Option<String> {
        let mut out = String::new();
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match level {
                Level::Hash => out.push('#'),
                Level::Plus => out.push('+'),
                Level::Literal(t) => out.push_str(t),
                Level::Pattern(segs) => {
                    for s in segs {
                        match s {
                            Segment::Text(t) => out.push_str(t),
                            Segment::Var(v) => {
                                let v = value(v)?;
                                if !is_safe_value(v) {
                                    return None;
                                }
                                out.push_str(v);
                            }
                        }
                    }
                }
            }
        }
        Some(out)
    }
}

/// A substituted value may not change the template's shape: no `/`, `+`, `#`,
/// no leading `$`, no U+0000 (semantics.md §3).
pub fn is_safe_value(v: &str) -> bool {
    !v.contains(['/', '+', '#', '\0']) && !v.starts_with('$')
}

fn merge_text(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for s in segments {
        match (out.last_mut(), s) {
            (Some(Segment::Text(prev)), Segment::Text(t)) => prev.push_str(&t),
            (_, s) => out.push(s),
        }
    }
    out
}

fn parse_var(name: &str, at: (usize, usize)) -> Result<Var, TemplateError> {
    let trimmed = name.trim();
    if trimmed == "client.authenticationName" {
        return Ok(Var::AuthenticationName);
    }
    if let Some(key) = trimmed.strip_prefix("client.attributes.") {
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(Var::Attribute(key.to_string()));
        }
    }
    let help = match crate::diag::did_you_mean(trimmed, ["client.authenticationName"]) {
        Some(s) => format!("did you mean `$<{s}>`?"),
        None if trimmed.starts_with("client.attribute") || trimmed.starts_with("attributes.") => {
            let key = trimmed.rsplit('.').next().unwrap_or("KEY");
            format!("did you mean `$<client.attributes.{key}>`?")
        }
        None => {
            "variables are `$<client.authenticationName>` and `$<client.attributes.KEY>`".into()
        }
    };
    Err(TemplateError {
        kind: TemplateErrorKind::UnknownVariable,
        message: format!("unknown variable `{name}`"),
        at,
        help: Some(help),
    })
}

fn common_checks(text: &str) -> Result<(), TemplateError> {
    if text.is_empty() {
        return Err(TemplateError {
            kind: TemplateErrorKind::Syntax,
            message: "a topic cannot be empty".into(),
            at: (0, 0),
            help: None,
        });
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(TemplateError {
            kind: TemplateErrorKind::Syntax,
            message: format!(
                "a topic is at most {MAX_TOPIC_BYTES} bytes, this one is {}",
                text.len()
            ),
            at: (0, text.len()),
            help: None,
        });
    }
    if let Some(i) = text.find('\0') {
        return Err(TemplateError {
            kind: TemplateErrorKind::Syntax,
            message: "a topic cannot contain U+0000".into(),
            at: (i, i + 1),
            help: None,
        });
    }
    Ok(())
}

/// Checks a topic name as a client would PUBLISH it.
pub fn validate_topic_name(topic: &str) -> Result<(), TemplateError> {
    common_checks(topic)?;
    if let Some(i) = topic.find(['+', '#']) {
        return Err(TemplateError {
            kind: TemplateErrorKind::Syntax,
            message: "a topic name cannot contain wildcards".into(),
            at: (i, i + 1),
            help: Some("`+` and `#` belong in subscription filters".into()),
        });
    }
    Ok(())
}

/// Checks a subscription filter (after any `$share/NAME/` prefix is removed).
pub fn validate_filter(filter: &str) -> Result<(), TemplateError> {
    common_checks(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    let mut offset = 0;
    for (i, level) in levels.iter().enumerate() {
        let at = (offset, offset + level.len());
        if level.contains(['+', '#']) && level.len() > 1 {
            return Err(TemplateError {
                kind: TemplateErrorKind::Syntax,
                message: "wildcards must be a whole level".into(),
                at,
                help: None,
            });
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(TemplateError {
                kind: TemplateErrorKind::Syntax,
                message: "`#` must be the last level".into(),
                at,
                help: None,
            });
        }
        offset += level.len() + 1;
    }
    Ok(())
}

/// Splits `$share/NAME/FILTER` into `(NAME, FILTER)`.
pub fn split_shared(filter: &str) -> Option<Result<(&str, &str), TemplateError>> {
    let rest = filter.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((name, f)) if !name.is_empty() && !name.contains(['+', '#']) && !f.is_empty() => Ok((name, f)),
        _ => Err(TemplateError {
            kind: TemplateErrorKind::Syntax,
            message: "a shared subscription is `$share/NAME/FILTER` with a non-empty NAME without wildcards".into(),
            at: (0, filter.len()),
            help: None,
        }),
    })
}

/// Does topic name `topic` match filter `filter`? The MQTT rules, with `$`-topics
/// never matched by a filter that starts with a wildcard.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Is every topic that filter `sub` can match also matched by filter `sup`?
/// A loop over both filters' levels: a filter's depth may come from a client.
pub fn is_subset(sub: &str, sup: &str) -> bool {
    // Topics starting with `$` are matched only by filters starting with `$` text.
    if !sub.starts_with(['+', '#']) && sub.starts_with('$') && sup.starts_with(['+', '#']) {
        return false;
    }
    let mut a = sub.split('/');
    let mut b = sup.split('/');
    loop {
        match (a.next(), b.next()) {
            (_, Some("#")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("#"), Some(_)) => return false,
            (Some("+"), Some("+")) => {}
            (Some("+"), Some(_)) => return false,
            (Some(_), Some("+")) => {}
            (Some(x), Some(y)) => {
                if x != y {
                    return false;
                }
            }
        }
    }
}

/// The broker's limits on the topics and filters clients send (`maxTopicLevels`,
/// `maxTopicLength` in the broker configuration). They bound the time and memory one
/// topic can cost: trie depth, routing work, the bytes a subscription pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Most levels in a topic name or filter (`a/b/c` has 3); for `$share/NAME/F`,
    /// the levels of `F`, the filter that is matched.
    pub max_levels: usize,
    /// Most bytes in a topic name or filter; for `$share/NAME/F`, the whole string,
    /// which MQTT carries as one field.
    pub max_length: usize,
}

/// A topic name or filter beyond [`TopicLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the topic has {levels} levels, more than the {max} allowed (maxTopicLevels)")]
    TooManyLevels { levels: usize, max: usize },
    #[error("the topic is {length} bytes long, more than the {max} allowed (maxTopicLength)")]
    TooLong { length: usize, max: usize },
}

impl TopicLimits {
    /// Checks a topic name, or a filter without a `$share/NAME/` prefix.
    pub fn check(&self, topic: &str) -> Result<(), LimitExceeded> {
        self.check_parts(topic.len(), topic)
    }

    /// Checks a subscription filter as sent: `$share/NAME/F` or a plain filter.
    pub fn check_subscription(&self, raw: &str) -> Result<(), LimitExceeded> {
        let matched = match split_shared(raw) {
            Some(Ok((_, filter))) => filter,
            _ => raw,
        };
        self.check_parts(raw.len(), matched)
    }

    fn check_parts(&self, length: usize, levels_of: &str) -> Result<(), LimitExceeded> {
        if length > self.max_length {
            return Err(LimitExceeded::TooLong {
                length,
                max: self.max_length,
            });
        }
        let levels = levels_of.bytes().filter(|&b| b == b'/').count() + 1;
        if levels > self.max_levels {
            return Err(LimitExceeded::TooManyLevels {
                levels,
                max: self.max_levels,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match level {
                Level::Hash => f.write_str("#")?,
                Level::Plus => f.write_str("+")?,
                Level::Literal(t) => f.write_str(t)?,
                Level::Pattern(segs) => {
                    for s in segs {
                        match s {
                            Segment::Text(t) => f.write_str(t)?,
                            Segment::Var(v) => write!(f, "{v}")?,
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_in_both_spellings() {
        let a = Template::parse("clients/$<client.authenticationName>/status").unwrap();
        let b = Template::parse("clients/${client.authenticationName}/status").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_string(), "clients/$<client.authenticationName>/status");
        let p = Template::parse("machines/$<client.attributes.line>.f1/#").unwrap();
        assert_eq!(
            p.levels[1],
            Level::Pattern(vec![
                Segment::Var(Var::Attribute("line".into())),
                Segment::Text(".f1".into())
            ])
        );
        assert_eq!(p.levels[2], Level::Hash);
    }

    #[test]
    fn rejects_bad_templates_with_positions() {
        let e = Template::parse("a/#/b").unwrap_err();
        assert_eq!(e.at, (2, 3));
        let e = Template::parse("a/b+/c").unwrap_err();
        assert_eq!(e.at, (3, 4));
        let e = Template::parse("a/$<client.authName>/c").unwrap_err();
        assert!(e.message.contains("unknown variable"), "{e:?}");
        assert_eq!(
            e.help.as_deref(),
            Some("did you mean `$<client.authenticationName>`?")
        );
        let e = Template::parse("a/$<client.attributes.x").unwrap_err();
        assert!(e.message.contains("unterminated"), "{e:?}");
        assert!(Template::parse("$SYS/x").is_err());
        assert!(Template::parse("").is_err());
        assert!(Template::parse("a\0b").is_err());
    }

    #[test]
    fn empty_levels_and_dollar_inside_are_legal() {
        assert_eq!(Template::parse("a//b").unwrap().levels.len(), 3);
        assert_eq!(
            Template::parse("/a").unwrap().levels[0],
            Level::Literal(String::new())
        );
        assert_eq!(
            Template::parse("a/$x").unwrap().levels[1],
            Level::Literal("$x".into())
        );
    }

    #[test]
    fn substitution_refuses_shape_changes() {
        let t = Template::parse("c/$<client.attributes.k>/s").unwrap();
        assert_eq!(t.substitute(|_| Some("x")).as_deref(), Some("c/x/s"));
        for bad in ["a/b", "+", "#", "$x", "a#"] {
            assert_eq!(t.substitute(|_| Some(bad)), None, "{bad}");
        }
        assert_eq!(t.substitute(|_| None), None);
    }

    #[test]
    fn matching_rules() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/c"));
        assert!(matches("+/+", "/a"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn subset_rules() {
        assert!(is_subset("clients/+/status", "clients/+/status"));
        assert!(is_subset("clients/s1/status", "clients/+/status"));
        assert!(!is_subset("clients/#", "clients/+/status"));
        assert!(is_subset("a", "a/#"));
        assert!(is_subset("a/#", "a/#"));
        assert!(!is_subset("a/#", "a/+"));
        assert!(!is_subset("a/+", "a"));
        assert!(!is_subset("$SYS/x", "#"));
        assert!(is_subset("#", "#"));
    }

    #[test]
    fn validates_names_and_filters() {
        assert!(validate_topic_name("a/+").is_err());
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_filter("a/#/b").is_err());
        assert!(validate_filter("a/b#").is_err());
        assert!(validate_filter("+/#").is_ok());
        assert_eq!(split_shared("$share/g/a/+").unwrap().unwrap(), ("g", "a/+"));
        assert!(split_shared("$share//a").unwrap().is_err());
        assert!(split_shared("a/b").is_none());
    }

    /// Topics and filters far deeper than any limit: matching and subset are loops.
    #[test]
    fn deep_topics_do_not_recurse() {
        let deep = "a/".repeat(100_000) + "a";
        let deep_plus = "+/".repeat(100_000) + "a";
        assert!(matches(&deep, &deep));
        assert!(matches(&deep_plus, &deep));
        assert!(!matches(&deep_plus, &(deep.clone() + "/b")));
        assert!(is_subset(&deep, &deep_plus));
        assert!(!is_subset(&deep_plus, &deep));
        assert!(is_subset(&deep, "a/#"));
        assert!(
            validate_filter(&deep_plus).is_err(),
            "longer than MQTT allows"
        );
    }

    #[test]
    fn limits_count_levels_and_bytes() {
        let l = TopicLimits {
            max_levels: 3,
            max_length: 12,
        };
        assert_eq!(l.check("a/b/c"), Ok(()));
        assert_eq!(
            l.check("a/b/c/d"),
            Err(LimitExceeded::TooManyLevels { levels: 4, max: 3 })
        );
        assert_eq!(l.check("//"), Ok(()));
        assert!(l.check("///").is_err());
        assert_eq!(
            l.check("abcdefghijklm"),
            Err(LimitExceeded::TooLong {
                length: 13,
                max: 12
            })
        );
        // `$share/NAME/` counts towards the length, not the levels.
        let l = TopicLimits {
            max_levels: 3,
            max_length: 15,
        };
        assert_eq!(l.check_subscription("$share/g/a/b/c"), Ok(()));
        assert_eq!(
            l.check_subscription("$share/g/a/b/cde"),
            Err(LimitExceeded::TooLong {
                length: 15 + 1,
                max: 15
            })
        );
        assert_eq!(l.check_subscription("$share/g/a/b/"), Ok(()));
        assert_eq!(
            l.check_subscription("$share/g/a/b//"),
            Err(LimitExceeded::TooManyLevels { levels: 4, max: 3 })
        );
    }
}
