//! The server's certificate and key, behind a lock so a reload can swap them
//! atomically: each handshake reads the pair in force once.

use super::TlsError;
use crate::certs::{read_certificates, read_private_key};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct ServerCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads a certificate chain (PEM, leaf first) and its private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(ServerCertificate {
            current: RwLock::new(Arc::new(load(cert, key)?)),
        })
    }

    /// Replaces the certificate for every later handshake.
    pub fn replace_from_files(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let new = Arc::new(load(cert, key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates(cert)?;
    let key_der = read_private_key(key)?;
    let provider = super::provider();
    let certified =
        CertifiedKey::from_der(chain, key_der, &provider).map_err(|source| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(certified)
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}
