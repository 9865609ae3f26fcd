//! Broker configuration: listeners' limits and identity mode.
//!
//! Every limit is explicit and configurable (`--config FILE`, JSON or YAML);
//! the defaults are safe for a laptop or a CI job.

use crate::compiler::model::NamespaceSettings;
use crate::topic::TopicLimits;
use serde::{Deserialize, Serialize};
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

    // Sessions (decision 0016).
    /// Sessions, online and offline, one authentication name may hold at once
    /// (Event Grid: `maximumClientSessionsPerAuthenticationName`). A CONNECT
    /// that would start one more is refused with Quota exceeded (0x97; 3.1.1:
    /// Not authorized, 0x05); resuming or taking over one of its sessions is not.
    #[serde(deserialize_with = "at_least_one")]
    pub max_sessions_per_authentication_name: usize,

    // Before authentication and partial packets (issue 11, decision 0015).
    /// Largest CONNECT accepted, in bytes. It is read before the client is
    /// authenticated, so it is kept small; a larger one is refused as soon as
    /// its Remaining Length is read (MQTT 5: CONNACK 0x95 Packet too large).
    pub max_connect_packet_size: u32,
    /// Bytes that all connections still reading their CONNECT may hold
    /// together; a connection whose CONNECT finds this spent is closed at once.
    pub max_pre_auth_bytes: u32,
    /// Time a packet has, from its first byte, to arrive complete, whatever
    /// the keep-alive (0 included). Seconds; the connection is closed after it.
    #[serde(with = "secs")]
    pub partial_packet_timeout: Duration,

    // Topic limits (issue 11, decision 0014).
    /// Most levels in a topic name (PUBLISH, will) or filter (SUBSCRIBE,
    /// UNSUBSCRIBE; for `$share/NAME/F`, the levels of `F`). Bounds the depth of
    /// the subscription trie and the work of routing one message.
    pub max_topic_levels: usize,
    /// Most bytes in a topic name or filter (for `$share/NAME/F`, the whole string).
    /// Bounds what one subscription pins in memory.
    pub max_topic_length: usize,

    // Durable state (`--data DIR`, decision 0025).
    /// When an acknowledgement may be sent for what the store must keep:
    /// `sync` (default) after it is fsynced; `relaxed` once it is committed,
    /// with an fsync at most `relaxedSyncInterval` later (a crash can lose
    /// that window's acknowledged messages).
    pub durability: DurabilityMode,
    /// With `durability: relaxed`: the longest a committed change waits for
    /// its fsync, in seconds (the loss window).
    #[serde(with = "secs")]
    pub relaxed_sync_interval: Duration,
}

/// The `durability` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Sync,
    Relaxed,
}

impl BrokerConfig {
    /// The store's durability for this configuration.
    pub fn store_durability(&self) -> crate::broker::store::Durability {
        match self.durability {
            DurabilityMode::Sync => crate::broker::store::Durability::Sync,
            DurabilityMode::Relaxed => crate::broker::store::Durability::Relaxed {
                window: self.relaxed_sync_interval,
            },
        }
    }
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
            max_sessions_per_authentication_name: 100,
            max_connect_packet_size: 64 * 1024,
            max_pre_auth_bytes: 32 * 1024 * 1024,
            partial_packet_timeout: Duration::from_secs(60),
            // Far above real topics (Event Grid allows 8 levels and 256 bytes, AWS IoT
            // the same, EMQX 128 levels), low enough that one subscription costs at
            // most ~128 trie nodes and 4 KB of text, and routing one message visits
            // at most 128 levels per matching branch.
            max_topic_levels: 128,
            max_topic_length: 4096,
            durability: DurabilityMode::Sync,
            relaxed_sync_interval: Duration::from_millis(100),
        }
    }
}

/// A count that 0 would make meaningless (every CONNECT refused).
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(serde::de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

impl BrokerConfig {
    /// The policy's namespace settings (Event Grid's) cap the broker's own limits:
    /// `maximumSessionExpiryInHours` the session expiry granted, and
    /// `maximumClientSessionsPerAuthenticationName` the sessions one identity may
    /// hold. A limit the config sets lower stays, so both hold (decisions 0016,
    /// 0019). A setting the policy leaves out changes nothing: Event Grid's own
    /// default of 1 session would refuse most local set-ups that never asked for it.
    pub fn capped_by(mut self, settings: &NamespaceSettings) -> Self {
        if let Some(hours) = settings.maximum_session_expiry_in_hours {
            self.max_session_expiry = self.max_session_expiry.min(u32::from(hours) * 3600);
        }
        if let Some(n) = settings.maximum_client_sessions_per_authentication_name {
            self.max_sessions_per_authentication_name = self
                .max_sessions_per_authentication_name
                .min(usize::from(n).max(1));
        }
        self
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: Option<u8>) -> NamespaceSettings {
        NamespaceSettings {
            maximum_session_expiry_in_hours: h,
            ..NamespaceSettings::default()
        }
    }

    #[test]
    fn the_namespace_session_expiry_caps_the_brokers() {
        let default = BrokerConfig::default();
        assert_eq!(
            default
                .clone()
                .capped_by(&hours(Some(2)))
                .max_session_expiry,
            7200
        );
        // A stricter configured limit stays; no setting changes nothing.
        let strict = BrokerConfig {
            max_session_expiry: 600,
            ..BrokerConfig::default()
        };
        assert_eq!(strict.capped_by(&hours(Some(8))).max_session_expiry, 600);
        assert_eq!(
            default.clone().capped_by(&hours(None)).max_session_expiry,
            default.max_session_expiry
        );
    }

    #[test]
    fn the_namespace_session_count_caps_the_brokers_and_its_absence_changes_nothing() {
        let sessions = |n: Option<u8>| NamespaceSettings {
            maximum_client_sessions_per_authentication_name: n,
            ..NamespaceSettings::default()
        };
        let default = BrokerConfig::default();
        let capped = default.clone().capped_by(&sessions(Some(3)));
        assert_eq!(capped.max_sessions_per_authentication_name, 3);
        let strict = BrokerConfig {
            max_sessions_per_authentication_name: 2,
            ..BrokerConfig::default()
        };
        assert_eq!(
            strict
                .capped_by(&sessions(Some(50)))
                .max_sessions_per_authentication_name,
            2
        );
        assert_eq!(
            default
                .clone()
                .capped_by(&sessions(None))
                .max_sessions_per_authentication_name,
            default.max_sessions_per_authentication_name
        );
    }
}
