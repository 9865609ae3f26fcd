//! The broker's limits on topic names and filters, with the reason each refusal gives.

use super::shared::matched_part;

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
        self.check_parts(topic.len(), || topic)
    }

    /// Checks a subscription filter as sent: `$share/NAME/F` or a plain filter.
    pub fn check_subscription(&self, raw: &str) -> Result<(), LimitExceeded> {
        self.check_parts(raw.len(), || matched_part(raw))
    }

    /// The length first: it costs nothing, and bounds the scan that counts levels.
    fn check_parts<'a>(
        &self,
        length: usize,
        levels_of: impl FnOnce() -> &'a str,
    ) -> Result<(), LimitExceeded> {
        if length > self.max_length {
            return Err(LimitExceeded::TooLong {
                length,
                max: self.max_length,
            });
        }
        let levels = levels_of().bytes().filter(|&b| b == b'/').count() + 1;
        if levels > self.max_levels {
            return Err(LimitExceeded::TooManyLevels {
                levels,
                max: self.max_levels,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
