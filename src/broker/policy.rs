//! The policy in force, swappable atomically (a reload replaces it whole).

use crate::decisions::access::AccessPolicy;
use std::sync::{Arc, RwLock};

/// Holds the current policy. Each decision reads it once (`current()`), so a
/// reload never mixes two policies within one decision.
pub struct PolicyHandle {
    inner: RwLock<Arc<dyn AccessPolicy>>,
}

impl PolicyHandle {
    pub fn new(policy: Arc<dyn AccessPolicy>) -> Self {
        PolicyHandle {
            inner: RwLock::new(policy),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<dyn AccessPolicy> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the policy; connections see it at their next decision.
    pub fn replace(&self, policy: Arc<dyn AccessPolicy>) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = policy;
    }
}
