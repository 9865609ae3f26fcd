//! The compiled artifact: a versioned binary file the broker boots from.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic        8 bytes   89 54 47 43 0d 0a 1a 0a   ("\x89TGC\r\n\x1a\n", catches text-mode damage)
//! version      u32       FORMAT_VERSION
//! source hash  32 bytes  SHA-256 of the policy source text
//! length       u64       payload length in bytes
//! checksum     32 bytes  SHA-256 of the payload
//! payload      postcard encoding of the ResolvedPolicy
//! ```
//! The index is rebuilt from the resolved policy at load time (it is derived data
//! and rebuilding is cheap), so the artifact never holds pointers or hash tables
//! whose layout could change between versions.

use super::model::ResolvedPolicy;
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 8] = *b"\x89TGC\r\n\x1a\n";
pub const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 32;

/// Why bytes are not a usable artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a topicgate artifact (bad magic bytes)")]
    NotAnArtifact,
    #[error("artifact is truncated: expected {expected} bytes, found {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("artifact format version {0} is newer than this topicgate supports (version {FORMAT_VERSION}); upgrade topicgate or recompile the policy")]
    NewerVersion(u32),
    #[error("artifact format version {0} is not supported; recompile the policy")]
    UnsupportedVersion(u32),
    #[error("artifact is corrupted: {0}")]
    Corrupted(String),
    #[error("cannot encode the artifact: {0}")]
    Encode(String),
}

pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

pub fn encode(policy: &ResolvedPolicy, source_hash: &[u8; 32]) -> Result<Vec<u8>, ArtifactError> {
    let payload = postcard::to_stdvec(policy).map_err(|e| ArtifactError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(source_hash);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes an artifact: the resolved policy and the hash of its source.
pub fn decode(bytes: &[u8]) -> Result<(ResolvedPolicy, [u8; 32]), ArtifactError> {
    if !is_artifact(bytes) {
        return Err(ArtifactError::NotAnArtifact);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ArtifactError::Truncated {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let version = u32::from_le_bytes(fixed(&bytes[8..12]));
    if version > FORMAT_VERSION {
        return Err(ArtifactError::NewerVersion(version));
    }
    if version != FORMAT_VERSION {
        return Err(ArtifactError::UnsupportedVersion(version));
    }
    let source_hash: [u8; 32] = fixed(&bytes[12..44]);
    let length = u64::from_le_bytes(fixed(&bytes[44..52]));
    let checksum: [u8; 32] = fixed(&bytes[52..84]);
    let payload = &bytes[HEADER_LEN..];
    if (payload.len() as u64) < length {
        return Err(ArtifactError::Truncated {
            expected: HEADER_LEN as u64 + length,
            found: bytes.len() as u64,
        });
    }
    if (payload.len() as u64) > length {
        return Err(ArtifactError::Corrupted(format!(
            "{} bytes after the payload",
            payload.len() as u64 - length
        )));
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return Err(ArtifactError::Corrupted(
            "payload checksum does not match".into(),
        ));
    }
    let policy = postcard::from_bytes(payload)
        .map_err(|e| ArtifactError::Corrupted(format!("cannot decode payload: {e}")))?;
    Ok((policy, source_hash))
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}
