//! Listeners by transport: plaintext MQTT, MQTT over TLS, and MQTT over
//! WebSockets with or without TLS. Each accepts TCP connections, runs the
//! transport's handshakes in a task of their own (so a slow client never holds
//! up the accept loop), and hands the resulting byte stream to the broker.

use super::server::{Acceptor, Broker};
use super::tls::{TlsError, TlsListener};
use super::ws::{self, WsError};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// What runs on top of TCP before MQTT.
#[derive(Clone)]
pub enum Transport {
    /// `--mqtt`: plaintext; identity from the listener's identity mode.
    Mqtt,
    /// `--mqtts`: TLS with a mandatory client certificate; identity from it.
    Mqtts(TlsListener),
    /// `--ws`: WebSocket, subprotocol `mqtt`; identity as for `--mqtt`.
    Ws,
    /// `--wss`: TLS then WebSocket; identity from the client certificate.
    Wss(TlsListener),
}

impl Transport {
    /// The URL scheme, for logs and the `listening on` line.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Mqtts(_) => "mqtts",
            Transport::Ws => "ws",
            Transport::Wss(_) => "wss",
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// Binds `addr` and serves `transport` on it until the broker shuts down.
/// Returns the bound address (port 0 picks one).
pub async fn listen(
    broker: &Broker,
    addr: SocketAddr,
    transport: Transport,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let gauge = broker
        .stats()
        .listener(&format!("{}://{local}", transport.scheme()));
    let acceptor = broker.acceptor().counted_in(gauge);
    if let Transport::Mqtt = transport {
        return Ok((local, broker.spawn_tcp_with(listener, acceptor)));
    }
    let mut shutdown = broker.shared().shutdown.clone();
    let max_message = broker.shared().config.max_packet_size as usize + 16;
    let upgrade_timeout = broker.shared().config.connect_timeout;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(handshake(
                            acceptor.clone(),
                            transport.clone(),
                            stream,
                            peer,
                            WsLimits { max_message, upgrade_timeout },
                        ));
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
    });
    Ok((local, task))
}

/// The transport's handshakes, then the broker. Failures are logged with the
/// peer and the reason; the client gets only what the protocol says (a TLS alert,
/// an HTTP status).
/// Bounds of the WebSocket upgrade: one message's size, and the time the HTTP
/// upgrade may take (a slowloris guard, like the CONNECT timeout).
#[derive(Clone, Copy)]
struct WsLimits {
    max_message: usize,
    upgrade_timeout: Duration,
}

async fn upgrade<S>(stream: S, limits: WsLimits) -> Result<tokio::io::DuplexStream, WsError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::time::timeout(
        limits.upgrade_timeout,
        ws::accept(stream, limits.max_message),
    )
    .await
    .map_err(|_| WsError::Timeout)?
}

/// Why a connection ended before MQTT.
#[derive(Debug, thiserror::Error)]
enum BeforeMqtt {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Ws(#[from] WsError),
}

async fn handshake(
    acceptor: Acceptor,
    transport: Transport,
    stream: TcpStream,
    peer: SocketAddr,
    limits: WsLimits,
) {
    let peer_s = peer.to_string();
    let result: Result<(), BeforeMqtt> = match transport {
        Transport::Mqtt => {
            acceptor.serve(stream, peer_s.clone());
            Ok(())
        }
        Transport::Mqtts(tls) => tls
            .handshake(stream)
            .await
            .map(|(s, cert)| {
                acceptor.serve_with_certificate(s, peer_s.clone(), Some(cert));
            })
            .map_err(Into::into),
        Transport::Ws => upgrade(stream, limits)
            .await
            .map(|s| acceptor.serve(s, peer_s.clone()))
            .map_err(Into::into),
        Transport::Wss(tls) => match tls.handshake(stream).await {
            Ok((s, cert)) => upgrade(s, limits)
                .await
                .map(|s| acceptor.serve_with_certificate(s, peer_s.clone(), Some(cert)))
                .map_err(Into::into),
            Err(e) => Err(e.into()),
        },
    };
    if let Err(reason) = result {
        info!(peer = %peer_s, %reason, "connection refused before MQTT");
    }
}
