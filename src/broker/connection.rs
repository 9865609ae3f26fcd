//! One client connection: framing with mqtt-protocol-core over any byte stream,
//! and the task that owns all per-connection state.
//!
//! The task reads bytes, feeds them to the codec's server state machine one
//! packet at a time, acts on the packets (see `connect.rs`, `publish.rs`,
//! `subscribe.rs`), and writes what the state machine asks to send. Deliveries
//! from other connections arrive on a bounded channel. No lock is held across
//! an await.

use super::frame::FrameScan;
use super::message::Message;
use super::session::{Delivery, Inflight, Kick, Session};
use super::state::Shared;
use super::tls::PeerCertificates;
use super::will::Will;
use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::ConnectionOptions;
use mqtt_protocol_core::mqtt::connection::{Event, TimerKind};
use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0};
use mqtt_protocol_core::mqtt::packet::{
    GenericPacket, GenericPacketTrait, Packet, Property, Qos, SubscriptionIdentifier,
};
use mqtt_protocol_core::mqtt::result_code::{DisconnectReasonCode, MqttError};
use mqtt_protocol_core::mqtt::{role, Connection, Version};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How the network connection ended, which decides the will's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// DISCONNECT (3.1.1) or DISCONNECT 0x00 (5): the will is discarded.
    Normal,
    /// Anything else: socket closed, keep-alive, protocol error, DISCONNECT 0x04,
    /// policy close, takeover. The will is published.
    Abnormal,
    /// The broker is shutting down: the will is not published (decision).
    Shutdown,
}

/// What an authenticated, attached connection knows about itself.
pub struct Client {
    pub(super) client_id: String,
    pub(super) auth_name: String,
    pub(super) session: Arc<Session>,
    pub(super) will: Option<Will>,
    pub(super) request_problem_info: bool,
    pub(super) rx: mpsc::Receiver<Delivery>,
    pub(super) kick: watch::Receiver<Kick>,
    pub(super) done: watch::Sender<bool>,
}

/// The per-connection task state.
pub struct Conn<S> {
    /// The client certificate a TLS handshake proved, if the listener is TLS.
    pub(super) certificate: Option<PeerCertificates>,
    pub(super) shared: Arc<Shared>,
    pub(super) io: S,
    pub(super) mqtt: Connection<role::Server>,
    pub(super) conn_id: u64,
    pub(super) peer: String,
    pub(super) out: Vec<u8>,
    /// Set once the codec asked to close, or we decided to.
    pub(super) end: Option<End>,
    pub(super) keepalive: Option<(Instant, u64)>,
    pub(super) client: Option<Client>,
    /// QoS 1/2 deliveries waiting for the client's inflight window.
    pub(super) pending: VecDeque<Delivery>,
    /// Packets the codec decoded, not yet acted on.
    pub(super) inbox: VecDeque<Packet>,
    /// For the SUBSCRIBE being handled: whether each granted filter is new.
    pub(super) subscribed_new: Vec<bool>,
    /// Packet identifiers in use for our QoS 1/2 PUBLISHes to the client.
    pub(super) inflight_out: usize,
    /// Fixed-header flag check in front of the codec.
    pub(super) frames: FrameScan,
    /// Set when the scan found a malformed header; acted on after the packets before it.
    pub(super) malformed: bool,
}

/// Serves one connection on `io` until it ends. Works on any byte stream
/// (TCP now; TLS or WebSocket later).
pub async fn run<S>(shared: Arc<Shared>, io: S, peer: String, conn_id: u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_with_certificate(shared, io, peer, conn_id, None).await
}

/// Like [`run`], for a stream whose TLS handshake proved possession of a client
/// certificate: the certificate, not the listener's identity mode, names the client.
pub async fn run_with_certificate<S>(
    shared: Arc<Shared>,
    io: S,
    peer: String,
    conn_id: u64,
    certificate: Option<PeerCertificates>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let options = ConnectionOptions::new()
        .maximum_packet_size_recv(shared.config.max_packet_size)
        .receive_maximum(shared.config.receive_maximum);
    let mut mqtt = Connection::<role::Server>::with_options(Version::Undetermined, options);
    mqtt.set_auto_ping_response(true);
    mqtt.set_auto_pub_response(false);
    // Use topic aliases towards MQTT 5 clients that allow them (Topic Alias Maximum > 0).
    mqtt.set_auto_map_topic_alias_send(true);
    let mut conn = Conn {
        shared,
        io,
        mqtt,
        conn_id,
        peer,
        out: Vec::new(),
        end: None,
        keepalive: None,
        client: None,
        pending: VecDeque::new(),
        inbox: VecDeque::new(),
        subscribed_new: Vec::new(),
        inflight_out: 0,
        frames: FrameScan::default(),
        malformed: false,
        certificate,
    };
    conn.serve().await;
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut shutdown = self.shared.shutdown.clone();

        // Phase 1: a complete CONNECT within the connect timeout (slowloris guard).
        let deadline = Instant::now() + self.shared.config.connect_timeout;
        while self.client.is_none() && self.end.is_none() {
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.io.read(&mut buf)) => r,
                _ = shutdown.changed() => { self.end = Some(End::Shutdown); break; }
            };
            match read {
                Err(_) => {
                    debug!(peer = %self.peer, "no CONNECT within the connect timeout");
                    self.end = Some(End::Abnormal);
                }
                Ok(Ok(0)) | Ok(Err(_)) => self.end = Some(End::Abnormal),
                Ok(Ok(n)) => {
                    self.feed(&buf[..n]);
                    self.process_inbox().await;
                }
            }
            self.flush().await;
        }

        // Phase 2: connected.
        if self.client.is_some() && self.end.is_none() {
            self.after_connack().await;
            self.flush().await;
        }
        while self.client.is_some() && self.end.is_none() {
            let ka = self.keepalive.map(|(t, _)| t);
            let Some(client) = self.client.as_mut() else {
                break;
            };
            tokio::select! {
                r = self.io.read(&mut buf) => match r {
                    Ok(0) | Err(_) => self.end = Some(End::Abnormal),
                    Ok(n) => {
                        self.feed(&buf[..n]);
                        self.process_inbox().await;
                    }
                },
                d = client.rx.recv() => match d {
                    Some(d) => self.enqueue(d),
                    // The session dropped our mailbox: we are no longer attached.
                    None => { self.end.get_or_insert(End::Abnormal); }
                },
                k = client.kick.changed() => {
                    let kick = if k.is_ok() { *client.kick.borrow() } else { Kick::TakenOver };
                    match kick {
                        Kick::TakenOver => {
                            info!(client_id = %client.client_id, "session taken over by a new connection");
                            self.server_disconnect(DisconnectReasonCode::SessionTakenOver, None);
                        }
                        Kick::NotAuthorized => {
                            info!(client_id = %client.client_id, "the policy no longer allows this client");
                            self.server_disconnect(
                                DisconnectReasonCode::NotAuthorized,
                                Some("the policy in force no longer allows this client"),
                            );
                        }
                        Kick::None => {}
                    }
                }
                _ = shutdown.changed() => {
                    self.server_disconnect(DisconnectReasonCode::ServerShuttingDown, None);
                    self.end = Some(End::Shutdown);
                }
                _ = sleep_until_opt(ka) => {
                    if let Some(c) = &self.client {
                        info!(client_id = %c.client_id, "keep-alive expired");
                    }
                    self.keepalive = None;
                    let ev = self.mqtt.notify_timer_fired(TimerKind::PingreqRecv);
                    self.handle_events(ev);
                    self.end.get_or_insert(End::Abnormal);
                }
            }
            self.drain_pending();
            self.flush().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        self.finish();
    }

    /// Feeds received bytes to the codec, one packet per `recv` call.
    fn feed(&mut self, data: &[u8]) {
        let bad = self.frames.scan(data);
        let data = &data[..bad.unwrap_or(data.len())];
        self.feed_codec(data);
        if bad.is_some() {
            self.malformed = true;
        }
    }

    fn feed_codec(&mut self, data: &[u8]) {
        let mut cursor = Cursor::new(data);
        while (cursor.position() as usize) < data.len() && self.end.is_none() {
            let before = cursor.position();
            let events = self.mqtt.recv(&mut cursor);
            self.handle_events(events);
            if cursor.position() == before {
                break;
            }
        }
    }

    /// Acts on the codec's events: bytes to write, timers, errors, packets.
    pub fn handle_events(&mut self, events: Vec<Event>) {
        for ev in events {
            match ev {
                Event::RequestSendPacket { packet, .. } => {
                    self.out.extend_from_slice(&packet.to_continuous_buffer());
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
                Event::NotifyPacketIdReleased(_) => {
                    self.inflight_out = self.inflight_out.saturating_sub(1);
                }
                Event::NotifyPacketReceived(p) => {
                    // Any packet from the client restarts the keep-alive period.
                    if let Some((_, ms)) = self.keepalive {
                        self.keepalive = Some((Instant::now() + Duration::from_millis(ms), ms));
                    }
                    self.inbox.push_back(p);
                }
            }
        }
    }

    fn codec_error(&mut self, e: MqttError) {
        match e {
            // Outgoing packets the client's limits forbid: drop them, keep the connection.
            MqttError::PacketTooLarge if self.end.is_none() => {
                self.shared.stats.messages_dropped.inc();
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
                self.end.get_or_insert(End::Abnormal);
            }
        }
    }

    /// Acts on decoded packets in order; stops at the first that ends the connection.
    async fn process_inbox(&mut self) {
        while let Some(p) = self.inbox.pop_front() {
            if self.end.is_some() {
                self.inbox.clear();
                break;
            }
            self.on_packet(p).await;
        }
        if self.malformed && self.end.is_none() {
            self.shared.stats.protocol_errors.inc();
            info!(peer = %self.peer, "reserved fixed-header flags set: malformed packet");
            self.server_disconnect(DisconnectReasonCode::MalformedPacket, None);
        }
    }

    async fn on_packet(&mut self, p: Packet) {
        match p {
            GenericPacket::V3_1_1Connect(c) => {
                self.on_connect(super::connect::ConnectInfo::v3(&c)).await
            }
            GenericPacket::V5_0Connect(c) => {
                self.on_connect(super::connect::ConnectInfo::v5(&c)).await
            }
            GenericPacket::V3_1_1Publish(p) => {
                let msg = Message {
                    topic: p.topic_name().to_string(),
                    payload: Arc::from(p.payload().as_slice()),
                    qos: p.qos(),
                    retain: p.retain(),
                    props: Vec::new(),
                    expires_at: None,
                    origin: String::new(),
                };
                self.on_publish(msg, p.packet_id());
            }
            GenericPacket::V5_0Publish(p) => {
                let (props, expires_at) = Message::from_props(p.props());
                let msg = Message {
                    topic: p.topic_name().to_string(),
                    payload: Arc::from(p.payload().as_slice()),
                    qos: p.qos(),
                    retain: p.retain(),
                    props,
                    expires_at,
                    origin: String::new(),
                };
                self.on_publish(msg, p.packet_id());
            }
            GenericPacket::V3_1_1Pubrec(r) => {
                if let Ok(rel) = v3_1_1::Pubrel::builder().packet_id(r.packet_id()).build() {
                    self.send(rel.into());
                }
            }
            GenericPacket::V5_0Pubrec(r) => {
                let failed = r.reason_code().is_some_and(|c| c.is_failure());
                if !failed {
                    if let Ok(rel) = v5_0::Pubrel::builder().packet_id(r.packet_id()).build() {
                        self.send(rel.into());
                    }
                }
            }
            GenericPacket::V3_1_1Pubrel(r) => {
                if let Ok(comp) = v3_1_1::Pubcomp::builder().packet_id(r.packet_id()).build() {
                    self.send(comp.into());
                }
            }
            GenericPacket::V5_0Pubrel(r) => {
                if let Ok(comp) = v5_0::Pubcomp::builder().packet_id(r.packet_id()).build() {
                    self.send(comp.into());
                }
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
            // PUBACK/PUBCOMP are bookkept by the codec; PINGREQ is answered by it.
            _ => {}
        }
    }

    fn on_disconnect_v5(&mut self, d: &v5_0::Disconnect) {
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
        self.end = Some(if code == DisconnectReasonCode::NormalDisconnection {
            End::Normal
        } else {
            End::Abnormal
        });
    }

    /// Sends a packet through the codec's state machine.
    pub fn send(&mut self, p: Packet) {
        let ev = self.mqtt.send(p);
        self.handle_events(ev);
    }

    /// MQTT 5: DISCONNECT with `code` (and a reason string) before closing; 3.1.1: just close.
    pub fn server_disconnect(&mut self, code: DisconnectReasonCode, reason: Option<&str>) {
        if self.mqtt.get_protocol_version() == Version::V5_0 && self.client.is_some() {
            let mut b = v5_0::Disconnect::builder().reason_code(code);
            if let Some(r) = reason {
                if let Ok(rs) = mqtt_protocol_core::mqtt::packet::ReasonString::new(r) {
                    b = b.props(vec![rs.into()]);
                }
            }
            if let Ok(d) = b.build() {
                self.send(d.into());
            }
        }
        self.end.get_or_insert(End::Abnormal);
    }

    async fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let out = std::mem::take(&mut self.out);
        let w = tokio::time::timeout(Duration::from_secs(30), self.io.write_all(&out)).await;
        if !matches!(w, Ok(Ok(()))) {
            self.end.get_or_insert(End::Abnormal);
        }
    }

    /// Attaches the client after a successful CONNACK: queued messages go out.
    pub fn attach(
        &mut self,
        client_id: String,
        auth_name: String,
        session: Arc<Session>,
        will: Option<Will>,
        request_problem_info: bool,
        channels: (
            mpsc::Receiver<Delivery>,
            watch::Receiver<Kick>,
            watch::Sender<bool>,
        ),
    ) {
        let (rx, kick, done) = channels;
        self.client = Some(Client {
            client_id,
            auth_name,
            session,
            will,
            request_problem_info,
            rx,
            kick,
            done,
        });
    }

    async fn after_connack(&mut self) {
        if let Some(c) = &self.client {
            for d in c.session.take_offline() {
                self.pending.push_back(d);
            }
        }
        self.drain_pending();
    }

    /// Queues a delivery behind the inflight window (bounded).
    pub(super) fn enqueue(&mut self, d: Delivery) {
        if d.qos == Qos::AtMostOnce && self.pending.is_empty() {
            self.deliver(d);
            return;
        }
        if self.pending.len() >= self.shared.config.max_queued_messages {
            self.shared.stats.messages_dropped.inc();
            return;
        }
        self.pending.push_back(d);
        self.drain_pending();
    }

    /// Sends queued deliveries while the client's inflight window has room.
    fn drain_pending(&mut self) {
        while self.end.is_none() {
            let Some(front) = self.pending.front() else {
                break;
            };
            if front.qos != Qos::AtMostOnce && !self.window_open() {
                break;
            }
            if let Some(d) = self.pending.pop_front() {
                self.deliver(d);
            }
        }
    }

    fn window_open(&self) -> bool {
        let ours = usize::from(self.shared.config.receive_maximum.max(1));
        let inflight = self.inflight_out;
        let theirs = self
            .mqtt
            .get_receive_maximum_vacancy_for_send()
            .is_none_or(|v| v > 0);
        theirs && inflight < ours
    }

    /// Encodes one delivery for this client's protocol version and sends it.
    fn deliver(&mut self, d: Delivery) {
        if d.msg.expired() {
            return;
        }
        let packet_id = if d.qos == Qos::AtMostOnce {
            None
        } else {
            match self.mqtt.acquire_packet_id() {
                Ok(id) => {
                    self.inflight_out += 1;
                    Some(id)
                }
                Err(_) => {
                    // No identifier left (the window check makes this unreachable in
                    // practice): drop rather than spin.
                    self.shared.stats.messages_dropped.inc();
                    return;
                }
            }
        };
        let packet: Option<Packet> = match self.mqtt.get_protocol_version() {
            Version::V5_0 => {
                let mut props = d.msg.outgoing_props();
                for id in &d.subscription_ids {
                    if let Ok(p) = SubscriptionIdentifier::new(*id) {
                        props.push(p.into());
                    }
                }
                build_v5_publish(&d, packet_id, props).ok()
            }
            _ => build_v3_publish(&d, packet_id).ok(),
        };
        let Some(packet) = packet else {
            if let Some(id) = packet_id {
                let ev = self.mqtt.release_packet_id(id);
                self.handle_events(ev);
            }
            return;
        };
        let ev = self.mqtt.send(packet);
        let refused = ev.iter().any(|e| matches!(e, Event::NotifyError(_)));
        self.handle_events(ev);
        if refused {
            if let Some(id) = packet_id {
                let ev = self.mqtt.release_packet_id(id);
                self.handle_events(ev);
            }
        }
    }

    /// Detaches from the session and decides the will (semantics.md §5).
    fn finish(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        let end = self.end.unwrap_or(End::Abnormal);
        let will = match end {
            End::Abnormal => client.will.take(),
            End::Normal | End::Shutdown => None,
        };
        if let Some(w) = &will {
            debug!(client_id = %client.client_id, topic = %w.msg.topic, "connection ended abnormally: will armed");
        }
        let inflight = Some(Inflight {
            version: self.mqtt.get_protocol_version(),
            packets: self.mqtt.get_stored_packets(),
            qos2_handled: self.mqtt.get_qos2_publish_handled(),
        });
        let shared = self.shared.clone();
        shared
            .sessions
            .release(&shared, &client.session, self.conn_id, will, inflight);
        // Undelivered QoS 1/2 messages go back to the (now offline) session.
        while let Ok(d) = client.rx.try_recv() {
            self.pending.push_back(d);
        }
        for d in self.pending.drain(..) {
            client
                .session
                .deliver_offline(d, shared.config.max_queued_messages);
        }
        let _ = client.done.send(true);
        debug!(client_id = %client.client_id, auth = %client.auth_name, ?end, "connection closed");
    }
}

fn build_v5_publish(
    d: &Delivery,
    id: Option<u16>,
    props: Vec<Property>,
) -> Result<Packet, MqttError> {
    let mut b = v5_0::Publish::builder()
        .topic_name(d.msg.topic.as_str())?
        .qos(d.qos)
        .retain(d.retain)
        .payload(d.msg.payload.clone());
    if let Some(id) = id {
        b = b.packet_id(id);
    }
    if !props.is_empty() {
        b = b.props(props);
    }
    Ok(b.build()?.into())
}

fn build_v3_publish(d: &Delivery, id: Option<u16>) -> Result<Packet, MqttError> {
    let mut b = v3_1_1::Publish::builder()
        .topic_name(d.msg.topic.as_str())?
        .qos(d.qos)
        .retain(d.retain)
        .payload(d.msg.payload.clone());
    if let Some(id) = id {
        b = b.packet_id(id);
    }
    Ok(b.build()?.into())
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Logs a denial the same way everywhere: client, action, topic, reason.
pub fn log_denial(client: &str, client_id: &str, action: &str, topic: &str, reason: &str) {
    warn!(client, client_id, action, topic, reason, "denied");
}
