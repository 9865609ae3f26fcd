//! An application message as the broker routes it, independent of protocol
//! version, and one copy of it for one session. A leaf: no broker imports.

use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, GenericStorePacket, MessageExpiryInterval, Packet, Property, Qos,
    SubscriptionIdentifier,
};
use mqtt_protocol_core::mqtt::result_code::MqttError;
use mqtt_protocol_core::mqtt::Version;
use std::sync::Arc;
use tokio::time::Instant;

/// One application message (a PUBLISH or a will), shared by every subscriber's copy.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Arc<[u8]>,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 properties forwarded unchanged: payload format, content type,
    /// response topic, correlation data, user properties (in their order).
    pub props: Vec<Property>,
    /// When the Message Expiry Interval runs out, if the publisher set one.
    pub expires_at: Option<Instant>,
    /// Client ID of the publisher (for No Local), shared with its connection so
    /// that a PUBLISH does not copy it.
    pub origin: Arc<str>,
}

impl Message {
    /// Keeps only the properties a broker forwards and turns Message Expiry
    /// Interval into a deadline.
    pub fn from_props(props: &[Property]) -> (Vec<Property>, Option<Instant>) {
        let mut kept = Vec::new();
        let mut expires_at = None;
        for p in props {
            match p {
                Property::PayloadFormatIndicator(_)
                | Property::ContentType(_)
                | Property::ResponseTopic(_)
                | Property::CorrelationData(_)
                | Property::UserProperty(_) => kept.push(p.clone()),
                Property::MessageExpiryInterval(m) => {
                    expires_at =
                        Some(Instant::now() + std::time::Duration::from_secs(u64::from(m.val())));
                }
                _ => {}
            }
        }
        (kept, expires_at)
    }

    /// True once the message expiry interval has passed.
    pub fn expired(&self) -> bool {
        self.expires_at.is_some_and(|t| Instant::now() >= t)
    }

    /// The properties to send now: forwarded ones plus the remaining expiry.
    pub fn outgoing_props(&self) -> Vec<Property> {
        let mut props = self.props.clone();
        if let Some(t) = self.expires_at {
            let left = t.saturating_duration_since(Instant::now()).as_secs().max(1);
            let left = u32::try_from(left).unwrap_or(u32::MAX);
            if let Ok(p) = MessageExpiryInterval::new(left) {
                props.push(p.into());
            }
        }
        props
    }
}

/// One copy of a message for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    pub qos: Qos,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Its sequence number in the durable store, when it is stored there (a
    /// QoS 1/2 copy for a persistent session, with `--data`).
    pub stored: Option<u64>,
    /// The router's epoch when it was routed: a copy routed before a policy
    /// reload finished is checked against the session's subscriptions again
    /// before it is sent (`Session::receives`, decision 0023).
    pub epoch: u64,
}

impl Delivery {
    /// For unit tests: a copy of a message on `topic` with `payload`, published
    /// and delivered at `qos` by client "p", not retained, not stored.
    #[cfg(test)]
    pub fn for_test(topic: &str, payload: &[u8], qos: Qos) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: topic.into(),
                payload: Arc::from(payload),
                qos,
                retain: false,
                props: Vec::new(),
                expires_at: None,
                origin: Arc::from("p"),
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            epoch: 0,
            stored: None,
        }
    }

    /// This copy as a PUBLISH of `version` under `id` (None for QoS 0).
    pub fn publish(&self, version: Version, id: Option<u16>) -> Result<Packet, MqttError> {
        Ok(match version {
            Version::V5_0 => self.v5_publish(id)?.into(),
            _ => self.v3_publish(id)?.into(),
        })
    }

    /// This copy as the codec keeps a QoS 1/2 PUBLISH sent under `id` and
    /// not yet acknowledged: with DUP set, to be sent again when the session
    /// resumes (a session restored from the store, semantics.md §11).
    pub fn resend(&self, version: Version, id: u16) -> Result<GenericStorePacket<u16>, MqttError> {
        match version {
            Version::V5_0 => self.v5_publish(Some(id))?.set_dup(true).try_into(),
            _ => self.v3_publish(Some(id))?.set_dup(true).try_into(),
        }
    }

    /// An MQTT 5 PUBLISH: its forwarded properties, the remaining expiry and
    /// every matching subscription identifier.
    fn v5_publish(&self, id: Option<u16>) -> Result<v5_0::Publish, MqttError> {
        let mut props = self.msg.outgoing_props();
        for sub_id in &self.subscription_ids {
            props.push(SubscriptionIdentifier::new(*sub_id)?.into());
        }
        let mut b = v5_0::Publish::builder()
            .topic_name(self.msg.topic.as_str())?
            .qos(self.qos)
            .retain(self.retain)
            .payload(self.msg.payload.clone());
        if let Some(id) = id {
            b = b.packet_id(id);
        }
        if !props.is_empty() {
            b = b.props(props);
        }
        b.build()
    }

    fn v3_publish(&self, id: Option<u16>) -> Result<v3_1_1::Publish, MqttError> {
        let mut b = v3_1_1::Publish::builder()
            .topic_name(self.msg.topic.as_str())?
            .qos(self.qos)
            .retain(self.retain)
            .payload(self.msg.payload.clone());
        if let Some(id) = id {
            b = b.packet_id(id);
        }
        b.build()
    }
}

/// A PUBREL of `version` as the codec keeps it until its PUBCOMP: sent again
/// when the session resumes.
pub fn resend_pubrel(version: Version, id: u16) -> Result<GenericStorePacket<u16>, MqttError> {
    match version {
        Version::V5_0 => v5_0::Pubrel::builder().packet_id(id).build()?.try_into(),
        _ => v3_1_1::Pubrel::builder().packet_id(id).build()?.try_into(),
    }
}

/// The lower of two QoS levels.
pub fn min_qos(a: Qos, b: Qos) -> Qos {
    if qos_u8(a) <= qos_u8(b) {
        a
    } else {
        b
    }
}

pub fn qos_u8(q: Qos) -> u8 {
    match q {
        Qos::AtMostOnce => 0,
        Qos::AtLeastOnce => 1,
        Qos::ExactlyOnce => 2,
    }
}

pub fn qos_from_u8(q: u8) -> Qos {
    match q {
        0 => Qos::AtMostOnce,
        1 => Qos::AtLeastOnce,
        _ => Qos::ExactlyOnce,
    }
}
