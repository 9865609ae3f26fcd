//! The records kept in the store, and their codec.
//!
//! Records are plain serde structs encoded with postcard (already a
//! dependency for the compiled policy): compact varints, no schema to ship,
//! and a decode of bytes that are not a record is an error, never a panic.
//! Compatibility is by the store's format version (`schema::FORMAT_VERSION`),
//! not by self-describing records: a change to any record bumps it.
//! Times are wall-clock Unix milliseconds: a monotonic instant means nothing
//! after a restart.

use serde::{Deserialize, Serialize};

/// One application message: a copy queued for a session, or a retained message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2: for a queued copy the QoS it is delivered with.
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties forwarded unchanged, in their order.
    pub props: Vec<PropRecord>,
    /// When the Message Expiry Interval runs out (Unix ms).
    pub expires_at_ms: Option<u64>,
    /// Client ID of the publisher (No Local).
    pub origin: String,
    /// Subscription identifiers of a queued copy.
    pub subscription_ids: Vec<u32>,
}

/// The MQTT 5 properties a broker forwards with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropRecord {
    PayloadFormat(u8),
    ContentType(String),
    ResponseTopic(String),
    CorrelationData(Vec<u8>),
    User(String, String),
}

/// One subscription of a session, by its raw filter (with `$share/NAME/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRecord {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0, 1 or 2 (MQTT 5 Retain Handling).
    pub retain_handling: u8,
    pub subscription_id: Option<u32>,
}

/// A will waiting for its delay to run out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillRecord {
    pub msg: MessageRecord,
    /// When it is published (Unix ms).
    pub due_ms: u64,
    /// Its Message Expiry Interval, counted from when it is published.
    pub expiry: Option<u32>,
    /// The authentication name it is authorized for again when it fires.
    pub auth_name: String,
}

/// The will of a connection that was open when it was written (semantics.md
/// §11, "Wills across a crash"): if the broker stops without that connection
/// ending, the will is published as if it ended at the restart, `delay`
/// seconds after it. Kept under the client ID, persistent session or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWillRecord {
    pub msg: MessageRecord,
    /// Its Will Delay Interval in seconds (already capped by the config).
    pub delay: u32,
    /// Its Message Expiry Interval, counted from when it is published.
    pub expiry: Option<u32>,
    /// The authentication name it is authorized for again when it fires.
    pub auth_name: String,
}

/// A persistent session (its queued messages are records of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub auth_name: String,
    /// Session Expiry Interval in seconds; `u32::MAX` never expires.
    pub expiry: u32,
    /// The MQTT protocol level it was last connected with (4 or 5).
    pub protocol: u8,
    pub subscriptions: Vec<SubRecord>,
    /// When its connection ended (Unix ms); None while connected.
    pub disconnected_at_ms: Option<u64>,
    pub will: Option<WillRecord>,
}

/// A queued copy that was sent to its subscriber: the packet identifier it
/// went out under and how far its exchange got, so that a restart resends it
/// as MQTT requires of a resumed session (semantics.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRecord {
    pub packet_id: u16,
    pub state: OutboundState,
}

/// Where a QoS 2 exchange with the subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboundState {
    /// PUBLISH sent, no PUBREC yet: resent as PUBLISH with DUP=1.
    PublishSent,
    /// PUBREC received and PUBREL sent: resent as PUBREL, never as PUBLISH
    /// again (MQTT 5 §4.3.3).
    PubrelSent,
}

/// A record's bytes could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct DecodeError {
    pub what: &'static str,
    #[source]
    pub source: postcard::Error,
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail (no maps with
    // non-string keys, no sequences of unknown length); an empty record is
    // what a failure would give, and it is refused as damaged when read back.
    postcard::to_allocvec(record).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|source| DecodeError { what, source })
}

/// Now as Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> MessageRecord {
        MessageRecord {
            topic: "clients/a/status".into(),
            payload: b"offline".to_vec(),
            qos: 1,
            retain: true,
            props: vec![
                PropRecord::ContentType("text/plain".into()),
                PropRecord::User("k".into(), "v".into()),
                PropRecord::CorrelationData(vec![0, 255]),
            ],
            expires_at_ms: Some(1_700_000_000_123),
            origin: "a".into(),
            subscription_ids: vec![7, 9],
        }
    }

    #[test]
    fn a_session_with_a_will_reads_back_equal() {
        let s = SessionRecord {
            auth_name: "alice".into(),
            expiry: 3600,
            protocol: 5,
            subscriptions: vec![SubRecord {
                filter: "$share/g/a/#".into(),
                qos: 2,
                no_local: true,
                retain_as_published: false,
                retain_handling: 2,
                subscription_id: Some(3),
            }],
            disconnected_at_ms: Some(5),
            will: Some(WillRecord {
                msg: message(),
                due_ms: 10,
                expiry: Some(60),
                auth_name: "alice".into(),
            }),
        };
        let back: SessionRecord = decode("session", &encode(&s)).expect("decodes");
        assert_eq!(back, s);
    }

    #[test]
    fn an_outbound_state_reads_back_equal() {
        for state in [OutboundState::PublishSent, OutboundState::PubrelSent] {
            let r = OutboundRecord {
                packet_id: 65535,
                state,
            };
            let back: OutboundRecord = decode("outbound", &encode(&r)).expect("decodes");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn bytes_that_are_not_a_record_are_an_error() {
        assert!(decode::<MessageRecord>("message", &[]).is_err());
        assert!(decode::<MessageRecord>("message", &[0xff; 3]).is_err());
        let mut cut = encode(&message());
        cut.truncate(cut.len() / 2);
        assert!(decode::<MessageRecord>("message", &cut).is_err());
    }
}
