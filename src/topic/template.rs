//! Topic templates (semantics.md §3): the grammar (`grammar/topic.pest`), variables,
//! substitution of a client's values, and the skeleton every substitution lies in.

use super::filter::{FLevel, Filter};
use super::trie::{MULTI_LEVEL, SINGLE_LEVEL};
use super::validate::common_checks;
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

/// Printed in Event Grid's spelling, `${...}`, wherever topicgate shows a template
/// (formatting, diagnostics, explain, exports): a template copied from our output
/// into Event Grid means the same there. `$<...>` is still read as input.
impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::AuthenticationName => f.write_str("${client.authenticationName}"),
            Var::Attribute(k) => write!(f, "${{client.attributes.{k}}}"),
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

/// A template, topic name or filter that is not valid: message and byte offsets
/// inside its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
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
    /// A variable written with spaces inside its brackets, `$< client.authenticationName >`.
    SpacedVariable,
}

/// The variable names a template may use, for "did you mean".
pub const VARIABLE_FORMS: [&str; 2] = ["client.authenticationName", "client.attributes.KEY"];

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
                                    help: Some("write `${client.authenticationName}` or `${client.attributes.KEY}`".into()),
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

    /// The template with each variable level as `+`: every filter it gives any client
    /// is inside this one. `None` when that cannot be said (a first-level pattern
    /// starting with `$`, which a leading `+` would not cover).
    pub fn skeleton(&self) -> Option<Filter> {
        let mut levels = Vec::with_capacity(self.levels.len());
        for (d, l) in self.levels.iter().enumerate() {
            levels.push(match l {
                Level::Hash => FLevel::Hash,
                Level::Plus => FLevel::Plus,
                Level::Literal(s) => FLevel::Lit(s.clone()),
                Level::Pattern(segs) => {
                    if d == 0
                        && matches!(segs.first(), Some(Segment::Text(s)) if s.starts_with('$'))
                    {
                        return None;
                    }
                    FLevel::Plus
                }
            });
        }
        Some(Filter { levels })
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

/// The variable `name` names exactly, nothing around it.
fn exact_var(name: &str) -> Option<Var> {
    if name == "client.authenticationName" {
        return Some(Var::AuthenticationName);
    }
    let key = name.strip_prefix("client.attributes.")?;
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| Var::Attribute(key.to_string()))
}

fn parse_var(name: &str, at: (usize, usize)) -> Result<Var, TemplateError> {
    if let Some(var) = exact_var(name) {
        return Ok(var);
    }
    let trimmed = name.trim();
    // `$< client.authenticationName >` is no variable: a template means exactly what
    // it says, and Event Grid does not read it as one either (semantics.md §3).
    if trimmed != name {
        if let Some(var) = exact_var(trimmed) {
            return Err(TemplateError {
                kind: TemplateErrorKind::SpacedVariable,
                message: format!(
                    "spaces around `{trimmed}` inside the brackets: it is no variable"
                ),
                at,
                help: Some(format!(
                    "write `{var}` with nothing between the brackets and the name"
                )),
            });
        }
    }
    // The topic module is the base of the pipeline: it does its own "did you mean".
    let close = strsim::jaro_winkler(&trimmed.to_lowercase(), "client.authenticationname") >= 0.8;
    let help = match close {
        true => "did you mean `${client.authenticationName}`?".to_string(),
        false if trimmed.starts_with("client.attribute") || trimmed.starts_with("attributes.") => {
            let key = trimmed.rsplit('.').next().unwrap_or("KEY");
            format!("did you mean `${{client.attributes.{key}}}`?")
        }
        false => {
            "variables are `${client.authenticationName}` and `${client.attributes.KEY}`".into()
        }
    };
    Err(TemplateError {
        kind: TemplateErrorKind::UnknownVariable,
        message: format!("unknown variable `{name}`"),
        at,
        help: Some(help),
    })
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

impl Template {
    /// Would the template match `subject` (a topic name's levels, or with
    /// `filter` a filter's levels, which must then be contained) if its variables
    /// could take any value? The candidates `policy explain` names as a near miss.
    pub fn loosely_matches(&self, subject: &[&str], filter: bool) -> bool {
        let mut i = 0;
        for level in &self.levels {
            if *level == Level::Hash {
                return true;
            }
            let Some(s) = subject.get(i) else {
                return false;
            };
            let ok = match level {
                Level::Plus => !(filter && *s == MULTI_LEVEL),
                Level::Literal(text) => text == s,
                Level::Pattern(segs) => {
                    !(filter && (*s == SINGLE_LEVEL || *s == MULTI_LEVEL)) && glob(segs, s)
                }
                Level::Hash => true,
            };
            if !ok {
                return false;
            }
            i += 1;
        }
        i == subject.len()
    }
}

/// Does `text` match the segments with each variable standing for any text?
fn glob(segs: &[Segment], text: &str) -> bool {
    match segs.split_first() {
        None => text.is_empty(),
        Some((Segment::Text(t), rest)) => {
            text.strip_prefix(t.as_str()).is_some_and(|r| glob(rest, r))
        }
        Some((Segment::Var(_), rest)) => (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .any(|i| glob(rest, &text[i..])),
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
        assert_eq!(b.to_string(), "clients/${client.authenticationName}/status");
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
            Some("did you mean `${client.authenticationName}`?")
        );
        let e = Template::parse("a/$<client.attributes.x").unwrap_err();
        assert!(e.message.contains("unterminated"), "{e:?}");
        assert!(Template::parse("$SYS/x").is_err());
        assert!(Template::parse("").is_err());
        assert!(Template::parse("a\0b").is_err());
    }

    /// Open point of issue 12, settled: spaces inside the brackets make no variable.
    #[test]
    fn spaced_variables_are_refused_not_trimmed() {
        for text in [
            "c/$< client.authenticationName >/s",
            "c/${client.authenticationName }/s",
            "c/$<\tclient.attributes.line>/s",
        ] {
            let e = Template::parse(text).unwrap_err();
            assert_eq!(e.kind, TemplateErrorKind::SpacedVariable, "{text}: {e:?}");
            assert!(
                e.help.as_deref().is_some_and(|h| h.contains("${client.")),
                "{e:?}"
            );
        }
        let e = Template::parse("c/$< foo >/s").unwrap_err();
        assert_eq!(e.kind, TemplateErrorKind::UnknownVariable);
        assert!(Template::parse("c/$<client.authenticationName>/s").is_ok());
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
}
