//! What can go wrong with the durable store, as types the caller can report.

use std::path::PathBuf;

/// Opening, restoring or writing the store failed. Every variant names the
/// directory: an operator must be able to act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use `{dir}` as the broker's data directory: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{dir}` is not a topicgate broker store: {why}. Refusing to use it \
         (nothing was changed); point --data at an empty or new directory"
    )]
    Foreign { dir: PathBuf, why: String },
    #[error(
        "the broker store in `{dir}` has format version {found}, this topicgate reads \
         version {supported}. Refusing to open it (nothing was changed)"
    )]
    UnsupportedVersion {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the broker store in `{dir}` is damaged: {why}. Refusing to start on it \
         (nothing was changed); move it aside to start empty"
    )]
    Damaged { dir: PathBuf, why: String },
    #[error("the broker store in `{dir}` is in use by another process")]
    InUse { dir: PathBuf },
    #[error("writing the broker store in `{dir}` failed: {why}")]
    Write { dir: PathBuf, why: String },
    /// A write failed (the writer's message, which names the directory).
    #[error("{0}")]
    Failed(String),
    #[error("the broker store writer has stopped")]
    Stopped,
}
