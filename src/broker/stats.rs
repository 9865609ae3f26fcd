//! Counters the broker keeps (denials, drops, wills, traffic), read by tests,
//! logs and the Prometheus endpoint (`metrics.rs`, rendered at scrape time).
//!
//! Every counter on the packet path is a relaxed atomic in a fixed array
//! indexed by an enum: no lock, no allocation, no label lookup per packet.

use mqtt_protocol_core::mqtt::packet::Qos;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Why a message copy was dropped (the `reason` label of
/// `topicgate_messages_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A subscriber's queue (`maxQueuedMessages`) was full, or it is stalled; or,
    /// at disconnect, a persistent session's offline queue.
    QueueFull,
    /// A publisher waited `maxPublisherWait` for room in vain.
    PublisherWaitExpired,
    /// Larger than the Maximum Packet Size the receiving client announced.
    PacketTooLarge,
    /// No packet identifier was free towards the receiving client.
    NoPacketId,
    /// Its Message Expiry Interval passed before it could be sent.
    Expired,
    /// Routed before a policy reload that revoked the subscription it matched.
    Revoked,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::PublisherWaitExpired,
        DropReason::PacketTooLarge,
        DropReason::NoPacketId,
        DropReason::Expired,
        DropReason::Revoked,
    ];
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::PublisherWaitExpired => "publisher_wait_expired",
            DropReason::PacketTooLarge => "packet_too_large",
            DropReason::NoPacketId => "no_packet_id",
            DropReason::Expired => "expired",
            DropReason::Revoked => "revoked",
        }
    }
}

/// What a denied client asked for (the `action` label of
/// `topicgate_authorization_denials_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Connect,
    Will,
    Publish,
    Subscribe,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Connect,
        Action::Will,
        Action::Publish,
        Action::Subscribe,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Will => "will",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

/// The MQTT 5 reason code of a denial (the `reason_code` label). A 3.1.1
/// client gets the equivalent return code, or the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialCode {
    /// 0x86 Bad User Name or Password (identity not proven).
    BadCredentials,
    /// 0x87 Not authorized (the policy says no).
    NotAuthorized,
}

impl DenialCode {
    pub const ALL: [DenialCode; 2] = [DenialCode::BadCredentials, DenialCode::NotAuthorized];
    pub fn label(self) -> &'static str {
        match self {
            DenialCode::BadCredentials => "0x86",
            DenialCode::NotAuthorized => "0x87",
        }
    }
}

/// Open connections of one listener (the `listener` label of `topicgate_connections`).
#[derive(Debug)]
pub struct ListenerGauge {
    /// `scheme://address`, as in the `listening on` line.
    pub name: String,
    open: AtomicI64,
}

impl ListenerGauge {
    /// Counts a connection as open until the returned guard is dropped.
    pub fn open(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }
    pub fn get(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// One open connection of a listener; dropping it closes it in the gauge.
#[derive(Debug)]
pub struct OpenConnection(Arc<ListenerGauge>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A value alone on its cache line. The per-packet counters are incremented by
/// connections on every worker thread; sharing a line with each other (or with
/// the rarely written counters) would make each increment evict the others.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CacheLine<T>(pub T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Broker-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    /// MQTT 5 QoS 0 PUBLISHes dropped because the policy denied them.
    pub publish_denied_qos0_dropped: Counter,
    pub wills_published: Counter,
    pub wills_dropped: Counter,
    pub protocol_errors: Counter,
    /// Subscriptions removed because a reloaded policy no longer grants them.
    pub subscriptions_revoked: Counter,
    /// Policy reloads put in force, and refused (the policy had errors).
    pub policy_reloads_ok: Counter,
    pub policy_reloads_failed: Counter,
    /// PUBLISH packets received from clients, by QoS.
    pub received: CacheLine<[Counter; 3]>,
    /// PUBLISH packets sent to clients, by QoS.
    pub delivered: CacheLine<[Counter; 3]>,
    /// Dropped copies, by [`DropReason`] (in `DropReason::ALL` order).
    pub dropped: [Counter; DropReason::ALL.len()],
    /// Denials by [`Action`] and [`DenialCode`] (in their `ALL` order).
    pub denials: [[Counter; DenialCode::ALL.len()]; Action::ALL.len()],
    /// Listeners' connection gauges; locked only when a listener opens and at scrape.
    listeners: Mutex<Vec<Arc<ListenerGauge>>>,
}

impl Stats {
    pub fn received(&self, qos: Qos) {
        self.received[qos as usize].inc();
    }

    pub fn delivered(&self, qos: Qos) {
        self.delivered[qos as usize].inc();
    }

    pub fn drop_message(&self, reason: DropReason) {
        self.dropped[reason as usize].inc();
    }

    /// `n` copies dropped at once for one reason.
    pub fn drop_messages(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].add(n);
    }

    /// Every dropped copy, whatever the reason.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped.iter().map(Counter::get).sum()
    }

    pub fn denied(&self, action: Action, code: DenialCode) {
        self.denials[action as usize][code as usize].inc();
    }

    /// PUBLISHes the policy denied (all are Not authorized).
    pub fn publish_denied(&self) -> u64 {
        self.denials(Action::Publish, DenialCode::NotAuthorized)
    }

    /// SUBSCRIBE filters the policy denied.
    pub fn subscribe_denied(&self) -> u64 {
        self.denials(Action::Subscribe, DenialCode::NotAuthorized)
    }

    pub fn denials(&self, action: Action, code: DenialCode) -> u64 {
        self.denials[action as usize][code as usize].get()
    }

    /// The gauge of the listener named `name` (`scheme://address`), created on first use.
    pub fn listener(&self, name: &str) -> Arc<ListenerGauge> {
        let mut all = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = all.iter().find(|g| g.name == name) {
            return g.clone();
        }
        let g = Arc::new(ListenerGauge {
            name: name.to_string(),
            open: AtomicI64::new(0),
        });
        all.push(g.clone());
        g
    }

    /// Every listener's gauge, in the order they opened.
    pub fn listeners(&self) -> Vec<Arc<ListenerGauge>> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
