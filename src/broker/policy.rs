//! The policy in force, swappable atomically (a reload replaces it whole).

use crate::decisions::access::AccessPolicy;
use std::sync::{Arc, RwLock};

/// Holds the current policy. Each decision reads it once (`current()`), so a
/// reload never mixes two policies within one decision.
pub struct PolicyHandle {
    inner: RwLock<(Arc<dyn AccessPolicy>, u64)>,
}

impl PolicyHandle {
    pub fn new(policy: Arc<dyn AccessPolicy>) -> Self {
        PolicyHandle {
            inner: RwLock::new((policy, 0)),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<dyn AccessPolicy> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The policy in force now and its generation, which changes with every
    /// [`replace`](Self::replace): what a connection looked up in one policy
    /// (its client's index) stays valid while the generation is the same.
    pub fn current_with_generation(&self) -> (Arc<dyn AccessPolicy>, u64) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (inner.0.clone(), inner.1)
    }

    /// The generation of the policy in force now.
    pub fn generation(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Replaces the policy; connections see it at their next decision.
    /// Call it through `reload::apply`, which also revokes what it no longer grants.
    pub fn replace(&self, policy: Arc<dyn AccessPolicy>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let generation = inner.1.wrapping_add(1);
        *inner = (policy, generation);
    }
}
