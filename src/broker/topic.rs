//! Topic names and filters: validation, `$share/NAME/F` parsing and matching
//! (semantics.md §3).

use crate::source::topic::{split_shared, validate_filter, validate_topic_name, TemplateErrorKind};

/// Why a topic name or filter is unusable: the policy's own error, so that the
/// broker and `policy check` agree on what a valid topic is.
pub use crate::source::topic::TemplateError as TopicError;

/// A topic name: no wildcard, no U+0000, 1..65535 bytes (UTF-8 is checked by the codec).
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    validate_topic_name(topic)
}

/// A subscription filter split into its optional share group and the filter proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubFilter<'a> {
    pub share: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses `$share/NAME/F` (NAME non-empty, no wildcard, F a valid filter) or a plain filter.
pub fn parse_subscription(raw: &str) -> Result<SubFilter<'_>, TopicError> {
    match split_shared(raw) {
        Some(Ok((name, filter))) => {
            validate_filter(filter)?;
            Ok(SubFilter {
                share: Some(name),
                filter,
            })
        }
        Some(Err(e)) => Err(e),
        // `$share` alone names no group: refused rather than read as a topic filter.
        None if raw == "$share" => Err(TopicError {
            kind: TemplateErrorKind::Syntax,
            message: "a shared subscription is `$share/NAME/FILTER`".into(),
            at: (0, raw.len()),
            help: None,
        }),
        None => {
            validate_filter(raw)?;
            Ok(SubFilter {
                share: None,
                filter: raw,
            })
        }
    }
}

/// Does `filter` match `topic`? One definition for the whole project: the policy's.
pub use crate::source::topic::matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_the_spec() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("+/+", "/a"));
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn filters_and_shares_are_validated() {
        assert!(validate_filter("a/#/b").is_err());
        assert!(validate_filter("a/b+").is_err());
        assert!(validate_filter("a/+/#").is_ok());
        assert_eq!(
            parse_subscription("$share/g/a/+"),
            Ok(SubFilter {
                share: Some("g"),
                filter: "a/+"
            })
        );
        assert!(parse_subscription("$share/g").is_err());
        assert!(parse_subscription("$share").is_err());
        assert!(parse_subscription("$share/g/").is_err());
        assert!(validate_name("a\0b").is_err());
        assert!(validate_name("").is_err());
        assert!(parse_subscription("$share//a").is_err());
        assert!(validate_name("a/+").is_err());
    }
}
