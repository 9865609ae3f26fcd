//! Shared subscriptions: `$share/NAME/FILTER` (MQTT 5 §4.8.2), also accepted from
//! MQTT 3.1.1 clients as Event Grid does.

use super::template::TemplateErrorKind;
use super::validate::{validate_filter, TopicError, MAX_TOPIC_BYTES};

/// What starts a shared subscription: `$share/NAME/FILTER`.
pub const SHARE_PREFIX: &str = "$share/";

/// Does this subscription string name a shared subscription?
pub fn is_shared(raw: &str) -> bool {
    raw.starts_with(SHARE_PREFIX)
}

/// A subscription filter split into its optional share group and the filter proper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubFilter<'a> {
    pub share: Option<&'a str>,
    pub filter: &'a str,
}

fn invalid(raw: &str, message: &str) -> TopicError {
    TopicError {
        kind: TemplateErrorKind::Syntax,
        message: message.into(),
        at: (0, raw.len()),
        help: None,
    }
}

/// Parses `$share/NAME/F` (NAME non-empty, no wildcard, F a valid filter) or a plain
/// filter. MQTT sends the whole string as one field, so [`MAX_TOPIC_BYTES`] bounds all
/// of it, `$share/NAME/` included.
pub fn parse_subscription(raw: &str) -> Result<SubFilter<'_>, TopicError> {
    if raw.len() > MAX_TOPIC_BYTES {
        return Err(invalid(
            raw,
            &format!(
                "a topic filter is at most {MAX_TOPIC_BYTES} bytes, `$share/NAME/` included; this one is {}",
                raw.len()
            ),
        ));
    }
    match raw.strip_prefix(SHARE_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((name, filter)) if is_share_name(name) && !filter.is_empty() => {
                validate_filter(filter)?;
                Ok(SubFilter {
                    share: Some(name),
                    filter,
                })
            }
            _ => Err(invalid(
                raw,
                "a shared subscription is `$share/NAME/FILTER` with a non-empty NAME without wildcards",
            )),
        },
        // `$share` alone names no group: refused rather than read as a topic filter.
        None if raw == "$share" => Err(invalid(
            raw,
            "a shared subscription is `$share/NAME/FILTER`",
        )),
        None => {
            validate_filter(raw)?;
            Ok(SubFilter {
                share: None,
                filter: raw,
            })
        }
    }
}

fn is_share_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', '#'])
}

/// The filter that is matched: `F` of `$share/NAME/F`, or `raw` itself. Unvalidated.
pub(super) fn matched_part(raw: &str) -> &str {
    match raw.strip_prefix("$share/").and_then(|r| r.split_once('/')) {
        Some((name, filter)) if is_share_name(name) => filter,
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_parsed_and_validated() {
        assert_eq!(
            parse_subscription("$share/g/a/+"),
            Ok(SubFilter {
                share: Some("g"),
                filter: "a/+"
            })
        );
        assert_eq!(parse_subscription("a/b").map(|s| s.share), Ok(None));
        for bad in [
            "$share/g",
            "$share",
            "$share/g/",
            "$share//a",
            "$share/g+/a",
            "$share/g/a/#/b",
        ] {
            assert!(parse_subscription(bad).is_err(), "{bad}");
        }
    }

    /// Issue 12: the 65,535-byte limit is on the whole string, prefix included.
    #[test]
    fn the_length_limit_covers_the_share_prefix() {
        let prefix = "$share/g/";
        let fits = prefix.to_string() + &"a".repeat(MAX_TOPIC_BYTES - prefix.len());
        assert_eq!(fits.len(), 65_535);
        assert!(parse_subscription(&fits).is_ok());
        let over = fits + "a";
        assert_eq!(over.len(), 65_536);
        assert!(parse_subscription(&over).is_err());
        assert!(parse_subscription(&"a".repeat(65_536)).is_err());
    }
}
