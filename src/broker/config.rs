//! Broker configuration: listeners' limits and identity mode.
//!
//! Every limit is explicit and configurable (`--config FILE`, JSON or YAML);
//! the defaults are safe for a laptop or a CI job.

use crate::topic::TopicLimits;
use serde::Deserialize;
use std::time::Duration;

/// How a plaintext listener learns who a client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMode {
    /// Username plus a password checked against the client's argon2 `passwordHash`.
    Password,
    /// Development mode (loopback only): the username alone names the client.
    /// `anonymous` maps clients that send no username to that policy client.
    Dev { anonymous: Option<String> },
}

/// Limits and protocol options of the broker. All sizes are in bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerConfig {
    /// Open connections accepted at once; more get CONNACK Server Busy / Server unavailable.
    pub max_connections: usize,
    /// Largest packet accepted from a client (and announced in MQTT 5 CONNACK).
    pub max_packet_size: u32,
    /// Inflight window: QoS 1/2 PUBLISHes a client may have unacknowledged
    /// (our Receive Maximum), and the most we keep unacknowledged towards a client.
    pub receive_maximum: u16,
    /// Messages queued for one session: offline; and, online, both in the
    /// session's mailbox and in the connection's queue behind the inflight window.
    pub max_queued_messages: usize,
    /// Subscriptions held by one session.
    pub max_subscriptions_per_session: usize,
    /// Time a new connection has to send a complete CONNECT.
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
    /// Largest keep-alive accepted; a larger (or zero) request is replaced by
    /// this value via Server Keep Alive in MQTT 5. 0 = accept what the client asks.
    pub max_keep_alive: u16,
    /// Topic aliases a MQTT 5 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Largest session expiry interval granted, in seconds.
    pub max_session_expiry: u32,
    /// Highest QoS supported (0, 1 or 2).
    pub max_qos: u8,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Largest will delay honoured, in seconds (Event Grid caps it at 300).
    pub max_will_delay: u32,
    /// How long a publisher waits, in seconds, when a subscriber's queue
    /// (`maxQueuedMessages`) is full: the publisher's connection reads nothing
    /// meanwhile (backpressure); after it the copy is dropped and the
    /// subscriber is treated as stalled until it catches up.
    #[serde(with = "secs")]
    pub max_publisher_wait: Duration,
    /// Most levels in a topic name (PUBLISH, will) or filter (SUBSCRIBE,
    /// UNSUBSCRIBE; for `$share/NAME/F`, the levels of `F`). Bounds the depth of
    /// the subscription trie and the work of routing one message.
    pub max_topic_levels: usize,
    /// Most bytes in a topic name or filter (for `$share/NAME/F`, the whole string).
    /// Bounds what one subscription pins in memory.
    pub max_topic_length: usize,
}

impl BrokerConfig {
    /// The topic limits as the topic module checks them.
    pub fn topic_limits(&self) -> TopicLimits {
        TopicLimits {
            max_levels: self.max_topic_levels,
            max_length: self.max_topic_length,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            receive_maximum: 256,
            max_queued_messages: 1000,
            max_subscriptions_per_session: 100,
            connect_timeout: Duration::from_secs(10),
            max_keep_alive: 0,
            topic_alias_maximum: 10,
            max_session_expiry: 7 * 24 * 3600,
            max_qos: 2,
            retain_available: true,
            max_will_delay: 300,
            max_publisher_wait: Duration::from_millis(500),
            // Far above real topics (Event Grid allows 8 levels and 256 bytes, AWS IoT
            // the same, EMQX 128 levels), low enough that one subscription costs at
            // most ~128 trie nodes and 4 KB of text, and routing one message visits
            // at most 128 levels per matching branch.
            max_topic_levels: 128,
            max_topic_length: 4096,
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(0.0..=86_400.0).contains(&secs) {
            return Err(serde::de::Error::custom(
                "seconds must be between 0 and 86400",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}
