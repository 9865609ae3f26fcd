//! TLS for the `--mqtts` and `--wss` listeners: the server configuration
//! (TLS 1.2 and 1.3, rustls over `ring`), the client-certificate verifier, the
//! handshake in front of the broker, and certificate identity (semantics.md §6).
//!
//! - `verifier`: requires a client certificate and proof of possession of its key
//! - certificate identity (from the certificate to the policy client, at CONNECT) lives in
//!   `decisions::identity`: it is a policy decision, not transport
//! - `server_cert`: the server certificate, swappable at run time
//! - `listener`: accepts TCP, runs the handshake, hands the stream to the broker

pub mod listener;
pub mod server_cert;
pub mod verifier;

pub use crate::decisions::identity::{CertificateRefusal, PeerCertificates, RefusalKind};
pub use listener::TlsListener;
pub use server_cert::ServerCertificate;

use crate::certs::CertError;
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// Why the TLS configuration could not be built, or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Files(#[from] CertError),
    #[error("`{}` and `{}` do not form a usable pair: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("listener closed")]
    Closed,
    #[error("TLS handshake timed out")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake ended without a client certificate")]
    NoClientCertificate,
}

/// The crypto provider of every TLS listener: `ring` (the project avoids aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration that serves `cert` and requires client
/// certificates. The certificate is read through `cert` at each handshake, so
/// `ServerCertificate::replace` takes effect for the next connection.
pub fn server_config(cert: Arc<ServerCertificate>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(verifier::ProofOfPossession::new(
        provider.signature_verification_algorithms,
    ));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    Ok(Arc::new(config))
}
