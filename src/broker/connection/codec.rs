//! The connection's MQTT codec (mqtt-protocol-core's `Connection`), kept out
//! of line and dropped while the connection rests (decision 0032).
//!
//! The codec's state is 744 bytes inline plus its packet-identifier allocator,
//! yet between packets of an idle client it holds nothing but what CONNECT
//! and CONNACK negotiated: the protocol version, the keep-alive, whether the
//! session is persistent and the limits each side told the other. Those are
//! recorded here (`Negotiated`, a few dozen bytes) as the packets pass, so a
//! codec holding nothing else can be dropped and rebuilt identically when the
//! next packet needs it: a fresh codec is fed a CONNECT with the client's
//! values and sends a CONNACK with ours, and what those two produce (events,
//! bytes) is discarded.
//!
//! Whether the codec holds nothing else is decided by the connection (its
//! packet identifiers in flight, acknowledgements it owes, a partial packet)
//! and here (stored packets, QoS 2 handshakes open, topic aliases: a codec
//! that ever mapped one keeps its map and never rests).

use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::{ConnectionOptions, Event};
use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, GenericPacket, MaximumPacketSize, Packet, Property, ReceiveMaximum,
    ServerKeepAlive, SessionExpiryInterval, TopicAliasMaximum,
};
use mqtt_protocol_core::mqtt::result_code::{ConnectReasonCode, ConnectReturnCode, MqttError};
use mqtt_protocol_core::mqtt::{role, Connection, Version};
use std::time::Duration;
use tokio::time::Instant;

/// How long the codec must go unused before the connection may drop it: a
/// client that talks more often than this never pays for a rebuild.
pub(super) const REST_AFTER: Duration = Duration::from_secs(5);

/// The codec, live (boxed) or resting (only what rebuilds it).
pub(super) struct Codec {
    live: Option<Box<Connection<role::Server>>>,
    /// Our limits, the codec's construction options.
    max_packet_size: u32,
    receive_maximum: u16,
    /// Known once a CONNECT was decoded and an accepting CONNACK sent.
    negotiated: Option<Box<Negotiated>>,
    /// A topic alias was mapped in either direction: the codec's alias maps are
    /// state a rebuild would lose, so it stays live.
    aliases: bool,
    /// Packets passing may still change what a rebuild needs: until an
    /// accepting CONNACK, and then while a topic alias could yet be mapped
    /// (MQTT 5, a Topic Alias Maximum above 0 on either side) and none was.
    /// Otherwise packets pass without being looked at.
    watching: bool,
    /// Used since the last rest check.
    used: bool,
    /// When to check next whether the codec went unused (live only).
    rest_check: Option<Instant>,
}

/// What CONNECT and CONNACK set in the codec.
#[derive(Debug, Clone, PartialEq)]
struct Negotiated {
    version: Version,
    keep_alive: u16,
    /// 3.1.1: clean session 0; MQTT 5: a non-zero Session Expiry Interval in CONNECT.
    persistent: bool,
    /// The client's CONNECT properties the codec keeps (MQTT 5).
    client: Limits,
    /// Our CONNACK's properties the codec keeps (MQTT 5).
    told: Limits,
    /// Our CONNACK accepted the connection.
    accepted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Limits {
    topic_alias_maximum: Option<u16>,
    receive_maximum: Option<u16>,
    maximum_packet_size: Option<u32>,
    server_keep_alive: Option<u16>,
}

impl Limits {
    fn of(props: &[Property]) -> Self {
        let mut l = Limits::default();
        for p in props {
            match p {
                Property::TopicAliasMaximum(v) => l.topic_alias_maximum = Some(v.val()),
                Property::ReceiveMaximum(v) => l.receive_maximum = Some(v.val()),
                Property::MaximumPacketSize(v) => l.maximum_packet_size = Some(v.val()),
                Property::ServerKeepAlive(v) => l.server_keep_alive = Some(v.val()),
                _ => {}
            }
        }
        l
    }

    fn props(&self) -> Result<Vec<Property>, MqttError> {
        let mut props = Vec::new();
        if let Some(v) = self.topic_alias_maximum {
            props.push(TopicAliasMaximum::new(v)?.into());
        }
        if let Some(v) = self.receive_maximum {
            props.push(ReceiveMaximum::new(v)?.into());
        }
        if let Some(v) = self.maximum_packet_size {
            props.push(MaximumPacketSize::new(v)?.into());
        }
        if let Some(v) = self.server_keep_alive {
            props.push(ServerKeepAlive::new(v)?.into());
        }
        Ok(props)
    }
}

/// Rebuilding a rested codec failed: our bug (the values came from packets
/// the codec accepted), reported and the connection closed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot build the packet that restores the codec: {0}")]
    Build(MqttError),
    #[error("the codec refused the {0} that restores it")]
    Refused(&'static str),
}

impl Codec {
    /// A codec waiting for CONNECT, with our limits.
    pub(super) fn new(max_packet_size: u32, receive_maximum: u16) -> Self {
        Codec {
            live: Some(Box::new(fresh(max_packet_size, receive_maximum))),
            max_packet_size,
            receive_maximum,
            negotiated: None,
            aliases: false,
            watching: true,
            used: true,
            rest_check: None,
        }
    }

    /// The protocol version (Undetermined before CONNECT), without waking the codec.
    #[inline]
    pub(super) fn version(&self) -> Version {
        match (&self.live, &self.negotiated) {
            (Some(c), _) => c.get_protocol_version(),
            (None, Some(n)) => n.version,
            (None, None) => Version::Undetermined,
        }
    }

    /// The codec if it is live (nothing to ask a resting one: it holds no packet).
    pub(super) fn if_live(&self) -> Option<&Connection<role::Server>> {
        self.live.as_deref()
    }

    /// The live codec, rebuilt first if it rests.
    #[inline]
    pub(super) fn live(&mut self) -> Result<&mut Connection<role::Server>, RebuildError> {
        self.used = true;
        if self.live.is_none() {
            self.wake()?;
        }
        // The branch above left it live.
        self.live
            .as_deref_mut()
            .ok_or(RebuildError::Refused("state"))
    }

    /// Rebuilds the resting codec (rare: out of line).
    #[cold]
    fn wake(&mut self) -> Result<(), RebuildError> {
        let n = self
            .negotiated
            .as_deref()
            .ok_or(RebuildError::Refused("state"))?;
        let codec = rebuild(n, self.max_packet_size, self.receive_maximum)?;
        self.live = Some(Box::new(codec));
        self.rest_check = Some(Instant::now() + REST_AFTER);
        Ok(())
    }

    /// Feeds bytes to the codec (see `Connection::recv`), noting what CONNECT
    /// negotiated and whether the client maps topic aliases.
    // On every packet: inlined, so the packet and events are not moved once more.
    #[inline]
    pub(super) fn recv(&mut self, data: &mut Cursor<&[u8]>) -> Result<Vec<Event>, RebuildError> {
        let events = self.live()?.recv(data);
        if self.watching {
            self.note_received(&events);
        }
        Ok(events)
    }

    /// What CONNECT negotiated, and whether the client maps topic aliases.
    #[inline(never)]
    fn note_received(&mut self, events: &[Event]) {
        for ev in events {
            match ev {
                Event::NotifyPacketReceived(GenericPacket::V5_0Publish(p))
                    if p.props()
                        .iter()
                        .any(|p| matches!(p, Property::TopicAlias(_))) =>
                {
                    self.aliases = true;
                }
                Event::NotifyPacketReceived(GenericPacket::V3_1_1Connect(c)) => {
                    self.negotiated = Some(Box::new(Negotiated {
                        version: Version::V3_1_1,
                        keep_alive: c.keep_alive(),
                        persistent: !c.clean_session(),
                        client: Limits::default(),
                        told: Limits::default(),
                        accepted: false,
                    }));
                }
                Event::NotifyPacketReceived(GenericPacket::V5_0Connect(c)) => {
                    let persistent = c
                        .props()
                        .iter()
                        .any(|p| matches!(p, Property::SessionExpiryInterval(v) if v.val() != 0));
                    self.negotiated = Some(Box::new(Negotiated {
                        version: Version::V5_0,
                        keep_alive: c.keep_alive(),
                        persistent,
                        client: Limits::of(c.props()),
                        told: Limits::default(),
                        accepted: false,
                    }));
                }
                _ => {}
            }
        }
        self.watching = self.watch();
    }

    /// Sends a packet through the codec (see `Connection::send`), noting what
    /// an accepting CONNACK told and whether topic aliases may be mapped.
    // On every packet: inlined, so the packet and events are not moved once more.
    #[inline]
    pub(super) fn send(&mut self, p: Packet) -> Result<Vec<Event>, RebuildError> {
        if self.watching {
            self.note_sent(&p);
        }
        Ok(self.live()?.send(p))
    }

    /// What an accepting CONNACK told, and whether topic aliases may be mapped.
    #[inline(never)]
    fn note_sent(&mut self, p: &Packet) {
        match p {
            GenericPacket::V3_1_1Connack(c) => {
                let accepted = c.return_code() == ConnectReturnCode::Accepted;
                if let Some(n) = self.negotiated.as_deref_mut() {
                    n.accepted = accepted;
                }
            }
            GenericPacket::V5_0Connack(c) => {
                let accepted = c.reason_code() == ConnectReasonCode::Success;
                if let Some(n) = self.negotiated.as_deref_mut() {
                    n.told = Limits::of(c.props());
                    n.accepted = accepted;
                }
            }
            // With the client's Topic Alias Maximum above 0 the codec maps
            // aliases to what we send (`set_auto_map_topic_alias_send`).
            GenericPacket::V5_0Publish(_)
                if self
                    .negotiated
                    .as_deref()
                    .and_then(|n| n.client.topic_alias_maximum)
                    .is_some_and(|max| max > 0) =>
            {
                self.aliases = true;
            }
            _ => {}
        }
        self.watching = self.watch();
    }

    /// See `watching`.
    fn watch(&self) -> bool {
        let Some(n) = self.negotiated.as_deref().filter(|n| n.accepted) else {
            return true;
        };
        let may_map = |l: &Limits| l.topic_alias_maximum.is_some_and(|max| max > 0);
        n.version == Version::V5_0 && !self.aliases && (may_map(&n.client) || may_map(&n.told))
    }

    /// When the connection should next check whether the codec can rest:
    /// None while it rests or never can.
    #[inline]
    pub(super) fn rest_check(&self) -> Option<Instant> {
        if self.aliases || !self.negotiated.as_deref().is_some_and(|n| n.accepted) {
            return None;
        }
        self.rest_check
    }

    /// Drops the codec now if it holds nothing a rebuild would lose.
    /// `idle` is the connection's part of that judgement: no packet
    /// identifier of ours in flight, no acknowledgement owed, no partial
    /// packet, nothing decoded and not yet acted on.
    pub(super) fn rest_now(&mut self, idle: bool) -> bool {
        if !idle || self.aliases || !self.negotiated.as_deref().is_some_and(|n| n.accepted) {
            return false;
        }
        let Some(c) = self.live.as_deref() else {
            return true;
        };
        if !c.get_stored_packets().is_empty() || !c.get_qos2_publish_handled().is_empty() {
            return false;
        }
        self.live = None;
        self.rest_check = None;
        true
    }

    /// The rest check is due: rest if the codec went unused since the last
    /// check (and `idle` allows), else look again after [`REST_AFTER`].
    /// Whether it rests now.
    pub(super) fn rest_if_unused(&mut self, now: Instant, idle: bool) -> bool {
        let unused = !std::mem::take(&mut self.used);
        if unused && self.rest_now(idle) {
            return true;
        }
        self.rest_check = Some(now + REST_AFTER);
        false
    }
}

/// A codec before CONNECT, as every connection starts.
fn fresh(max_packet_size: u32, receive_maximum: u16) -> Connection<role::Server> {
    let options = ConnectionOptions::new()
        .maximum_packet_size_recv(max_packet_size)
        .receive_maximum(receive_maximum);
    let mut mqtt = Connection::<role::Server>::with_options(Version::Undetermined, options);
    mqtt.set_auto_ping_response(true);
    mqtt.set_auto_pub_response(false);
    // Use topic aliases towards MQTT 5 clients that allow them (Topic Alias Maximum > 0).
    mqtt.set_auto_map_topic_alias_send(true);
    mqtt
}

/// A codec in the state `n`'s CONNECT and CONNACK left it in: a fresh one is
/// fed an equivalent CONNECT and sends an equivalent CONNACK; the events of
/// both (a CONNACK to write, a keep-alive timer to set) are not ours to act on.
fn rebuild(
    n: &Negotiated,
    max_packet_size: u32,
    receive_maximum: u16,
) -> Result<Connection<role::Server>, RebuildError> {
    let mut codec = fresh(max_packet_size, receive_maximum);
    let (connect, connack): (Vec<u8>, Packet) = match n.version {
        Version::V5_0 => {
            let mut props = n.client.props().map_err(RebuildError::Build)?;
            if n.persistent {
                props.push(
                    SessionExpiryInterval::new(1)
                        .map_err(RebuildError::Build)?
                        .into(),
                );
            }
            let mut b = v5_0::Connect::builder()
                .client_id("r")
                .map_err(RebuildError::Build)?
                .keep_alive(n.keep_alive)
                .clean_start(true);
            if !props.is_empty() {
                b = b.props(props);
            }
            let connect = b.build().map_err(RebuildError::Build)?;
            let mut ack = v5_0::Connack::builder()
                .session_present(false)
                .reason_code(ConnectReasonCode::Success);
            let told = n.told.props().map_err(RebuildError::Build)?;
            if !told.is_empty() {
                ack = ack.props(told);
            }
            let ack = ack.build().map_err(RebuildError::Build)?;
            (connect.to_continuous_buffer(), ack.into())
        }
        _ => {
            let connect = v3_1_1::Connect::builder()
                .client_id("r")
                .map_err(RebuildError::Build)?
                .keep_alive(n.keep_alive)
                .clean_session(!n.persistent)
                .build()
                .map_err(RebuildError::Build)?;
            let ack = v3_1_1::Connack::builder()
                .session_present(false)
                .return_code(ConnectReturnCode::Accepted)
                .build()
                .map_err(RebuildError::Build)?;
            (connect.to_continuous_buffer(), ack.into())
        }
    };
    let mut cursor = Cursor::new(&connect[..]);
    let received = codec.recv(&mut cursor);
    if !received
        .iter()
        .any(|e| matches!(e, Event::NotifyPacketReceived(_)))
    {
        return Err(RebuildError::Refused("CONNECT"));
    }
    let sent = codec.send(connack);
    if sent.iter().any(|e| matches!(e, Event::NotifyError(_))) {
        return Err(RebuildError::Refused("CONNACK"));
    }
    Ok(codec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::{Qos, TopicAlias};

    /// A live codec after a real CONNECT (`connect`) and CONNACK (`connack`).
    fn negotiated(connect: Vec<u8>, connack: Packet) -> Codec {
        let mut codec = Codec::new(1024 * 1024, 256);
        let ev = codec.recv(&mut Cursor::new(&connect[..])).unwrap();
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::NotifyPacketReceived(_))));
        let ev = codec.send(connack).unwrap();
        assert!(
            !ev.iter().any(|e| matches!(e, Event::NotifyError(_))),
            "{ev:?}"
        );
        codec
    }

    fn v5_session(client_props: Vec<Property>, told: Vec<Property>) -> Codec {
        let mut c = v5_0::Connect::builder()
            .client_id("c")
            .unwrap()
            .keep_alive(30)
            .clean_start(true);
        if !client_props.is_empty() {
            c = c.props(client_props);
        }
        let connack = v5_0::Connack::builder()
            .session_present(false)
            .reason_code(ConnectReasonCode::Success)
            .props(told)
            .build()
            .unwrap();
        negotiated(c.build().unwrap().to_continuous_buffer(), connack.into())
    }

    fn v5_publish(topic: &str, qos: Qos, id: Option<u16>, props: Vec<Property>) -> Packet {
        let mut b = v5_0::Publish::builder()
            .topic_name(topic)
            .unwrap()
            .qos(qos)
            .payload(vec![0u8; 100]);
        if let Some(id) = id {
            b = b.packet_id(id);
        }
        if !props.is_empty() {
            b = b.props(props);
        }
        b.build().unwrap().into()
    }

    /// What sending `p` makes the codec do, as text (events compared, not state).
    fn sent(codec: &mut Codec, p: Packet) -> String {
        format!("{:?}", codec.send(p).unwrap())
    }

    #[test]
    fn a_rested_v5_codec_is_rebuilt_with_the_negotiated_limits() {
        let client = vec![
            ReceiveMaximum::new(2).unwrap().into(),
            MaximumPacketSize::new(120).unwrap().into(),
        ];
        let told = vec![
            MaximumPacketSize::new(4096).unwrap().into(),
            ReceiveMaximum::new(5).unwrap().into(),
            ServerKeepAlive::new(10).unwrap().into(),
        ];
        let mut a = v5_session(client.clone(), told.clone());
        let mut b = v5_session(client, told);
        assert!(b.rest_now(true));
        assert!(b.if_live().is_none());
        assert_eq!(b.version(), Version::V5_0);
        // The client's Maximum Packet Size (120) and Receive Maximum (2) hold
        // after the rebuild: a 300-byte PUBLISH is refused, the third QoS 1 too.
        let big = v5_publish("t/big", Qos::AtMostOnce, None, vec![]);
        let mut big_payload = big;
        if let GenericPacket::V5_0Publish(_) = &big_payload {
            big_payload = v5_0::Publish::builder()
                .topic_name("t/big")
                .unwrap()
                .payload(vec![0u8; 300])
                .build()
                .unwrap()
                .into();
        }
        assert_eq!(sent(&mut a, big_payload.clone()), sent(&mut b, big_payload));
        for id in 1..=3u16 {
            let (ia, ib) = (
                a.live().unwrap().acquire_packet_id(),
                b.live().unwrap().acquire_packet_id(),
            );
            assert_eq!(format!("{ia:?}"), format!("{ib:?}"));
            let p = v5_publish("t/q", Qos::AtLeastOnce, Some(id), vec![]);
            assert_eq!(sent(&mut a, p.clone()), sent(&mut b, p), "PUBLISH {id}");
        }
        // Our Receive Maximum (5): the sixth unacknowledged QoS 1 from the client is refused.
        for id in 1..=6u16 {
            let p = v5_publish("in/q", Qos::AtLeastOnce, Some(id), vec![]);
            let bytes = match &p {
                GenericPacket::V5_0Publish(p) => p.to_continuous_buffer(),
                _ => unreachable!(),
            };
            let ea = a.recv(&mut Cursor::new(&bytes[..])).unwrap();
            let eb = b.recv(&mut Cursor::new(&bytes[..])).unwrap();
            assert_eq!(
                format!("{ea:?}"),
                format!("{eb:?}"),
                "received PUBLISH {id}"
            );
        }
    }

    #[test]
    fn a_rested_v3_codec_is_rebuilt_for_a_persistent_session() {
        let connect = v3_1_1::Connect::builder()
            .client_id("c")
            .unwrap()
            .keep_alive(60)
            .clean_session(false)
            .build()
            .unwrap()
            .to_continuous_buffer();
        let connack = || {
            v3_1_1::Connack::builder()
                .session_present(false)
                .return_code(ConnectReturnCode::Accepted)
                .build()
                .unwrap()
                .into()
        };
        let mut a = negotiated(connect.clone(), connack());
        let mut b = negotiated(connect, connack());
        assert!(b.rest_now(true));
        assert_eq!(b.version(), Version::V3_1_1);
        let id = b.live().unwrap().acquire_packet_id().unwrap();
        assert_eq!(a.live().unwrap().acquire_packet_id().unwrap(), id);
        let p: Packet = v3_1_1::Publish::builder()
            .topic_name("t")
            .unwrap()
            .qos(Qos::AtLeastOnce)
            .packet_id(id)
            .payload(b"x".to_vec())
            .build()
            .unwrap()
            .into();
        assert_eq!(sent(&mut a, p.clone()), sent(&mut b, p));
        // Persistent: the codec stores what it sent, as the original does.
        assert_eq!(b.if_live().unwrap().get_stored_packets().len(), 1);
        assert_eq!(a.if_live().unwrap().get_stored_packets().len(), 1);
        // And then holds a packet: it does not rest.
        assert!(!b.rest_now(true));
    }

    #[test]
    fn a_codec_that_mapped_a_topic_alias_never_rests() {
        let told = vec![TopicAliasMaximum::new(4).unwrap().into()];
        let mut c = v5_session(vec![], told);
        let p = v5_publish(
            "a/b",
            Qos::AtMostOnce,
            None,
            vec![TopicAlias::new(1).unwrap().into()],
        );
        let bytes = match &p {
            GenericPacket::V5_0Publish(p) => p.to_continuous_buffer(),
            _ => unreachable!(),
        };
        c.recv(&mut Cursor::new(&bytes[..])).unwrap();
        assert!(!c.rest_now(true));
        assert!(c.rest_check().is_none());
    }

    #[test]
    fn a_codec_rests_only_when_the_connection_allows_and_after_going_unused() {
        let mut c = v5_session(vec![], vec![]);
        assert!(!c.rest_now(false));
        let t = Instant::now();
        c.rest_check = Some(t);
        // Used since the last check: look again later.
        c.rest_if_unused(t, true);
        assert!(c.if_live().is_some());
        assert_eq!(c.rest_check(), Some(t + REST_AFTER));
        c.rest_if_unused(t + REST_AFTER, true);
        assert!(c.if_live().is_none());
        assert_eq!(c.rest_check(), None);
    }

    #[test]
    fn a_codec_before_an_accepting_connack_never_rests() {
        let mut c = Codec::new(1024, 10);
        assert!(!c.rest_now(true));
        assert_eq!(c.version(), Version::Undetermined);
    }
}
