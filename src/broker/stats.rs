//! Counters the broker keeps (denials, drops, wills), readable by tests and logs.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Broker-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    pub publish_denied: Counter,
    /// MQTT 5 QoS 0 PUBLISHes dropped because the policy denied them.
    pub publish_denied_qos0_dropped: Counter,
    pub subscribe_denied: Counter,
    pub messages_dropped: Counter,
    pub wills_published: Counter,
    pub wills_dropped: Counter,
    pub protocol_errors: Counter,
}
