//! Topic names and filters: validation, `$share/NAME/F` parsing and matching
//! (semantics.md §3).

/// Why a topic name or filter is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    Wildcard,
    BadWildcard,
    Nul,
    BadShare,
}

/// A topic name: no wildcard, no U+0000, 1..65535 bytes (UTF-8 is checked by the codec).
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    Ok(())
}

/// A topic filter: `+` is a whole level, `#` a whole last level.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.contains('\0') {
        return Err(TopicError::Nul);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains(['+', '#']) && level.len() != 1 {
            return Err(TopicError::BadWildcard);
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(TopicError::BadWildcard);
        }
    }
    Ok(())
}

/// A subscription filter split into its optional share group and the filter proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubFilter<'a> {
    pub share: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses `$share/NAME/F` (NAME non-empty, no wildcard, F a valid filter) or a plain filter.
pub fn parse_subscription(raw: &str) -> Result<SubFilter<'_>, TopicError> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let (name, filter) = rest.split_once('/').ok_or(TopicError::BadShare)?;
        if name.is_empty() || name.contains(['+', '#']) {
            return Err(TopicError::BadShare);
        }
        validate_filter(filter)?;
        return Ok(SubFilter {
            share: Some(name),
            filter,
        });
    }
    if raw == "$share" || raw.starts_with("$share/") {
        return Err(TopicError::BadShare);
    }
    validate_filter(raw)?;
    Ok(SubFilter {
        share: None,
        filter: raw,
    })
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
        assert!(parse_subscription("$share//a").is_err());
        assert!(validate_name("a/+").is_err());
    }
}
