//! Builders for the packets tests send, and accessors for what they receive.

use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, Packet, Property, Qos, SubEntry, SubOpts, WillDelayInterval,
};

/// Everything a test may set on a CONNECT.
#[derive(Default, Clone)]
pub struct Opts {
    pub password: Option<Vec<u8>>,
    /// Clean Start / Clean Session is 1 unless `resume` is set.
    pub resume: bool,
    pub keep_alive: u16,
    pub props: Vec<Property>,
    pub will_props: Vec<Property>,
}

impl Opts {
    pub fn password(p: &str) -> Opts {
        Opts {
            password: Some(p.as_bytes().to_vec()),
            ..Default::default()
        }
    }
}

pub fn v5_connect(id: &str, user: Option<&str>) -> v5_0::Connect {
    v5_connect_with(id, user, None, Opts::default())
}

/// A v5 CONNECT with an optional will (topic, payload, qos, retain, delay).
pub fn v5_connect_with(
    id: &str,
    user: Option<&str>,
    will: Option<(&str, &[u8], Qos, bool, u32)>,
    o: Opts,
) -> v5_0::Connect {
    let mut b = v5_0::Connect::builder()
        .client_id(id)
        .unwrap()
        .clean_start(!o.resume);
    if let Some(u) = user {
        b = b.user_name(u).unwrap();
    }
    if let Some(p) = o.password {
        b = b.password(p).unwrap();
    }
    let mut will_props = o.will_props;
    if let Some((t, p, q, r, delay)) = will {
        b = b.will_message(t, p.to_vec(), q, r).unwrap();
        if delay > 0 {
            will_props.push(WillDelayInterval::new(delay).unwrap().into());
        }
    }
    if !will_props.is_empty() {
        b = b.will_props(will_props);
    }
    if !o.props.is_empty() {
        b = b.props(o.props);
    }
    b.keep_alive(o.keep_alive).build().unwrap()
}

pub fn v3_connect(
    id: &str,
    user: Option<&str>,
    will: Option<(&str, &[u8], Qos, bool)>,
) -> v3_1_1::Connect {
    v3_connect_with(id, user, will, Opts::default())
}

pub fn v3_connect_with(
    id: &str,
    user: Option<&str>,
    will: Option<(&str, &[u8], Qos, bool)>,
    o: Opts,
) -> v3_1_1::Connect {
    let mut b = v3_1_1::Connect::builder()
        .client_id(id)
        .unwrap()
        .clean_session(!o.resume);
    if let Some(u) = user {
        b = b.user_name(u).unwrap();
    }
    if let Some(p) = o.password {
        b = b.password(p).unwrap();
    }
    if let Some((t, p, q, r)) = will {
        b = b.will_message(t, p.to_vec(), q, r).unwrap();
    }
    b.keep_alive(o.keep_alive).build().unwrap()
}

pub fn v5_sub(pid: u16, filters: &[(&str, Qos)]) -> v5_0::Subscribe {
    let entries = filters
        .iter()
        .map(|(f, q)| SubEntry::new(*f, SubOpts::new().set_qos(*q)).unwrap())
        .collect::<Vec<_>>();
    v5_0::Subscribe::builder()
        .packet_id(pid)
        .entries(entries)
        .build()
        .unwrap()
}

pub fn v3_sub(pid: u16, filters: &[(&str, Qos)]) -> v3_1_1::Subscribe {
    let entries = filters
        .iter()
        .map(|(f, q)| SubEntry::new(*f, SubOpts::new().set_qos(*q)).unwrap())
        .collect::<Vec<_>>();
    v3_1_1::Subscribe::builder()
        .packet_id(pid)
        .entries(entries)
        .build()
        .unwrap()
}

pub fn v5_pub(topic: &str, payload: &[u8], qos: Qos, pid: Option<u16>) -> v5_0::Publish {
    let mut b = v5_0::Publish::builder()
        .topic_name(topic)
        .unwrap()
        .qos(qos)
        .payload(payload);
    if let Some(p) = pid {
        b = b.packet_id(p);
    }
    b.build().unwrap()
}

pub fn v3_pub(topic: &str, payload: &[u8], qos: Qos, pid: Option<u16>) -> v3_1_1::Publish {
    let mut b = v3_1_1::Publish::builder()
        .topic_name(topic)
        .unwrap()
        .qos(qos)
        .payload(payload);
    if let Some(p) = pid {
        b = b.packet_id(p);
    }
    b.build().unwrap()
}

/// (reason code byte, reason string) of a v5 CONNACK.
pub fn v5_connack(p: &Packet) -> (u8, Option<String>) {
    match p {
        Packet::V5_0Connack(c) => (c.reason_code() as u8, reason_string(c.props())),
        other => panic!("expected v5 CONNACK, got {other:?}"),
    }
}

pub fn v3_connack(p: &Packet) -> u8 {
    match p {
        Packet::V3_1_1Connack(c) => c.return_code() as u8,
        other => panic!("expected 3.1.1 CONNACK, got {other:?}"),
    }
}

pub fn reason_string(props: &[Property]) -> Option<String> {
    props.iter().find_map(|p| match p {
        Property::ReasonString(r) => Some(r.val().to_string()),
        _ => None,
    })
}

/// (topic, payload, qos, retain) of a received PUBLISH of either version.
pub fn publish_parts(p: &Packet) -> (String, Vec<u8>, Qos, bool) {
    match p {
        Packet::V5_0Publish(p) => (
            p.topic_name().to_string(),
            p.payload().as_slice().to_vec(),
            p.qos(),
            p.retain(),
        ),
        Packet::V3_1_1Publish(p) => (
            p.topic_name().to_string(),
            p.payload().as_slice().to_vec(),
            p.qos(),
            p.retain(),
        ),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

pub fn disconnect_code(p: &Packet) -> u8 {
    match p {
        Packet::V5_0Disconnect(d) => d.reason_code().map(|c| c as u8).unwrap_or(0),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}
