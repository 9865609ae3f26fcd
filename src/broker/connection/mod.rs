//! One client connection: framing with mqtt-protocol-core over any byte stream,
//! and the task that owns all per-connection state. No lock is held across an
//! await.
//!
//! The flow, file by file:
//! - `run_loop`: the task; the CONNECT handshake, then one loop over the
//!   socket, the session's wake-up, shutdown and the timers;
//! - `inbound`: bytes to the codec, its events, each decoded packet acted on:
//!   `connect`, `publish`, `subscribe` (with authorization);
//! - `backpressure`: taking the session's mail as far as there is room, and a
//!   publisher waiting for room in full mailboxes;
//! - `outbound`: deliveries waiting for the client's inflight window, and the
//!   owed retained messages (`retained`) in their turn;
//! - `send`: packets encoded and written;
//! - `codec`: the MQTT codec, dropped while the client is quiet and rebuilt
//!   from what CONNECT/CONNACK negotiated when the next packet needs it
//!   (decision 0032);
//! - `revocation`: after a policy reload, copies routed before it checked
//!   again, the client and its will re-authorized;
//! - this file: the state, starting the task, and releasing the session at
//!   its end (whatever ends it).

mod backpressure;
mod codec;
mod connect;
mod durable_acks;
mod inbound;
mod outbound;
mod packet_ids;
mod publish;
mod queue;
mod rare;
mod retained;
mod revocation;
mod run_loop;
mod send;
#[cfg(test)]
mod store_failure_tests;
mod subscribe;
mod traffic;

use super::events::DisconnectionReason;
use super::frame::{Fault, FrameScan};
use super::lifecycle;
use super::session::{Inflight, Session};
use super::state::Shared;
use super::tls::PeerCertificates;
use super::will::Will;
use crate::compiler::compiled::ClientId;
use mqtt_protocol_core::mqtt::packet::GenericStorePacket;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, warn};

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
    pub(super) auth_name: Arc<str>,
    pub(super) session: Arc<Session>,
    /// Boxed: most connections have none, and every connection holds this struct.
    pub(super) will: Option<Box<Will>>,
    pub(super) request_problem_info: bool,
    /// The client's index in the policy of a generation (None: not in it),
    /// looked up again only after the policy is replaced.
    pub(super) policy_client: Option<(u64, Option<ClientId>)>,
}

/// The per-connection task state.
pub struct Conn<S> {
    /// The client certificate a TLS handshake proved, if the listener is TLS.
    /// Boxed: needed only for CONNECT, and every connection holds this struct.
    pub(super) certificate: Option<Box<PeerCertificates>>,
    pub(super) shared: Arc<Shared>,
    pub(super) io: S,
    /// The MQTT codec, dropped while the connection rests (`codec`).
    pub(in crate::broker::connection) mqtt: codec::Codec,
    pub(super) conn_id: u64,
    pub(super) peer: String,
    /// The output buffer, the outbound queue, the inbox, the mail and the
    /// blocked copies: boxed while busy, absent while resting (`traffic`).
    pub(in crate::broker::connection) traffic: traffic::TrafficSlot,
    /// Set once the codec asked to close, or we decided to.
    pub(super) end: Option<End>,
    pub(super) keepalive: Option<(Instant, u64)>,
    /// When the packet being received must be complete (`partialPacketTimeout`).
    pub(super) partial_deadline: Option<Instant>,
    pub(super) client: Option<Client>,
    /// Packet identifiers in use for our QoS 1/2 PUBLISHes to the client.
    pub(super) inflight_out: usize,
    /// MQTT 3.1.1: who holds those identifiers, from the first QoS 1/2
    /// PUBLISH until the connection rests (decision 0035).
    pub(in crate::broker::connection) packet_ids: Option<Box<packet_ids::PacketIds>>,
    /// MQTT 5: the client's Receive Maximum, enforced here rather than by the
    /// codec (see `preauth::check`).
    pub(super) client_receive_maximum: u16,
    /// Fixed-header flag check in front of the codec.
    pub(super) frames: FrameScan,
    /// What the scan found wrong; acted on after the packets before it.
    pub(super) fault: Option<Fault>,
    /// A packet arrived in the bytes just fed (restarts the keep-alive period).
    pub(super) heard: bool,
    /// The last take left mail in the session's mailbox for want of room.
    pub(super) mail_left: bool,
    /// Why the connection is ending, when known before it ends (lifecycle events).
    pub(super) disconnection: Option<DisconnectionReason>,
    /// SUBSCRIBE scratch, QoS 2 and durable bookkeeping, a deferred decode
    /// failure: created on first use, dropped when the connection rests.
    pub(in crate::broker::connection) rare: Option<Box<rare::Rare>>,
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
    let mut conn = Conn::new(shared, io, peer, conn_id, certificate);
    async move {
        conn.serve().await;
        drop(guard);
    }
}

impl<S> Conn<S> {
    /// A connection's state before the first byte: no client, nothing queued.
    fn new(
        shared: Arc<Shared>,
        io: S,
        peer: String,
        conn_id: u64,
        certificate: Option<PeerCertificates>,
    ) -> Self {
        let mqtt = codec::Codec::new(shared.config.max_packet_size, shared.config.receive_maximum);
        Conn {
            shared,
            io,
            mqtt,
            conn_id,
            peer,
            traffic: traffic::TrafficSlot::default(),
            end: None,
            keepalive: None,
            partial_deadline: None,
            client: None,
            inflight_out: 0,
            packet_ids: None,
            client_receive_maximum: u16::MAX,
            frames: FrameScan::default(),
            fault: None,
            heard: false,
            mail_left: false,
            disconnection: None,
            rare: None,
            certificate: certificate.map(Box::new),
        }
    }

    /// Attaches the client after a successful CONNACK: queued messages go out.
    /// The client ID is the session's (shared), and so is the authentication
    /// name unless it differs in case from the session's owner.
    pub fn attach(
        &mut self,
        auth_name: &str,
        session: Arc<Session>,
        will: Option<Will>,
        request_problem_info: bool,
    ) {
        let auth_name = if *session.auth_name == *auth_name {
            session.auth_name.clone()
        } else {
            Arc::from(auth_name)
        };
        self.client = Some(Client {
            client_id: session.client_id.clone(),
            auth_name,
            session,
            will: will.map(Box::new),
            request_problem_info,
            policy_client: None,
        });
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
    /// The connection's part of whether its codec may rest: nothing of ours in
    /// flight, no acknowledgement owed or waiting, no packet partly received
    /// or decoded and not yet acted on, no fault pending, not ending.
    pub(super) fn codec_may_rest(&self) -> bool {
        self.end.is_none()
            && self.client.is_some()
            && self.inflight_out == 0
            && self.rare_holds_nothing()
            && self.traffic.inbox.is_empty()
            && self.traffic.blocked.is_empty()
            && self.fault.is_none()
            && !self.frames.mid_packet()
    }

    /// Rests the connection of a quiet client: the codec's state goes
    /// (`codec`), and so does the traffic box with the buffers a busier moment
    /// left allocated (the output buffer keeps up to 64 KiB after a burst).
    /// `now`: at a rest check (the codec must have gone unused since the
    /// last one); None: at once (after CONNACK). Whether the codec rests now.
    pub(super) fn rest(&mut self, now: Option<Instant>) -> bool {
        let idle = self.codec_may_rest();
        let rested = match now {
            Some(now) => self.mqtt.rest_if_unused(now, idle),
            None => self.mqtt.rest_now(idle),
        };
        if !rested {
            return false;
        }
        // The inbox and the blocked copies are empty here (`codec_may_rest`).
        self.traffic.release();
        self.rare = None;
        self.packet_ids = None;
        true
    }

    /// The codec could not be rebuilt (our bug): logged, and the connection
    /// closes rather than go on with a codec in the wrong state.
    pub(super) fn codec_lost(&mut self, e: &codec::RebuildError) {
        warn!(peer = %self.peer, error = %e, "cannot restore the connection's codec: closing");
        self.end.get_or_insert(End::Abnormal);
    }

    /// The unacknowledged packets a persistent session keeps, as the codec
    /// stores them (in a codec that rests there are none): the codec's own,
    /// and on MQTT 3.1.1 the QoS 1 PUBLISHes the connection sent itself,
    /// all in the order they were sent (`PacketIds::in_flight`).
    fn in_flight_packets(&self, persistent: bool) -> Vec<GenericStorePacket<u16>> {
        let codec = self
            .mqtt
            .if_live()
            .map(|c| c.get_stored_packets())
            .unwrap_or_default();
        match &self.packet_ids {
            // The codec stores nothing for a session that ends with the connection.
            Some(ids) if persistent => ids.in_flight(codec),
            _ => codec,
        }
    }

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
        // A resting codec holds no packet (`codec`): nothing to save from it.
        let persistent = client.session.is_persistent();
        let inflight = (!std::thread::panicking()).then(|| Inflight {
            version: self.mqtt.version(),
            packets: self.in_flight_packets(persistent),
            qos2_handled: self
                .mqtt
                .if_live()
                .map(|c| c.get_qos2_publish_handled())
                .unwrap_or_default(),
            stored: self
                .rare
                .as_mut()
                .map(|r| std::mem::take(&mut r.stored_out))
                .unwrap_or_default(),
        });
        let why = disconnection_at_end(self.end, self.disconnection);
        self.shared
            .events
            .disconnected(&client.auth_name, &client.client_id, why);
        let shared = self.shared.clone();
        // Undelivered QoS 1/2 messages go back to the (now offline) session.
        let mut undelivered = self.traffic.outbound.take_all();
        undelivered.extend(self.traffic.mail.drain(..));
        lifecycle::release(
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

/// The reason of a connection that ended as `end` (None: it just stopped),
/// unless one was noted on the way.
fn disconnection_at_end(
    end: Option<End>,
    noted: Option<DisconnectionReason>,
) -> DisconnectionReason {
    noted.unwrap_or(match end {
        Some(End::Normal) => DisconnectionReason::ClientInitiatedDisconnect,
        Some(End::Shutdown) => DisconnectionReason::ServerInitiatedDisconnect,
        Some(End::Abnormal) | None => DisconnectionReason::ConnectionLost,
    })
}

/// Logs a denial the same way everywhere: client, action, topic, reason.
pub fn log_denial(client: &str, client_id: &str, action: &str, topic: &str, reason: &str) {
    warn!(client, client_id, action, topic, reason, "denied");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_way_a_connection_ended_gives_its_disconnection_reason() {
        let end = disconnection_at_end;
        assert_eq!(
            end(Some(End::Normal), None),
            DisconnectionReason::ClientInitiatedDisconnect
        );
        assert_eq!(
            end(Some(End::Shutdown), None),
            DisconnectionReason::ServerInitiatedDisconnect
        );
        assert_eq!(
            end(Some(End::Abnormal), None),
            DisconnectionReason::ConnectionLost
        );
        assert_eq!(end(None, None), DisconnectionReason::ConnectionLost);
        assert_eq!(
            end(Some(End::Abnormal), Some(DisconnectionReason::ClientError)),
            DisconnectionReason::ClientError
        );
    }
}

/// A memory budget, not a timing: every idle connection holds one task whose
/// size is this future's (plus tokio's task header, the cell rounded up to
/// 128 B). The busy phase is boxed and the resting phase holds only the
/// session's wake-up and the keep-alive timer (decision 0036); a field or a
/// waiter added to the resting state shows here first.
#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::broker::stats::OpenConnection;
    use tokio::net::TcpStream;
    use tokio::sync::OwnedSemaphorePermit;

    fn returned_size<A, B, C, D, E, G, F>(_: fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn the_connection_future_that_every_idle_connection_keeps_stays_within_its_budget() {
        type Guard = (OwnedSemaphorePermit, Option<OpenConnection>);
        let future = returned_size(run_holding::<TcpStream, Guard>);
        // Measured 504 B (debug build; 496 B release) when set: 1,312 B
        // before decision 0036 (the busy phase boxed; the resting phase
        // without a shutdown waiter, a timer or a receiver of its own; the
        // rarely used fields in `rare`; the session's wake-up a pointer; the
        // buffers and queues in `traffic`). tokio's task cell adds ~104 B and
        // jemalloc rounds it up to its size class: up to 536 B fits 640 B.
        assert!(future <= 536, "connection future grew to {future} B");
        let conn = std::mem::size_of::<Conn<TcpStream>>();
        assert!(conn <= 320, "connection state grew to {conn} B");
    }
}
