//! X.509 certificates for development and for identity checks: reading PEM/DER
//! files, SHA-256 thumbprints, and a development CA that issues the server's and
//! every policy client's certificate (`topicgate certs`).

pub mod dev_ca;
pub mod init;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The SHA-256 thumbprint of a DER certificate, lower-case hex without separators:
/// the form `allowedThumbprints` is normalized to.
pub fn thumbprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Reads every certificate in a file: PEM (one or more `CERTIFICATE` blocks) or
/// a single DER certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    parse_certificates(&bytes).map_err(|e| format!("`{}`: {e}", path.display()))
}

/// Certificates from PEM text or one DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no `BEGIN CERTIFICATE` block found".into());
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("`{}`: not a PEM private key: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_lower_case_sha256_hex() {
        // SHA-256 of the empty input.
        assert_eq!(
            thumbprint(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pem_and_der_read_the_same_certificate() {
        let ca = dev_ca::DevCa::generate().expect("ca");
        let pem = ca.certificate_pem();
        let from_pem = parse_certificates(pem.as_bytes()).expect("pem");
        let from_der = parse_certificates(from_pem[0].as_ref()).expect("der");
        assert_eq!(from_pem, from_der);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_certificates(b"hello").is_err());
        assert!(parse_certificates(
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
