//! Between the broker's in-memory types and the store's records.

use super::record::{now_ms, MessageRecord, OpenWillRecord, PropRecord, SubRecord};
use super::Op;
use crate::broker::message::{qos_from_u8, qos_u8, Delivery, Message};
use crate::broker::sub_options::SubOptions;
use crate::broker::will::Will;
use mqtt_protocol_core::mqtt::packet::{
    ContentType, CorrelationData, PayloadFormat, PayloadFormatIndicator, Property, ResponseTopic,
    RetainHandling, UserProperty,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A monotonic deadline as wall-clock Unix milliseconds.
pub fn deadline_to_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = now_ms();
    if at >= now {
        let left = u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX);
        wall.saturating_add(left)
    } else {
        let past = u64::try_from((now - at).as_millis()).unwrap_or(u64::MAX);
        wall.saturating_sub(past)
    }
}

/// Wall-clock Unix milliseconds as a monotonic deadline (now, if passed).
pub fn ms_to_deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms()))
}

/// `msg` as stored; `qos` and `subscription_ids` are those of the copy.
pub fn message_record(msg: &Message, qos: u8, subscription_ids: &[u32]) -> MessageRecord {
    MessageRecord {
        topic: msg.topic.clone(),
        payload: msg.payload.to_vec(),
        qos,
        retain: msg.retain,
        props: msg.props.iter().filter_map(prop_record).collect(),
        expires_at_ms: msg.expires_at.map(deadline_to_ms),
        origin: msg.origin.to_string(),
        subscription_ids: subscription_ids.to_vec(),
    }
}

/// A stored message back as the broker's; its QoS is the record's.
pub fn message(r: &MessageRecord) -> Message {
    Message {
        topic: r.topic.clone(),
        payload: Arc::from(r.payload.as_slice()),
        qos: qos_from_u8(r.qos),
        retain: r.retain,
        props: r.props.iter().filter_map(property).collect(),
        expires_at: r.expires_at_ms.map(ms_to_deadline),
        origin: Arc::from(r.origin.as_str()),
    }
}

fn prop_record(p: &Property) -> Option<PropRecord> {
    Some(match p {
        Property::PayloadFormatIndicator(v) => PropRecord::PayloadFormat(v.val()),
        Property::ContentType(v) => PropRecord::ContentType(v.val().to_string()),
        Property::ResponseTopic(v) => PropRecord::ResponseTopic(v.val().to_string()),
        Property::CorrelationData(v) => PropRecord::CorrelationData(v.val().to_vec()),
        Property::UserProperty(v) => PropRecord::User(v.key().to_string(), v.val().to_string()),
        // Only forwarded properties are kept in a Message (`Message::from_props`).
        _ => return None,
    })
}

fn property(p: &PropRecord) -> Option<Property> {
    match p {
        PropRecord::PayloadFormat(v) => {
            let f = if *v == 0 {
                PayloadFormat::Binary
            } else {
                PayloadFormat::String
            };
            PayloadFormatIndicator::new(f).ok().map(Into::into)
        }
        PropRecord::ContentType(v) => ContentType::new(v.as_str()).ok().map(Into::into),
        PropRecord::ResponseTopic(v) => ResponseTopic::new(v.as_str()).ok().map(Into::into),
        PropRecord::CorrelationData(v) => CorrelationData::new(v.clone()).ok().map(Into::into),
        PropRecord::User(k, v) => UserProperty::new(k.as_str(), v.as_str())
            .ok()
            .map(Into::into),
    }
}

pub fn sub_record(filter: &str, o: &SubOptions) -> SubRecord {
    SubRecord {
        filter: filter.to_string(),
        qos: qos_u8(o.qos),
        no_local: o.no_local,
        retain_as_published: o.retain_as_published,
        retain_handling: o.retain_handling as u8,
        subscription_id: o.subscription_id,
    }
}

pub fn sub_options(r: &SubRecord) -> SubOptions {
    SubOptions {
        qos: qos_from_u8(r.qos),
        no_local: r.no_local,
        retain_as_published: r.retain_as_published,
        retain_handling: match r.retain_handling {
            0 => RetainHandling::SendRetained,
            1 => RetainHandling::SendRetainedIfNotExists,
            _ => RetainHandling::DoNotSendRetained,
        },
        subscription_id: r.subscription_id,
    }
}

/// Op that stores one copy of `msg` for `client_id`.
pub fn put_copy(client_id: &str, seq: u64, d: &Delivery) -> Op {
    Op::PutMessage {
        client_id: client_id.to_string(),
        seq,
        record: message_record(&d.msg, qos_u8(d.qos), &d.subscription_ids),
    }
}

/// Op that records (or, for an empty payload, deletes) a retained message.
pub fn put_retained(msg: &Message) -> Op {
    if msg.payload.is_empty() {
        Op::DeleteRetained {
            topic: msg.topic.clone(),
        }
    } else {
        Op::PutRetained {
            record: message_record(msg, qos_u8(msg.qos), &[]),
        }
    }
}

/// Op that stores the will of `client_id`'s open connection.
pub fn put_open_will(client_id: &str, will: &Will) -> Op {
    Op::PutOpenWill {
        client_id: client_id.to_string(),
        record: OpenWillRecord {
            msg: message_record(&will.msg, qos_u8(will.msg.qos), &[]),
            delay: will.delay,
            expiry: will.expiry,
            auth_name: will.auth_name.clone(),
        },
    }
}

/// A stored open connection's will back as the broker's.
pub fn open_will(r: &OpenWillRecord) -> Will {
    Will {
        msg: message(&r.msg),
        delay: r.delay,
        expiry: r.expiry,
        auth_name: r.auth_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::Qos;

    #[test]
    fn a_message_with_every_forwarded_property_converts_both_ways() {
        let props: Vec<Property> = vec![
            PayloadFormatIndicator::new(PayloadFormat::String)
                .expect("pfi")
                .into(),
            ContentType::new("text/plain").expect("ct").into(),
            ResponseTopic::new("r/t").expect("rt").into(),
            CorrelationData::new(vec![1u8, 2]).expect("cd").into(),
            UserProperty::new("k", "v").expect("up").into(),
        ];
        let msg = Message {
            topic: "a/b".into(),
            payload: Arc::from(&b"hi"[..]),
            qos: Qos::ExactlyOnce,
            retain: true,
            props,
            expires_at: Some(Instant::now() + Duration::from_secs(60)),
            origin: Arc::from("c"),
        };
        let rec = message_record(&msg, 2, &[4]);
        assert_eq!(rec.props.len(), 5);
        let back = message(&rec);
        assert_eq!(back.props, msg.props);
        assert_eq!(
            (back.topic.as_str(), back.qos, back.retain),
            ("a/b", Qos::ExactlyOnce, true)
        );
        let left = back
            .expires_at
            .expect("expiry")
            .duration_since(Instant::now());
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60));
    }

    #[test]
    fn subscription_options_convert_both_ways() {
        let o = SubOptions {
            qos: Qos::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::SendRetainedIfNotExists,
            subscription_id: Some(9),
        };
        let r = sub_record("$share/g/x", &o);
        let back = sub_options(&r);
        assert_eq!(back.qos, o.qos);
        assert_eq!(back.retain_handling, o.retain_handling);
        assert_eq!(
            (
                back.no_local,
                back.retain_as_published,
                back.subscription_id
            ),
            (true, true, Some(9))
        );
    }
}
