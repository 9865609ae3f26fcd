//! The TLS client-certificate verifier of the `--mqtts` and `--wss` listeners.
//!
//! It requires a client certificate and proves that the peer holds its private
//! key: the handshake signature (TLS 1.3 CertificateVerify, TLS 1.2 client
//! signature) is always checked with the presented certificate's key, through
//! rustls' crypto provider. It does *not* decide who the client is: trust (a
//! thumbprint pinned in the policy, or a chain to a policy CA) is checked at
//! CONNECT by `identity.rs` against the policy in force, so that a certificate
//! the policy does not accept gets a CONNACK with a reason code (semantics.md §4)
//! rather than an opaque TLS alert, and a policy reload needs no new TLS config.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// Requires a well-formed client certificate and proof of possession of its key.
#[derive(Debug)]
pub struct ProofOfPossession {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ProofOfPossession {
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        ProofOfPossession { algorithms }
    }
}

impl ClientCertVerifier for ProofOfPossession {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: clients send their certificate whoever issued it (self-signed
    /// certificates are legitimate under `ThumbprintMatch`).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    /// Only checks that the certificate is a parseable X.509 certificate; trust
    /// is decided at CONNECT (see the module comment).
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
