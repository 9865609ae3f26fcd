//! One client connection: framing with mqtt-protocol-core over any byte stream,
//! and the task that owns all per-connection state.
//!
//! The task reads bytes, feeds them to the codec's server state machine one
//! packet at a time, acts on the packets (see `connect.rs`, `publish.rs`,
//! `subscribe.rs`), and writes what the state machine asks to send. Deliveries
//! from other connections arrive on a bounded channel. No lock is held across
//! an await.

use super::durable;
use super::encode;
use super::events::DisconnectionReason;
use super::frame::{Fault, FrameScan};
use super::message::Message;
use super::preauth::{self, ConnectReader, Early, Progress};
use super::retained_delivery::RetainedDue;
use super::session::{Deliver, Delivery, Inflight, Kick, Session};
use super::state::Shared;
use super::stats::DropReason;
use super::store::Durable;
use super::tls::PeerCertificates;
use super::will::Will;
use crate::compiler::compiled::ClientId;
use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::ConnectionOptions;
use mqtt_protocol_core::mqtt::connection::{Event, TimerKind};
use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0};
use mqtt_protocol_core::mqtt::packet::{
    GenericPacket, GenericPacketTrait, Packet, Property, Qos, SubscriptionIdentifier,
};
use mqtt_protocol_core::mqtt::result_code::{DisconnectReasonCode, MqttError, PubcompReasonCode};
use mqtt_protocol_core::mqtt::{role, Connection, Version};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::futures::Notified;
use tokio::sync::watch;
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
    /// Shared with every message it publishes (`Message::origin`).
    pub(super) client_id: Arc<str>,
    pub(super) auth_name: String,
    pub(super) session: Arc<Session>,
    /// Boxed: most connections have none, and every connection holds this struct.
    pub(super) will: Option<Box<Will>>,
    pub(super) request_problem_info: bool,
    /// The client's index in the policy of a generation (None: not in it),
    /// looked up again only after the policy is replaced.
    pub(super) policy_client: Option<(u64, Option<ClientId>)>,
}

/// Past this, the output buffer gives memory back after a write.
const OUT_KEEP: usize = 64 * 1024;
/// Past this, the mail queue gives memory back once traffic is light again.
const MAIL_KEEP: usize = 1024;

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
    /// When the packet being received must be complete (`partialPacketTimeout`).
    pub(super) partial_deadline: Option<Instant>,
    pub(super) client: Option<Client>,
    /// QoS 1/2 deliveries waiting for the client's inflight window.
    pub(super) pending: VecDeque<Delivery>,
    /// Packets the codec decoded, not yet acted on.
    pub(super) inbox: VecDeque<Packet>,
    /// For the SUBSCRIBE being handled: whether each granted filter is new.
    pub(super) subscribed_new: Vec<bool>,
    /// Packet identifiers in use for our QoS 1/2 PUBLISHes to the client.
    pub(super) inflight_out: usize,
    /// MQTT 5: identifiers of the client's QoS 2 PUBLISHes not yet released,
    /// to answer a PUBREL for any other with PUBCOMP 0x92 (§3.7.2.1). The codec
    /// keeps the same set but only lets it be copied; at most Receive Maximum long.
    pub(super) qos2_open: Vec<u16>,
    /// MQTT 5: the client's Receive Maximum, enforced here rather than by the
    /// codec (see `preauth::check`).
    pub(super) client_receive_maximum: u16,
    /// Fixed-header flag check in front of the codec.
    pub(super) frames: FrameScan,
    /// What the scan found wrong; acted on after the packets before it.
    pub(super) fault: Option<Fault>,
    /// The codec failed to decode a packet of the bytes just fed: what it asked to
    /// send (its DISCONNECT). Like `fault`, acted on after the packets decoded
    /// before it, so that they are not lost and their answers go first.
    pub(super) decode_failed: Option<Vec<u8>>,
    /// A packet arrived in the bytes just fed (restarts the keep-alive period).
    pub(super) heard: bool,
    /// Deliveries taken from the session's mailbox, being encoded.
    pub(super) mail: VecDeque<Delivery>,
    /// The last take left mail in the session's mailbox for want of room.
    pub(super) mail_left: bool,
    /// Copies of this client's PUBLISH that met a full mailbox: the connection
    /// waits for room (and reads nothing meanwhile) before its next packet.
    pub(super) blocked: Vec<(Arc<Session>, Delivery)>,
    /// Retained messages owed to the session, and what sending them waits for.
    pub(super) retained_due: RetainedDue,
    /// Deliveries at the front of `pending` that go before the owed retained messages.
    pub(super) retained_ahead: usize,
    /// Why the connection is ending, when known before it ends (lifecycle events).
    pub(super) disconnection: Option<DisconnectionReason>,
    /// Packet ID -> store sequence of the stored copies in flight to the client:
    /// removed from the store once the client has them (PUBACK, PUBREC).
    pub(super) stored_out: Vec<(u16, u64)>,
    /// Acknowledgements of the client's PUBLISHes that wait for the store
    /// (`store_wait`), in the order the PUBLISHes came.
    pub(super) acks_waiting: Vec<Packet>,
    /// Resolves when everything the waiting acknowledgements need is durable.
    pub(super) store_wait: Option<Durable>,
}

/// Serves one connection on `io` until it ends. Works on any byte stream
/// (TCP, TLS, WebSocket).
pub fn run<S>(shared: Arc<Shared>, io: S, peer: String, conn_id: u64) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_with_certificate(shared, io, peer, conn_id, None)
}

/// Like [`run`], for a stream whose TLS handshake proved possession of a client
/// certificate: the certificate, not the listener's identity mode, names the client.
pub fn run_with_certificate<S>(
    shared: Arc<Shared>,
    io: S,
    peer: String,
    conn_id: u64,
    certificate: Option<PeerCertificates>,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_holding(shared, io, peer, conn_id, certificate, ())
}

/// Like [`run_with_certificate`], dropping `guard` (a connection permit) when the
/// connection ends. The state is built before the future, which then holds it
/// once: every idle connection keeps this future, so its size is its memory.
pub fn run_holding<S, G>(
    shared: Arc<Shared>,
    io: S,
    peer: String,
    conn_id: u64,
    certificate: Option<PeerCertificates>,
    guard: G,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    G: Send,
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
        partial_deadline: None,
        client: None,
        pending: VecDeque::new(),
        inbox: VecDeque::new(),
        subscribed_new: Vec::new(),
        inflight_out: 0,
        qos2_open: Vec::new(),
        client_receive_maximum: u16::MAX,
        frames: FrameScan::default(),
        fault: None,
        decode_failed: None,
        heard: false,
        mail: VecDeque::new(),
        mail_left: false,
        blocked: Vec::new(),
        retained_due: RetainedDue::None,
        retained_ahead: 0,
        disconnection: None,
        stored_out: Vec::new(),
        acks_waiting: Vec::new(),
        store_wait: None,
        certificate,
    };
    async move {
        conn.serve().await;
        drop(guard);
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) {
        let mut shutdown = self.shared.shutdown.clone();
        // Boxed: its state is needed only until CONNACK, not by every idle connection.
        Box::pin(self.handshake(&mut shutdown)).await;
        // The CONNECT's queue slot would otherwise stay allocated on every idle connection.
        self.inbox = VecDeque::new();
        if let Some(session) = self.client.as_ref().map(|c| c.session.clone()) {
            self.connected(&session, &mut shutdown).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        self.finish();
        // Boxed: its read buffer would otherwise be part of every idle connection's state.
        Box::pin(self.linger()).await;
    }

    /// After our last packet, reads and discards what the client still sends, until
    /// it closes, for at most `LINGER` and `LINGER_BYTES`. Closing a socket with
    /// unread input makes the kernel answer with a reset, which can destroy what we
    /// sent last (a DISCONNECT and its reason) before the client reads it: a client
    /// still answering PUBRECs when we disconnect it (0x93) would see a broken pipe
    /// instead. Runs after `finish`, so wills and session state never wait for it.
    async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_millis(500);
        const LINGER_BYTES: usize = 64 * 1024;
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        let mut buf = [0u8; 1024];
        while discarded < LINGER_BYTES {
            let mut rb = ReadBuf::new(&mut buf);
            let read = std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_read(cx, &mut rb));
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(())) if !rb.filled().is_empty() => discarded += rb.filled().len(),
                _ => break,
            }
        }
    }

    /// Phase 1: a complete CONNECT within the connect timeout (slowloris guard),
    /// read within `maxConnectPacketSize` and the pre-authentication budget
    /// (see `preauth`), checked, then handed to the codec.
    async fn handshake(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let deadline = Instant::now() + self.shared.config.connect_timeout;
        let mut reader = ConnectReader::new(
            self.shared.config.max_connect_packet_size,
            self.shared.pre_auth_budget.clone(),
        );
        let connect = loop {
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| self.poll_read_connect(cx, &mut reader))) => r,
                _ = shutdown.changed() => { self.end = Some(End::Shutdown); break None; }
            };
            match read {
                Err(_) => {
                    debug!(peer = %self.peer, "no CONNECT within the connect timeout");
                    break None;
                }
                Ok(Err(_)) | Ok(Ok(None)) => break None,
                Ok(Ok(Some(Progress::More))) => {}
                Ok(Ok(Some(Progress::Connect(bytes)))) => break Some(bytes),
                Ok(Ok(Some(Progress::Refuse { why, level }))) => {
                    self.refuse_early(why, level);
                    break None;
                }
            }
        };
        match connect.map(preauth::check) {
            Some(Ok(checked)) => {
                self.client_receive_maximum = checked.receive_maximum;
                self.feed(&checked.bytes);
                // The CONNECT now lives in the codec's packet: give its budget back.
                drop(checked);
                drop(reader);
                self.process_inbox(None).await;
            }
            Some(Err((why, level))) => self.refuse_early(why, level),
            None => {}
        }
        if self.client.is_none() {
            self.end.get_or_insert(End::Abnormal);
        }
        self.flush().await;
    }

    /// Serves an attached client until the connection ends. The wake-up, shutdown
    /// and keep-alive futures live across turns: re-creating them every turn would
    /// register and unregister a waiter (and a timer) for every message.
    async fn connected(&mut self, session: &Session, shutdown: &mut watch::Receiver<bool>) {
        if self.end.is_some() {
            return;
        }
        self.after_connack();
        self.flush().await;
        let wake = session.woken();
        tokio::pin!(wake);
        let stop = shutdown.changed();
        tokio::pin!(stop);
        let idle_check = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(idle_check);
        while self.end.is_none() {
            tokio::select! {
                r = std::future::poll_fn(|cx| self.poll_read_feed(cx)) => match r {
                    Ok(0) | Err(_) => self.end = Some(End::Abnormal),
                    Ok(_) => self.process_inbox(Some((session, wake.as_mut()))).await,
                },
                () = &mut wake => {
                    wake.set(session.woken());
                    self.take_mail(session);
                }
                _ = &mut stop => {
                    self.server_disconnect(DisconnectReasonCode::ServerShuttingDown, None);
                    self.end = Some(End::Shutdown);
                }
                // Owed retained messages beyond one turn's share (nothing to wait for).
                () = std::future::ready(()), if self.retained_turn() => {}
                () = &mut idle_check => {
                    // The timer runs from when it was armed; packets since then moved
                    // the deadline, so re-arm unless it really passed.
                    let now = Instant::now();
                    match self.keepalive {
                        _ if self.partial_deadline.is_some_and(|t| t <= now) => self.partial_expired(),
                        Some((t, _)) if t <= now => self.keepalive_expired(),
                        _ => idle_check.as_mut().reset(self.next_deadline()),
                    }
                }
            }
            // A packet begun in this turn may need the timer sooner.
            let next = self.next_deadline();
            if next < idle_check.deadline() {
                idle_check.as_mut().reset(next);
            }
            self.drain_pending();
            if self.mail_left && self.pending.len() < self.shared.config.max_queued_messages {
                self.take_mail(session);
                self.drain_pending();
            }
            self.flush().await;
        }
    }

    /// When the keep-alive period ends without a packet, or the packet being
    /// received must be complete, whichever is first (far away when neither is set).
    fn next_deadline(&self) -> Instant {
        let keepalive = match self.keepalive {
            Some((t, _)) => t,
            None => Instant::now() + Duration::from_secs(3600),
        };
        self.partial_deadline
            .map_or(keepalive, |p| p.min(keepalive))
    }

    /// A packet stayed incomplete for `partialPacketTimeout`: whatever the
    /// keep-alive, a client cannot make us hold a partial packet forever.
    fn partial_expired(&mut self) {
        let who = self.client.as_ref().map(|c| c.client_id.clone());
        info!(peer = %self.peer, client_id = ?who, "packet not completed within partialPacketTimeout: closing");
        self.shared.stats.protocol_errors.inc();
        self.partial_deadline = None;
        self.end.get_or_insert(End::Abnormal);
    }

    fn keepalive_expired(&mut self) {
        if let Some(c) = &self.client {
            info!(client_id = %c.client_id, "keep-alive expired");
        }
        self.keepalive = None;
        let ev = self.mqtt.notify_timer_fired(TimerKind::PingreqRecv);
        self.handle_events(ev);
        self.end.get_or_insert(End::Abnormal);
    }

    /// Reads what the socket has into the worker thread's scratch buffer and
    /// feeds it to the codec at once. The buffer is borrowed only inside this
    /// poll, never across an await, so one buffer per thread serves every
    /// connection and an idle connection holds none.
    fn poll_read_feed(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < READ_SCRATCH_SIZE {
                scratch.resize(READ_SCRATCH_SIZE, 0);
            }
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n > 0 {
                        self.feed(buf.filled());
                        let heard = std::mem::take(&mut self.heard);
                        if heard {
                            // Any packet from the client restarts the keep-alive period.
                            if let Some((_, ms)) = self.keepalive {
                                self.keepalive =
                                    Some((Instant::now() + Duration::from_millis(ms), ms));
                            }
                        }
                        // A packet's deadline runs from its first byte: a new one
                        // starts when the read ends inside a packet begun after the last
                        // complete one.
                        self.partial_deadline = match self.partial_deadline {
                            _ if !self.frames.mid_packet() => None,
                            Some(t) if !heard => Some(t),
                            _ => Some(Instant::now() + self.shared.config.partial_packet_timeout),
                        };
                    }
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Reads at most what the CONNECT still lacks (see [`ConnectReader::want`]);
    /// `None` when the stream ended.
    fn poll_read_connect(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut ConnectReader,
    ) -> Poll<std::io::Result<Option<Progress>>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < READ_SCRATCH_SIZE {
                scratch.resize(READ_SCRATCH_SIZE, 0);
            }
            let want = reader.want().clamp(1, READ_SCRATCH_SIZE);
            let mut buf = ReadBuf::new(&mut scratch[..want]);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
                Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(reader.push(buf.filled())))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                // A too large CONNECT is refused at once: its version only if it came
                // with the header.
                Poll::Pending if reader.probing() => Poll::Ready(Ok(Some(reader.give_up()))),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Refuses a connection whose CONNECT did not reach the codec: MQTT 5 gets
    /// a CONNACK with the reason code, 3.1.1 (or an unknown version) a close.
    fn refuse_early(&mut self, why: Early, level: Option<u8>) {
        self.shared.stats.connections_refused.inc();
        if matches!(
            why,
            Early::Malformed | Early::ProtocolError | Early::NotConnect
        ) {
            self.shared.stats.protocol_errors.inc();
        }
        info!(peer = %self.peer, reason = ?why, "CONNECT refused before authentication");
        if let Some(bytes) = why.reply(level) {
            self.out.extend_from_slice(&bytes);
        }
        self.end.get_or_insert(End::Abnormal);
    }

    /// Takes the session's mail, as much as the queue behind the inflight window
    /// has room for, and acts on a kick. Mail left in the mailbox keeps its
    /// publishers waiting (backpressure) instead of being dropped here.
    fn take_mail(&mut self, session: &Session) {
        let mut mail = std::mem::take(&mut self.mail);
        let max = self.shared.config.max_queued_messages;
        let room = max.saturating_sub(self.pending.len());
        let got = session.take_mail(self.conn_id, max, room, &mut mail);
        self.mail_left = got.left > 0;
        for d in mail.drain(..) {
            self.enqueue(d);
        }
        if mail.capacity() > MAIL_KEEP && got.taken < MAIL_KEEP / 4 {
            mail.shrink_to(MAIL_KEEP / 4);
        }
        self.mail = mail;
        if got.detached {
            // The session no longer knows this connection.
            self.disconnection
                .get_or_insert(DisconnectionReason::SessionTakenOver);
            self.end.get_or_insert(End::Abnormal);
            return;
        }
        let Some(client) = &self.client else { return };
        match got.kick {
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

    /// Waits (bounded by `maxPublisherWait`) for room in the mailboxes this
    /// client's last PUBLISH found full; what still finds no room is dropped.
    async fn wait_for_room(&mut self, own: &mut Option<Own<'_, '_>>) {
        let deadline = Instant::now() + self.shared.config.max_publisher_wait;
        let mut blocked = std::mem::take(&mut self.blocked);
        for (target, d) in blocked.drain(..) {
            let stored = d.stored;
            if !self.deliver_waiting(&target, d, deadline, own).await {
                self.shared
                    .stats
                    .drop_message(DropReason::PublisherWaitExpired);
                durable::unstore(
                    &self.shared,
                    &target.client_id,
                    stored.into_iter().collect(),
                );
            }
        }
        self.blocked = blocked;
    }

    /// Delivers one blocked copy once `target`'s mailbox has room, until
    /// `deadline`. Meanwhile this connection goes on taking and sending its own
    /// mail: two clients publishing to each other must not wait on each other.
    async fn deliver_waiting(
        &mut self,
        target: &Session,
        mut d: Delivery,
        deadline: Instant,
        own: &mut Option<Own<'_, '_>>,
    ) -> bool {
        let max = self.shared.config.max_queued_messages;
        loop {
            let room = target.room();
            tokio::pin!(room);
            room.as_mut().enable();
            match target.deliver(d, max) {
                Deliver::Queued => return true,
                Deliver::Dropped => return false,
                Deliver::Full(back) => d = back,
            }
            if target.is_stalled() || self.end.is_some() {
                return false;
            }
            let woke = match own.as_mut() {
                Some((_, wake)) => tokio::select! {
                    r = tokio::time::timeout_at(deadline, room.as_mut()) => r.map(|()| false),
                    () = wake.as_mut() => Ok(true),
                },
                None => tokio::time::timeout_at(deadline, room)
                    .await
                    .map(|()| false),
            };
            match woke {
                // Room, perhaps: try again.
                Ok(false) => {}
                Ok(true) => {
                    if let Some((session, wake)) = own.as_mut() {
                        wake.set(session.woken());
                        self.take_mail(session);
                        self.drain_pending();
                        self.flush().await;
                    }
                }
                Err(_) => {
                    target.mark_stalled();
                    return false;
                }
            }
        }
    }

    /// Feeds received bytes to the codec, one packet per `recv` call.
    fn feed(&mut self, data: &[u8]) {
        if self.fault.is_some() {
            return;
        }
        let bad = self.frames.scan(data);
        let data = &data[..bad.map_or(data.len(), |(at, _)| at)];
        self.feed_codec(data);
        self.fault = bad.map(|(_, fault)| fault);
    }

    fn feed_codec(&mut self, data: &[u8]) {
        let mut cursor = Cursor::new(data);
        while (cursor.position() as usize) < data.len()
            && self.end.is_none()
            && self.decode_failed.is_none()
        {
            let before = cursor.position();
            let events = self.mqtt.recv(&mut cursor);
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
    fn defer_decode_failure(&mut self, events: Vec<Event>) {
        let mut out = Vec::new();
        for ev in events {
            match ev {
                Event::RequestSendPacket { packet, .. } => {
                    out.extend_from_slice(&packet.to_continuous_buffer());
                }
                Event::NotifyError(e) => {
                    self.shared.stats.protocol_errors.inc();
                    info!(peer = %self.peer, error = %e, "packet not decodable: closing after the packets before it");
                }
                Event::RequestClose => {}
                other => self.handle_event(other),
            }
        }
        self.decode_failed = Some(out);
    }

    /// Acts on the codec's events: bytes to write, timers, errors, packets.
    pub fn handle_events(&mut self, events: Vec<Event>) {
        for ev in events {
            self.handle_event(ev);
        }
    }

    fn handle_event(&mut self, ev: Event) {
        {
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
                Event::NotifyPacketIdReleased(id) => {
                    self.inflight_out = self.inflight_out.saturating_sub(1);
                    self.delivered_stored(id);
                }
                Event::NotifyPacketReceived(p) => {
                    self.heard = true;
                    self.inbox.push_back(p);
                }
            }
        }
    }

    fn codec_error(&mut self, e: MqttError) {
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
    async fn process_inbox(&mut self, mut own: Option<Own<'_, '_>>) {
        // CONNECT and waiting for room are rare and their state is large: boxed,
        // so that the state every idle connection keeps stays small.
        while let Some(wait) = self.act_on_inbox() {
            match wait {
                Wait::Connect(info) => Box::pin(self.on_connect(*info)).await,
                Wait::Room => Box::pin(self.relieve(&mut own)).await,
            }
        }
        if self.store_wait.is_some() || !self.acks_waiting.is_empty() {
            Box::pin(self.send_acks_when_durable()).await;
        }
        if let Some(disconnect) = self.decode_failed.take() {
            if self.end.is_none() {
                self.out.extend_from_slice(&disconnect);
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
    fn act_on_inbox(&mut self) -> Option<Wait> {
        while let Some(p) = self.inbox.pop_front() {
            if self.end.is_some() {
                self.inbox.clear();
                break;
            }
            if let Some(info) = connect_info(&p) {
                return Some(Wait::Connect(Box::new(info)));
            }
            self.on_packet(p);
            // Backpressure: the next packet waits until this one's copies found room.
            if !self.blocked.is_empty() {
                return Some(Wait::Room);
            }
        }
        None
    }

    /// Sends what is ready (acknowledgements), then waits for room for the blocked copies.
    async fn relieve(&mut self, own: &mut Option<Own<'_, '_>>) {
        self.flush().await;
        self.wait_for_room(own).await;
    }

    /// Every packet but CONNECT (see [`connect_info`]).
    fn on_packet(&mut self, p: Packet) {
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
                    if !self.qos2_open.contains(&id) {
                        self.qos2_open.push(id);
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
                self.delivered_stored(r.packet_id());
                let rel = v3_1_1::Pubrel::builder().packet_id(r.packet_id()).build();
                self.send_built("PUBREL", rel);
            }
            GenericPacket::V5_0Pubrec(r) => {
                self.delivered_stored(r.packet_id());
                let failed = r.reason_code().is_some_and(|c| c.is_failure());
                if !failed {
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
                let open = self.qos2_open.iter().position(|x| *x == id);
                let mut comp = v5_0::Pubcomp::builder().packet_id(id);
                match open {
                    Some(i) => {
                        self.qos2_open.swap_remove(i);
                    }
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
        self.disconnection
            .get_or_insert(DisconnectionReason::ClientInitiatedDisconnect);
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
        self.disconnection
            .get_or_insert(DisconnectionReason::of_server_code(code));
        if self.mqtt.get_protocol_version() == Version::V5_0 && self.client.is_some() {
            let with_reason = reason
                .and_then(|r| mqtt_protocol_core::mqtt::packet::ReasonString::new(r).ok())
                .map(|rs| {
                    v5_0::Disconnect::builder()
                        .reason_code(code)
                        .props(vec![rs.into()])
                        .build()
                });
            let mut sent = false;
            if let Some(Ok(d)) = with_reason {
                let ev = self.mqtt.send(d.into());
                // MQTT 5 §3.14.2.2.3: the reason string is left out when the
                // packet would exceed the client's Maximum Packet Size.
                sent = !ev
                    .iter()
                    .any(|e| matches!(e, Event::NotifyError(MqttError::PacketTooLarge)));
                if sent {
                    self.handle_events(ev);
                }
            }
            if !sent {
                let bare = v5_0::Disconnect::builder().reason_code(code).build();
                self.send_built("DISCONNECT", bare);
            }
        }
        self.end.get_or_insert(End::Abnormal);
    }

    /// Sends a packet the broker built or, when building it failed (our bug,
    /// not the client's), logs it and closes the connection: an acknowledgement
    /// is never dropped silently, which would leave the client waiting.
    pub(super) fn send_built<P: Into<Packet>>(
        &mut self,
        what: &'static str,
        built: Result<P, MqttError>,
    ) {
        match built {
            Ok(p) => self.send(p.into()),
            Err(e) => {
                warn!(peer = %self.peer, packet = what, error = %e, "cannot build a packet to send: closing the connection");
                self.end.get_or_insert(End::Abnormal);
            }
        }
    }

    async fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let w = tokio::time::timeout(Duration::from_secs(30), self.io.write_all(&self.out)).await;
        self.out.clear();
        // Keep a buffer for the next turn, but not a burst's worth on an idle connection.
        if self.out.capacity() > OUT_KEEP {
            self.out.shrink_to(OUT_KEEP / 8);
        }
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
    ) {
        self.client = Some(Client {
            client_id: Arc::from(client_id),
            auth_name,
            session,
            will: will.map(Box::new),
            request_problem_info,
            policy_client: None,
        });
    }

    fn after_connack(&mut self) {
        if let Some(c) = &self.client {
            for d in c.session.take_offline() {
                self.pending.push_back(d);
            }
            // Retained messages still owed from before go first, as they would have.
            if c.session.has_retained() {
                self.retained_due = RetainedDue::Turn;
                self.retained_ahead = 0;
            }
        }
        self.drain_pending();
    }

    /// A stored copy that will not be sent: out of the store.
    fn unstore(&self, stored: Option<u64>) {
        if let (Some(seq), Some(c)) = (stored, &self.client) {
            durable::unstore(&self.shared, &c.client_id, vec![seq]);
        }
    }

    /// The client has the copy sent under `packet_id` (PUBACK, or PUBREC for
    /// QoS 2, after which only the PUBREL/PUBCOMP exchange is left).
    fn delivered_stored(&mut self, packet_id: u16) {
        if let Some(i) = self.stored_out.iter().position(|(id, _)| *id == packet_id) {
            let (_, seq) = self.stored_out.swap_remove(i);
            self.unstore(Some(seq));
        }
    }

    /// The client released its QoS 2 PUBLISH `packet_id` (PUBREL).
    fn released_qos2(&self, packet_id: u16) {
        if let (Some(store), Some(c)) = (&self.shared.store, &self.client) {
            if c.session.is_persistent() {
                store.submit_detached(vec![super::store::Op::DeleteQos2 {
                    client_id: c.client_id.to_string(),
                    packet_id,
                }]);
            }
        }
    }

    /// Sends an acknowledgement of the client's PUBLISH now, or after those
    /// still waiting for the store (acknowledgements keep the PUBLISHes' order).
    pub(super) fn ack(&mut self, packet: Packet) {
        if self.acks_waiting.is_empty() {
            self.send(packet);
        } else {
            self.acks_waiting.push(packet);
        }
    }

    /// Waits until what the waiting acknowledgements promise is durable, then
    /// sends them. The store failing: nothing is acknowledged and the
    /// connection closes (MQTT 5: DISCONNECT 0x80), so the client sends again.
    async fn send_acks_when_durable(&mut self) {
        let written = match self.store_wait.take() {
            Some(d) => d.wait().await,
            None => Ok(()),
        };
        let acks = std::mem::take(&mut self.acks_waiting);
        match written {
            Ok(()) => {
                for p in acks {
                    self.send(p);
                }
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "messages not acknowledged: the store could not be written; closing");
                self.server_disconnect(
                    DisconnectReasonCode::UnspecifiedError,
                    Some("the broker could not store the message"),
                );
            }
        }
    }

    /// Queues a delivery behind the inflight window (bounded).
    pub(super) fn enqueue(&mut self, d: Delivery) {
        if d.qos == Qos::AtMostOnce
            && self.pending.is_empty()
            && self.retained_due == RetainedDue::None
        {
            self.deliver(d);
            return;
        }
        if self.pending.len() >= self.shared.config.max_queued_messages {
            self.shared.stats.drop_message(DropReason::QueueFull);
            self.unstore(d.stored);
            return;
        }
        self.pending.push_back(d);
        self.drain_pending();
    }

    /// Sends queued deliveries while the client's inflight window has room,
    /// and owed retained messages in their turn.
    pub(super) fn drain_pending(&mut self) {
        while self.end.is_none() {
            if self.retained_ahead == 0 && self.retained_due != RetainedDue::None {
                if self.send_retained_batch() {
                    continue;
                }
                break;
            }
            let Some(front) = self.pending.front() else {
                break;
            };
            if front.qos != Qos::AtMostOnce && !self.window_open() {
                break;
            }
            if let Some(d) = self.pending.pop_front() {
                self.retained_ahead = self.retained_ahead.saturating_sub(1);
                self.deliver(d);
            }
        }
    }

    /// QoS 1/2 PUBLISHes the inflight window has room for now: fewer
    /// unacknowledged than both our inflight window and the client's Receive
    /// Maximum. `inflight_out` also counts what a resumed session restored,
    /// which the codec's own window does not.
    pub(super) fn window_room(&self) -> usize {
        let ours = self.shared.config.receive_maximum.max(1);
        let window = usize::from(ours.min(self.client_receive_maximum));
        window.saturating_sub(self.inflight_out)
    }

    /// Room for one more QoS 1/2 PUBLISH.
    fn window_open(&self) -> bool {
        self.window_room() > 0
    }

    /// Encodes one delivery for this client's protocol version and sends it.
    pub(super) fn deliver(&mut self, d: Delivery) {
        if d.msg.expired() {
            self.shared.stats.drop_message(DropReason::Expired);
            self.unstore(d.stored);
            return;
        }
        self.shared.stats.delivered(d.qos);
        // MQTT 3.1.1 QoS 0 carries no state in the codec: encode it straight into
        // the output, without building a packet object (the hot path of fan-out).
        if d.qos == Qos::AtMostOnce && self.mqtt.get_protocol_version() == Version::V3_1_1 {
            encode::v3_qos0_publish(&mut self.out, &d.msg.topic, &d.msg.payload, d.retain);
            return;
        }
        let packet_id = if d.qos == Qos::AtMostOnce {
            None
        } else {
            match self.mqtt.acquire_packet_id() {
                Ok(id) => {
                    self.inflight_out += 1;
                    if let Some(seq) = d.stored {
                        self.stored_out.push((id, seq));
                    }
                    Some(id)
                }
                Err(_) => {
                    // No identifier left (the window check makes this unreachable in
                    // practice): drop rather than spin.
                    self.shared.stats.drop_message(DropReason::NoPacketId);
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
}

/// Whatever ends the task releases what the connection holds: the normal end
/// (via `serve`), a panic unwinding through it, or the future being dropped
/// (cancelled). Otherwise the session would stay attached to a connection that
/// no longer exists, and every later CONNECT with its client ID would wait for a
/// takeover that never completes (issue 11). The connection permit is released
/// by the future that holds it, the same way.
impl<S> Drop for Conn<S> {
    fn drop(&mut self) {
        // Releasing may start the session's expiry timer, which needs a runtime;
        // a connection dropped outside one (never a spawned task) has nobody
        // left to release to, and a panic here could abort the process.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.finish();
        }
    }
}

impl<S> Conn<S> {
    /// Detaches from the session and decides the will (semantics.md §5).
    fn finish(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        let end = self.end.unwrap_or(End::Abnormal);
        let will = match end {
            End::Abnormal => client.will.take().map(|w| *w),
            End::Normal | End::Shutdown => None,
        };
        if let Some(w) = &will {
            debug!(client_id = %client.client_id, topic = %w.msg.topic, "connection ended abnormally: will armed");
        }
        // While unwinding from a panic the codec's state is not trusted (and a
        // second panic would abort the process): its unacknowledged packets are lost.
        let inflight = (!std::thread::panicking()).then(|| Inflight {
            version: self.mqtt.get_protocol_version(),
            packets: self.mqtt.get_stored_packets(),
            qos2_handled: self.mqtt.get_qos2_publish_handled(),
            stored: std::mem::take(&mut self.stored_out),
        });
        let why = DisconnectionReason::at_end(self.end, self.disconnection);
        self.shared
            .events
            .disconnected(&client.auth_name, &client.client_id, why);
        let shared = self.shared.clone();
        // Undelivered QoS 1/2 messages go back to the (now offline) session.
        let mut undelivered = std::mem::take(&mut self.pending);
        undelivered.extend(self.mail.drain(..));
        shared.sessions.release(
            &shared,
            &client.session,
            self.conn_id,
            will,
            inflight,
            undelivered,
        );
        debug!(client_id = %client.client_id, auth = %client.auth_name, ?end, "connection closed");
    }
}

/// The attached session and the connection's pinned wake-up future.
type Own<'s, 'w> = (&'s Session, Pin<&'w mut Notified<'s>>);

/// What stops [`Conn::act_on_inbox`].
enum Wait {
    Connect(Box<super::connect::ConnectInfo>),
    /// Copies of a PUBLISH wait for room in full mailboxes.
    Room,
}

thread_local! {
    /// Every connection served by a worker thread reads through this buffer.
    static READ_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
const READ_SCRATCH_SIZE: usize = 64 * 1024;

/// What a CONNECT asks for; None for any other packet.
fn connect_info(p: &Packet) -> Option<super::connect::ConnectInfo> {
    match p {
        GenericPacket::V3_1_1Connect(c) => Some(super::connect::ConnectInfo::v3(c)),
        GenericPacket::V5_0Connect(c) => Some(super::connect::ConnectInfo::v5(c)),
        _ => None,
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

/// Logs a denial the same way everywhere: client, action, topic, reason.
pub fn log_denial(client: &str, client_id: &str, action: &str, topic: &str, reason: &str) {
    warn!(client, client_id, action, topic, reason, "denied");
}
