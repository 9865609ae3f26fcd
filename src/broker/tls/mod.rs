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

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use std::sync::Arc;

/// The crypto provider of every TLS listener: `ring` (the project avoids aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration that serves `cert` and requires client
/// certificates. The certificate is read through `cert` at each handshake, so
/// `ServerCertificate::replace` takes effect for the next connection.
pub fn server_config(cert: Arc<ServerCertificate>) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let verifier = Arc::new(verifier::ProofOfPossession::new(
        provider.signature_verification_algorithms,
    ));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    Ok(Arc::new(config))
}
