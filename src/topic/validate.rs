//! What a valid topic name and filter are (semantics.md §3): the MQTT rules, with the
//! same messages for `policy check`, the decisions and the broker.

use super::scan::has_nul_or_wildcard;
use super::template::{TemplateError, TemplateErrorKind};

/// The topic errors are the template errors: one notion of a valid topic.
pub type TopicError = TemplateError;

/// Maximum length of a topic name or filter in bytes (MQTT's 16-bit length). For a
/// shared subscription it bounds the whole `$share/NAME/F` string, sent as one field.
pub const MAX_TOPIC_BYTES: usize = 65_535;

fn syntax(message: impl Into<String>, at: (usize, usize), help: Option<&str>) -> TopicError {
    TemplateError {
        kind: TemplateErrorKind::Syntax,
        message: message.into(),
        at,
        help: help.map(str::to_string),
    }
}

/// The checks every topic string passes: not empty, at most [`MAX_TOPIC_BYTES`], no U+0000.
pub(super) fn common_checks(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(syntax("a topic cannot be empty", (0, 0), None));
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(syntax(
            format!(
                "a topic is at most {MAX_TOPIC_BYTES} bytes, this one is {}",
                text.len()
            ),
            (0, text.len()),
            None,
        ));
    }
    if let Some(i) = text.find('\0') {
        return Err(syntax("a topic cannot contain U+0000", (i, i + 1), None));
    }
    Ok(())
}

/// Checks a topic name as a client would PUBLISH it.
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    // Every publish decision asks this: the valid case in one pass over the bytes,
    // the errors (with their positions) from the checks below.
    if is_plainly_valid_name(topic) {
        return Ok(());
    }
    common_checks(topic)?;
    if let Some(i) = topic.find(['+', '#']) {
        return Err(syntax(
            "a topic name cannot contain wildcards",
            (i, i + 1),
            Some("`+` and `#` belong in subscription filters"),
        ));
    }
    Ok(())
}

/// Not empty, at most [`MAX_TOPIC_BYTES`], and no U+0000, `+` or `#`: exactly when
/// [`validate_name`] accepts.
#[inline]
fn is_plainly_valid_name(topic: &str) -> bool {
    let bytes = topic.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_TOPIC_BYTES && !has_nul_or_wildcard(bytes)
}

/// Checks a subscription filter (after any `$share/NAME/` prefix is removed).
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    common_checks(filter)?;
    let mut offset = 0;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let at = (offset, offset + level.len());
        if level.contains(['+', '#']) && level.len() > 1 {
            return Err(syntax("wildcards must be a whole level", at, None));
        }
        if level == "#" && levels.peek().is_some() {
            return Err(syntax("`#` must be the last level", at, None));
        }
        offset += level.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_filters() {
        assert!(validate_name("a/+").is_err());
        assert!(validate_name("a/b").is_ok());
        assert!(validate_name("a\0b").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_filter("a/#/b").is_err());
        assert!(validate_filter("a/b#").is_err());
        assert!(validate_filter("a/b+").is_err());
        assert!(validate_filter("+/#").is_ok());
        assert!(validate_filter("a//+/#").is_ok());
        assert!(validate_name(&"a".repeat(MAX_TOPIC_BYTES)).is_ok());
        assert!(validate_name(&"a".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }

    proptest::proptest! {
        /// The byte scan of the fast path accepts exactly what the checks with
        /// positions accept, multi-byte characters included.
        #[test]
        fn the_byte_scan_agrees_with_the_checks(s in "[a/+#\u{0}\u{7f}\u{80}\u{ff}\u{2b2b}é€£$ ]{0,40}") {
            let checked = common_checks(&s).is_ok() && !s.contains(['+', '#']);
            proptest::prop_assert_eq!(is_plainly_valid_name(&s), checked);
        }
    }
}
