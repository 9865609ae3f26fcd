//! The broker: accept loop, connection limit, graceful shutdown.

use super::config::{BrokerConfig, IdentityMode};
use super::connection;
use super::durable::{self, RestoreSummary};
use super::policy::PolicyHandle;
use super::retained::Retained;
use super::router::Router;
use super::session::registry::Sessions;
use super::state::Shared;
use super::stats::{ListenerGauge, Stats};
use super::store::{Restored, Store};
use super::tls::PeerCertificates;
use crate::decisions::access::AccessPolicy;
use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::ConnectionOptions;
use mqtt_protocol_core::mqtt::connection::Event;
use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0, GenericPacket};
use mqtt_protocol_core::mqtt::result_code::{ConnectReasonCode, ConnectReturnCode};
use mqtt_protocol_core::mqtt::{role, Connection, Version};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Connections over the limit that we still answer with "server busy".
const OVERFLOW_ANSWERS: usize = 64;

/// A running broker. Listeners feed it byte streams; it owns the shared state.
/// Dropping it stops it like [`Broker::shutdown`] without waiting.
pub struct Broker {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    next_conn: Arc<AtomicU64>,
}

impl Broker {
    pub fn new(
        policy: Arc<dyn AccessPolicy>,
        config: BrokerConfig,
        identity: IdentityMode,
    ) -> Self {
        Self::build(policy, config, identity, None)
    }

    /// A broker that keeps its durable state in `store` (`--data`), resumed
    /// from `restored` under the policy and limits given (see
    /// `durable::restore`). Call within a Tokio runtime.
    pub fn with_store(
        policy: Arc<dyn AccessPolicy>,
        config: BrokerConfig,
        identity: IdentityMode,
        store: Store,
        restored: Restored,
    ) -> (Self, RestoreSummary) {
        let broker = Self::build(policy, config, identity, Some(store));
        let summary = durable::restore(&broker.shared, restored);
        (broker, summary)
    }

    fn build(
        policy: Arc<dyn AccessPolicy>,
        config: BrokerConfig,
        identity: IdentityMode,
        store: Option<Store>,
    ) -> Self {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let pre_auth_budget = Arc::new(Semaphore::new(config.max_pre_auth_bytes as usize));
        let shared = Arc::new(Shared {
            pre_auth_budget,
            config,
            identity,
            policy: PolicyHandle::new(policy),
            sessions: Sessions::default(),
            router: Router::default(),
            retained: Retained::default(),
            stats: Stats::default(),
            events: Default::default(),
            shutdown: shutdown_rx,
            keepalive: Default::default(),
            store,
        });
        Broker {
            shared,
            shutdown_tx,
            permits,
            overflow: Arc::new(Semaphore::new(OVERFLOW_ANSWERS)),
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Swaps the policy in force; every later decision (and every will fired later) uses it.
    /// Subscriptions the new policy no longer grants are removed before anything
    /// more is routed to them; clients it no longer knows or enables are
    /// disconnected (MQTT 5: DISCONNECT 0x87) and wills it no longer allows are
    /// discarded (semantics.md §4, "Policy reload"). Counts the reload. Blocks routing briefly:
    /// see [`reload::apply`](super::reload::apply).
    pub fn replace_policy(&self, policy: Arc<dyn AccessPolicy>) -> super::reload::Revocation {
        super::reload::apply(&self.shared, policy)
    }

    /// Accepts TCP connections on `listener` until shutdown.
    pub fn spawn_tcp(&self, listener: TcpListener) -> JoinHandle<()> {
        self.spawn_tcp_with(listener, self.acceptor())
    }

    /// Accepts TCP connections on `listener` and serves them with `acceptor`.
    pub fn spawn_tcp_with(&self, listener: TcpListener, acceptor: Acceptor) -> JoinHandle<()> {
        let mut shutdown = self.shared.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            acceptor.serve(stream, peer.to_string());
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = shutdown.changed() => break,
                }
            }
        })
    }

    /// Binds `addr` and accepts on it; returns the bound address (port 0 picks one).
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((local, self.spawn_tcp(listener)))
    }

    /// A cheap handle that serves any byte stream (TCP, TLS, WebSocket) as one connection.
    pub fn acceptor(&self) -> Acceptor {
        Acceptor {
            shared: self.shared.clone(),
            permits: self.permits.clone(),
            overflow: self.overflow.clone(),
            next_conn: self.next_conn.clone(),
            gauge: None,
        }
    }

    /// Stops accepting, sends MQTT 5 clients DISCONNECT 0x8B, and waits (bounded)
    /// for every connection to end.
    pub async fn shutdown(&self) {
        self.stop_connections();
        let all = u32::try_from(self.shared.config.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.permits.acquire_many(all)).await;
        info!("broker stopped");
    }
}

impl Broker {
    /// Flags the shutdown, then wakes every session: a resting connection
    /// waits on its session's wake-up only (decision 0036), and finds the
    /// flag when it wakes. Flag first, so that a connection about to rest
    /// either sees it or is woken after.
    fn stop_connections(&self) {
        self.shutdown_tx.send_replace(true);
        for session in self.shared.sessions.all() {
            session.wake_attached();
        }
    }
}

impl Drop for Broker {
    /// Dropping the broker stops its connections like [`Broker::shutdown`],
    /// without waiting for them.
    fn drop(&mut self) {
        self.stop_connections();
    }
}

/// Serves streams as connections, within the connection limit.
#[derive(Clone)]
pub struct Acceptor {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    next_conn: Arc<AtomicU64>,
    /// The connection gauge of the listener it serves, if it has one.
    gauge: Option<Arc<ListenerGauge>>,
}

impl Acceptor {
    /// Counts the connections it serves in `gauge` (`topicgate_connections`).
    pub fn counted_in(self, gauge: Arc<ListenerGauge>) -> Self {
        Acceptor {
            gauge: Some(gauge),
            ..self
        }
    }

    pub fn serve<S>(&self, stream: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_with_certificate(stream, peer, None)
    }

    /// Serves a stream; `certificate` is the client certificate its TLS handshake
    /// proved (then identity comes from it, semantics.md §6).
    pub fn serve_with_certificate<S>(
        &self,
        stream: S,
        peer: String,
        certificate: Option<PeerCertificates>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.shared.stats.connections_accepted.inc();
                let shared = self.shared.clone();
                tokio::spawn(connection::run_holding(
                    shared,
                    stream,
                    peer,
                    conn_id,
                    certificate,
                    (permit, self.gauge.as_ref().map(|g| g.open())),
                ));
            }
            Err(_) => {
                self.shared.stats.connections_refused.inc();
                let Ok(permit) = self.overflow.clone().try_acquire_owned() else {
                    return; // dropping the stream closes it
                };
                warn!(peer = %peer, "connection limit reached: answering server busy");
                // Unauthenticated: only a small CONNECT is read (`maxConnectPacketSize`).
                let max = self.shared.config.max_connect_packet_size;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(2), answer_busy(stream, max))
                        .await;
                    drop(permit);
                });
            }
        }
    }
}

/// Reads a CONNECT and answers CONNACK Server Busy (5) / Server unavailable (3.1.1).
async fn answer_busy<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, max: u32) {
    let options = ConnectionOptions::new().maximum_packet_size_recv(max);
    let mut mqtt = Connection::<role::Server>::with_options(Version::Undetermined, options);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut cursor = Cursor::new(&buf[..n]);
        while (cursor.position() as usize) < n {
            let before = cursor.position();
            for ev in mqtt.recv(&mut cursor) {
                match ev {
                    Event::NotifyPacketReceived(GenericPacket::V5_0Connect(_)) => {
                        let c = v5_0::Connack::builder()
                            .session_present(false)
                            .reason_code(ConnectReasonCode::ServerBusy)
                            .build()
                            .map(|c| c.to_continuous_buffer());
                        return write_built(&mut stream, c).await;
                    }
                    Event::NotifyPacketReceived(GenericPacket::V3_1_1Connect(_)) => {
                        let c = v3_1_1::Connack::builder()
                            .session_present(false)
                            .return_code(ConnectReturnCode::ServerUnavailable)
                            .build()
                            .map(|c| c.to_continuous_buffer());
                        return write_built(&mut stream, c).await;
                    }
                    Event::RequestClose => return,
                    _ => {}
                }
            }
            if cursor.position() == before {
                break;
            }
        }
    }
}

/// Writes a packet built for the "server busy" answer, or logs why it could not
/// be built (the connection is closed either way).
async fn write_built<S: AsyncWrite + Unpin>(
    stream: &mut S,
    built: Result<Vec<u8>, mqtt_protocol_core::mqtt::result_code::MqttError>,
) {
    match built {
        Ok(bytes) => {
            let _ = stream.write_all(&bytes).await;
        }
        Err(e) => warn!(error = %e, "cannot build the server-busy CONNACK: closing"),
    }
}
