//! What the client sends: bytes fed to the codec one packet at a time (behind
//! the fixed-header scan), the codec's events, and each decoded packet acted
//! on in order (CONNECT in `connect`, PUBLISH in `publish`, SUBSCRIBE and
//! UNSUBSCRIBE in `subscribe`, the QoS 2 handshake and DISCONNECT here).

use super::backpressure::Own;
use super::connect::{connect_info, ConnectInfo};
use super::{Conn, End};
use crate::broker::encode;
use crate::broker::events::DisconnectionReason;
use crate::broker::frame::{Fault, Split};
use crate::broker::message::Message;
use crate::broker::stats::DropReason;
use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::{Event, TimerKind};
use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0};
use mqtt_protocol_core::mqtt::packet::{GenericPacket, Packet, Property, Qos};
use mqtt_protocol_core::mqtt::result_code::{DisconnectReasonCode, MqttError, PubcompReasonCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, info};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn feed(&mut self, data: &[u8]) {
        if self.fault.is_some() {
            return;
        }
        // MQTT 3.1.1 with identifiers of its own (decision 0035): the PUBACKs
        // of its QoS 1 PUBLISHes are taken out of the stream before the codec.
        if self.packet_ids.is_some() || self.frames.holding() {
            let mut frames = std::mem::take(&mut self.frames);
            self.fault = frames.split(data, &mut TakeOwnAcks(self));
            self.frames = frames;
            return;
        }
        let bad = self.frames.scan(data);
        let data = &data[..bad.map_or(data.len(), |(at, _)| at)];
        self.feed_codec(data);
        self.fault = bad.map(|(_, fault)| fault);
    }

    /// The PUBACK of our QoS 1 PUBLISH `id` (3.1.1), taken before the codec:
    /// what the codec's `recv` did with it (`handle_event`), without it.
    fn took_puback(&mut self, id: u16) {
        self.heard = true;
        if self
            .packet_ids
            .as_deref_mut()
            .is_some_and(|ids| ids.acknowledged(id))
        {
            self.exchange_complete(id);
        }
    }

    /// Our PUBLISH `id` is acknowledged to the end (PUBACK, PUBCOMP, or the
    /// codec gave the identifier back): a place in the client's inflight
    /// window is free and its stored copy, if any, goes.
    fn exchange_complete(&mut self, id: u16) {
        self.inflight_out = self.inflight_out.saturating_sub(1);
        self.delivered_stored(id);
    }

    pub(super) fn feed_codec(&mut self, data: &[u8]) {
        let mut cursor = Cursor::new(data);
        while (cursor.position() as usize) < data.len()
            && self.end.is_none()
            && !self.decode_failed()
        {
            let before = cursor.position();
            let events = match self.mqtt.recv(&mut cursor) {
                Ok(events) => events,
                Err(e) => return self.codec_lost(&e),
            };
            if events.iter().any(|e| matches!(e, Event::NotifyError(_))) {
                self.defer_decode_failure(events);
            } else {
                self.handle_events(events);
            }
            if cursor.position() == before {
                break;
            }
        }
    }

    /// A packet the codec could not decode ends the connection, but only after
    /// the packets before it in the same read were acted on (`process_inbox`):
    /// what it asked to send waits in `decode_failed` until then.
    pub(super) fn defer_decode_failure(&mut self, events: Vec<Event>) {
        let mut out = Vec::new();
        for ev in events {
            match ev {
                Event::RequestSendPacket { packet, .. } => {
                    encode::packet(&mut out, &packet);
                }
                Event::NotifyError(e) => {
                    self.shared.stats.protocol_errors.inc();
                    info!(peer = %self.peer, error = %e, "packet not decodable: closing after the packets before it");
                }
                Event::RequestClose => {}
                other => self.handle_event(other),
            }
        }
        self.rare().decode_failed = Some(out);
    }

    /// Acts on the codec's events: bytes to write, timers, errors, packets.
    pub fn handle_events(&mut self, events: Vec<Event>) {
        for ev in events {
            self.handle_event(ev);
        }
    }

    pub(super) fn handle_event(&mut self, ev: Event) {
        {
            match ev {
                Event::RequestSendPacket { packet, .. } => {
                    encode::packet(&mut self.traffic.out, &packet);
                }
                Event::RequestClose => {
                    self.end.get_or_insert(End::Abnormal);
                }
                Event::RequestTimerReset {
                    kind: TimerKind::PingreqRecv,
                    duration_ms,
                } => {
                    self.keepalive = Some((
                        Instant::now() + Duration::from_millis(duration_ms),
                        duration_ms,
                    ));
                }
                Event::RequestTimerCancel(TimerKind::PingreqRecv) => self.keepalive = None,
                Event::RequestTimerReset { .. } | Event::RequestTimerCancel(_) => {}
                Event::NotifyError(e) => self.codec_error(e),
                Event::NotifyPacketIdReleased(id) => {
                    self.released_by_codec(id);
                    self.exchange_complete(id);
                }
                Event::NotifyPacketReceived(p) => {
                    self.heard = true;
                    // One PUBACK per QoS 1 copy delivered: not queued (nor moved twice
                    // more) when the codec has already done all there is to do with it.
                    if !codec_handled(&p) {
                        self.traffic.inbox.push_back(p);
                    }
                }
            }
        }
    }

    pub(super) fn codec_error(&mut self, e: MqttError) {
        match e {
            // Outgoing packets the client's limits forbid: drop them, keep the connection.
            MqttError::PacketTooLarge if self.end.is_none() => {
                self.shared.stats.drop_message(DropReason::PacketTooLarge);
                debug!(peer = %self.peer, "packet larger than the client's maximum: dropped");
            }
            MqttError::PacketNotAllowedToSend | MqttError::ReceiveMaximumExceeded
                if self.end.is_none() =>
            {
                debug!(peer = %self.peer, error = %e, "send refused by the codec");
            }
            _ => {
                self.shared.stats.protocol_errors.inc();
                let who = self
                    .client
                    .as_ref()
                    .map(|c| c.client_id.clone())
                    .unwrap_or_default();
                info!(peer = %self.peer, client_id = %who, error = %e, "protocol error, closing");
                self.disconnection
                    .get_or_insert(DisconnectionReason::ClientError);
                self.end.get_or_insert(End::Abnormal);
            }
        }
    }

    /// Acts on decoded packets in order; stops at the first that ends the connection.
    /// `own` is the attached session and the connection's wake-up, so that
    /// waiting for room elsewhere does not stop this connection's own deliveries.
    pub(super) async fn process_inbox(&mut self, mut own: Option<Own<'_, '_>>) {
        // CONNECT and waiting for room are rare and their state is large: boxed,
        // so that the state every idle connection keeps stays small.
        while let Some(wait) = self.act_on_inbox() {
            match wait {
                Wait::Connect(info) => Box::pin(self.on_connect(*info)).await,
                Wait::Room => Box::pin(self.relieve(&mut own)).await,
            }
        }
        if self.acks_wait_for_store() {
            Box::pin(self.send_acks_when_durable()).await;
        }
        if let Some(disconnect) = self.rare.as_mut().and_then(|r| r.decode_failed.take()) {
            if self.end.is_none() {
                self.traffic.out.extend_from_slice(&disconnect);
                self.disconnection
                    .get_or_insert(DisconnectionReason::ClientError);
                self.end = Some(End::Abnormal);
            }
        }
        if let (Some(fault), None) = (self.fault, self.end) {
            self.shared.stats.protocol_errors.inc();
            info!(peer = %self.peer, ?fault, "malformed packet or protocol error: closing");
            let (code, reason) = match fault {
                Fault::Flags => (
                    DisconnectReasonCode::MalformedPacket,
                    "reserved fixed-header flags set",
                ),
                Fault::ZeroPacketId => (DisconnectReasonCode::ProtocolError, "packet identifier 0"),
            };
            self.server_disconnect(code, Some(reason));
        }
    }

    /// Acts on decoded packets until one needs waiting for.
    pub(super) fn act_on_inbox(&mut self) -> Option<Wait> {
        while let Some(p) = self.traffic.inbox.pop_front() {
            if self.end.is_some() {
                self.traffic.inbox.clear();
                break;
            }
            if let Some(info) = connect_info(&p) {
                return Some(Wait::Connect(Box::new(info)));
            }
            self.on_packet(p);
            // Backpressure: the next packet waits until this one's copies found room.
            if !self.traffic.blocked.is_empty() {
                return Some(Wait::Room);
            }
        }
        None
    }

    /// Every packet but CONNECT (see [`connect_info`]).
    pub(super) fn on_packet(&mut self, p: Packet) {
        match p {
            GenericPacket::V3_1_1Connect(_) | GenericPacket::V5_0Connect(_) => {}
            GenericPacket::V3_1_1Publish(p) => {
                let Some(origin) = self.client.as_ref().map(|c| c.client_id.clone()) else {
                    return;
                };
                let msg = Message {
                    topic: p.topic_name().to_string(),
                    payload: Arc::from(p.payload().as_slice()),
                    qos: p.qos(),
                    retain: p.retain(),
                    props: Vec::new(),
                    expires_at: None,
                    origin,
                };
                self.on_publish(msg, p.packet_id());
            }
            GenericPacket::V5_0Publish(p) => {
                let Some(origin) = self.client.as_ref().map(|c| c.client_id.clone()) else {
                    return;
                };
                if p.props()
                    .iter()
                    .any(|p| matches!(p, Property::SubscriptionIdentifier(_)))
                {
                    // MQTT 5 §3.3.4 [MQTT-3.3.4-6]: only the server sends these.
                    self.shared.stats.protocol_errors.inc();
                    info!(client_id = %origin, "Subscription Identifier in a client's PUBLISH: protocol error");
                    self.server_disconnect(
                        DisconnectReasonCode::ProtocolError,
                        Some("a PUBLISH from a client must not carry a Subscription Identifier"),
                    );
                    return;
                }
                if let (Qos::ExactlyOnce, Some(id)) = (p.qos(), p.packet_id()) {
                    let open = &mut self.rare().qos2_open;
                    if !open.contains(&id) {
                        open.push(id);
                    }
                }
                let (props, expires_at) = Message::from_props(p.props());
                let msg = Message {
                    topic: p.topic_name().to_string(),
                    payload: Arc::from(p.payload().as_slice()),
                    qos: p.qos(),
                    retain: p.retain(),
                    props,
                    expires_at,
                    origin,
                };
                self.on_publish(msg, p.packet_id());
            }
            GenericPacket::V3_1_1Pubrec(r) => {
                self.received_stored(r.packet_id());
                let rel = v3_1_1::Pubrel::builder().packet_id(r.packet_id()).build();
                self.send_built("PUBREL", rel);
            }
            GenericPacket::V5_0Pubrec(r) => {
                let failed = r.reason_code().is_some_and(|c| c.is_failure());
                // A failed PUBREC ended the exchange: the codec released the
                // identifier (and the copy left the store) already.
                if !failed {
                    self.received_stored(r.packet_id());
                    let rel = v5_0::Pubrel::builder().packet_id(r.packet_id()).build();
                    self.send_built("PUBREL", rel);
                }
            }
            GenericPacket::V3_1_1Pubrel(r) => {
                self.released_qos2(r.packet_id());
                let comp = v3_1_1::Pubcomp::builder().packet_id(r.packet_id()).build();
                self.send_built("PUBCOMP", comp);
            }
            GenericPacket::V5_0Pubrel(r) => {
                let id = r.packet_id();
                self.released_qos2(id);
                let open = self.rare.as_mut().and_then(|r| {
                    let i = r.qos2_open.iter().position(|x| *x == id)?;
                    Some(r.qos2_open.swap_remove(i))
                });
                let mut comp = v5_0::Pubcomp::builder().packet_id(id);
                match open {
                    Some(_) => {}
                    // MQTT 5 §3.7.2.1: no QoS 2 PUBLISH with this identifier is open.
                    None => comp = comp.reason_code(PubcompReasonCode::PacketIdentifierNotFound),
                }
                self.send_built("PUBCOMP", comp.build());
            }
            GenericPacket::V3_1_1Subscribe(s) => self.on_subscribe_v3(&s),
            GenericPacket::V5_0Subscribe(s) => self.on_subscribe_v5(&s),
            GenericPacket::V3_1_1Unsubscribe(u) => self.on_unsubscribe_v3(&u),
            GenericPacket::V5_0Unsubscribe(u) => self.on_unsubscribe_v5(&u),
            GenericPacket::V3_1_1Disconnect(_) => self.end = Some(End::Normal),
            GenericPacket::V5_0Disconnect(d) => self.on_disconnect_v5(&d),
            GenericPacket::V5_0Auth(_) => {
                self.server_disconnect(
                    DisconnectReasonCode::ProtocolError,
                    Some("AUTH is not supported"),
                );
                self.end.get_or_insert(End::Abnormal);
            }
            // PUBACK/PUBCOMP are bookkept by the codec; PINGREQ is answered by it
            // (`codec_handled`: they do not even reach the inbox).
            _ => {}
        }
    }

    pub(super) fn on_disconnect_v5(&mut self, d: &v5_0::Disconnect) {
        let code = d
            .reason_code()
            .unwrap_or(DisconnectReasonCode::NormalDisconnection);
        if let (Some(props), Some(c)) = (&d.props, &self.client) {
            for p in props {
                if let Property::SessionExpiryInterval(v) = p {
                    let cur = c.session.expiry();
                    if cur == 0 && v.val() != 0 {
                        // MQTT 5 §3.14.2.2.2: a protocol error (the will is published).
                        self.server_disconnect(
                            DisconnectReasonCode::ProtocolError,
                            Some("session expiry cannot be set on DISCONNECT when CONNECT had 0"),
                        );
                        return;
                    }
                    c.session
                        .set_expiry(v.val().min(self.shared.config.max_session_expiry));
                }
            }
        }
        self.disconnection
            .get_or_insert(DisconnectionReason::ClientInitiatedDisconnect);
        self.end = Some(if code == DisconnectReasonCode::NormalDisconnection {
            End::Normal
        } else {
            End::Abnormal
        });
    }
}

/// Packets the codec acts on completely (PUBACK and PUBCOMP free the packet
/// identifier, PINGREQ is answered): [`Conn::on_packet`] has nothing to do with them.
fn codec_handled(p: &Packet) -> bool {
    matches!(
        p,
        GenericPacket::V3_1_1Puback(_)
            | GenericPacket::V5_0Puback(_)
            | GenericPacket::V3_1_1Pubcomp(_)
            | GenericPacket::V5_0Pubcomp(_)
            | GenericPacket::V3_1_1Pingreq(_)
            | GenericPacket::V5_0Pingreq(_)
    )
}

/// `FrameScan::split`'s view of the connection: a PUBACK is the connection's
/// own while its identifier is one of our QoS 1 PUBLISHes in flight and the
/// codec is still being fed (after a packet it could not decode, nothing is
/// read, as before); everything else goes to the codec.
struct TakeOwnAcks<'a, S>(&'a mut Conn<S>);

impl<S> Split for TakeOwnAcks<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn owns(&self, id: u16) -> bool {
        self.0.end.is_none()
            && !self.0.decode_failed()
            && self
                .0
                .packet_ids
                .as_deref()
                .is_some_and(|ids| ids.is_ours(id))
    }

    fn take(&mut self, id: u16) {
        self.0.took_puback(id);
    }

    fn pass(&mut self, bytes: &[u8]) {
        self.0.feed_codec(bytes);
    }
}

/// What stops [`Conn::act_on_inbox`].
pub(super) enum Wait {
    Connect(Box<ConnectInfo>),
    /// Copies of a PUBLISH wait for room in full mailboxes.
    Room,
}
