//! Topics: the one home of topic names, filters, shared subscriptions, templates and
//! their substitution, skeletons, matching, the exact subset and overlap algebra, and
//! the broker's topic limits (semantics.md §3).
//!
//! It is the base of the pipeline: it imports nothing else from this crate, and no
//! other module matches or compares topics. Nothing here walks topic levels by
//! recursion: a topic's depth may come from a network client or a policy file.
//!
//! - [`template`]: the template grammar, variables, substitution, skeletons.
//! - [`validate`]: what a valid topic name and filter are.
//! - [`shared`]: shared subscriptions, `$share/NAME/FILTER`.
//! - [`filter`]: filters as values, and matching.
//! - [`algebra`]: subset, intersection and witnesses of difference, exact.
//! - [`limits`]: `maxTopicLevels` and `maxTopicLength`.
//! - [`scan`]: byte scans of topic text for the decision path.
//! - [`trie`]: matching a topic against a trie of filter levels (the broker's router).

pub mod algebra;
pub mod filter;
pub mod limits;
pub mod scan;
pub mod shared;
pub mod template;
pub mod trie;
pub mod validate;

pub use algebra::{example_topic, intersect, is_subset, witness, Vocabulary};
pub use filter::{matches, FLevel, Filter};
pub use limits::{LimitExceeded, TopicLimits};
pub use shared::{parse_subscription, SubFilter};
pub use template::{
    is_safe_value, Level, Segment, Template, TemplateError, TemplateErrorKind, Var, VARIABLE_FORMS,
};
pub use validate::{validate_filter, validate_name, TopicError, MAX_TOPIC_BYTES};
