//! X.509 certificates for development and for identity checks: reading PEM/DER
//! files, SHA-256 thumbprints, and a development CA that issues the server's and
//! every policy client's certificate (`topicgate certs`).

pub mod dev_ca;
pub mod init;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why certificates or keys could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create `{}`: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a PEM certificate file: {0}")]
    NotPem(String),
    #[error("no `BEGIN CERTIFICATE` block found")]
    NoCertificate,
    #[error("`{}`: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<CertError>,
    },
    #[error("`{}`: not a PEM private key: {reason}", path.display())]
    NotAKey { path: PathBuf, reason: String },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("`{}` already exists; use --force to replace every generated file (the thumbprints will change)", path.display())]
    Exists { path: PathBuf },
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The SHA-256 thumbprint of a DER certificate, lower-case hex without separators:
/// the form `allowedThumbprints` is normalized to.
pub fn thumbprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Reads every certificate in a file: PEM (one or more `CERTIFICATE` blocks) or
/// a single DER certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    parse_certificates(&read(path)?).map_err(|e| CertError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Certificates from PEM text or one DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NotPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| CertError::NotAKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
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
