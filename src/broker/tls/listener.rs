//! The TLS handshake in front of the broker: bounded in time and in number of
//! handshakes at once, and yielding the client certificate it proved.

use super::TlsError;
use crate::decisions::identity::PeerCertificates;
use rustls::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Handshakes in progress at once; more connections wait (the TCP backlog holds them).
const MAX_HANDSHAKES: usize = 512;

/// Runs TLS handshakes with one server configuration.
#[derive(Clone)]
pub struct TlsListener {
    acceptor: TlsAcceptor,
    handshakes: Arc<Semaphore>,
    timeout: Duration,
}

impl TlsListener {
    /// `timeout` bounds each handshake (a slowloris guard, like the CONNECT timeout).
    pub fn new(config: Arc<ServerConfig>, timeout: Duration) -> Self {
        TlsListener {
            acceptor: TlsAcceptor::from(config),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            timeout,
        }
    }

    /// The TLS stream and the client certificate whose key the peer proved it holds.
    pub async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<(TlsStream<S>, PeerCertificates), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let _permit = self
            .handshakes
            .acquire()
            .await
            .map_err(|_| TlsError::Closed)?;
        let tls = tokio::time::timeout(self.timeout, self.acceptor.accept(stream))
            .await
            .map_err(|_| TlsError::Timeout)?
            .map_err(TlsError::Handshake)?;
        let peer = {
            let (_, conn) = tls.get_ref();
            let certs = conn.peer_certificates().unwrap_or_default();
            let Some((first, rest)) = certs.split_first() else {
                // The verifier makes a certificate mandatory; never serve without one.
                return Err(TlsError::NoClientCertificate);
            };
            PeerCertificates {
                end_entity: first.clone().into_owned(),
                intermediates: rest.iter().map(|c| c.clone().into_owned()).collect(),
            }
        };
        Ok((tls, peer))
    }
}
