//! Decisions: the questions a policy answers (connect, publish, subscribe), on the
//! fast index ([`decide`]) and on a deliberately naive model ([`reference`]) that the
//! index is tested against.
pub mod access;
pub mod chain;
pub mod decide;
mod denial;
pub mod explain;
pub mod identity;
pub mod naming;
pub mod reference;
pub mod test_runner;

use crate::compiler::model::{BindingId, SpaceId};
use serde::Serialize;

/// What granted an access: the binding, its topic space and the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub binding: BindingId,
    pub topic_space: SpaceId,
    /// Index of the template within its topic space.
    pub template: u32,
}

/// Why an access was denied, as a category (the reason text says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyKind {
    UnknownClient,
    ClientDisabled,
    InvalidTopic,
    ReservedTopic,
    NotGranted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub grant: Option<Grant>,
    pub reason: String,
    pub deny: Option<DenyKind>,
}

impl Decision {
    pub fn deny(kind: DenyKind, reason: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            grant: None,
            reason: reason.into(),
            deny: Some(kind),
        }
    }
}

impl From<Decision> for access::Verdict {
    fn from(d: Decision) -> Self {
        access::Verdict {
            allowed: d.allowed,
            reason: d.reason,
        }
    }
}
