//! Reading a policy, artifact or test file: whole, with a size limit, so that a
//! wrong path (a device, a huge log) fails with a clear error instead of filling memory.

use crate::source::yaml::MAX_POLICY_BYTES;
use std::path::{Path, PathBuf};

/// The largest file read: four times the largest policy text, room for an
/// artifact or a test file about the largest policy.
pub const MAX_FILE_BYTES: u64 = MAX_POLICY_BYTES as u64 * 4;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is a directory, not a policy file", path.display())]
    Directory { path: PathBuf },
    #[error("`{}` is {size} bytes, more than the limit of {limit} bytes", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("`{}` is not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
}

/// Reads a file whole, with a size limit, as bytes.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(ReadError::Directory {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    std::fs::read(path).map_err(io)
}

/// Reads a file whole, with a size limit, as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    String::from_utf8(read_limited(path)?).map_err(|e| ReadError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}
