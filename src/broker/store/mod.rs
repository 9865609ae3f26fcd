//! Durable broker state (`topicgate serve --data DIR`, decisions 0024, 0025).
//!
//! - `schema`: the one redb file, its tables, the format marker
//! - `record`: what is stored, and the codec (serde + postcard)
//! - `writer`: the group-commit writer thread
//! - `restore`: reading everything back at start
//!
//! The broker keeps working from memory; the store is a write-ahead copy of
//! what must survive a crash, read only at start.

pub mod convert;
mod error;
pub mod record;
mod restore;
mod schema;
mod writer;

pub use error::StoreError;
pub use restore::{Restored, RestoredSession};
pub use writer::{Durability, Op};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use writer::Request;

/// An open store: the handle that enqueues changes for the writer thread.
/// Dropping it lets the writer finish what was enqueued, then closes the file.
pub struct Store {
    dir: PathBuf,
    durability: Durability,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    next_seq: AtomicU64,
    #[cfg_attr(not(test), allow(dead_code))]
    fail: writer::FailWrites,
}

/// Resolves once the changes it was given for are committed (and, in `sync`
/// mode, fsynced).
#[must_use = "the changes are durable only once this resolves"]
pub struct Durable(Option<oneshot::Receiver<writer::Outcome>>);

impl Durable {
    pub async fn wait(self) -> Result<(), StoreError> {
        let Some(rx) = self.0 else {
            return Err(StoreError::Stopped);
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StoreError::Failed(why)),
            Err(_) => Err(StoreError::Stopped),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads everything in it.
    /// Entries left by sessions that no longer exist are deleted.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Store, Restored), StoreError> {
        let db = schema::open(dir)?;
        let restored = restore::read(&db, dir)?;
        let (tx, rx) = mpsc::channel();
        let fail = writer::FailWrites::default();
        let writer = {
            let owned = dir.to_path_buf();
            let fail = fail.clone();
            std::thread::Builder::new()
                .name("topicgate-store".into())
                .spawn(move || writer::run(db, owned, durability, rx, fail))
                .map_err(|source| StoreError::Io {
                    dir: dir.to_path_buf(),
                    source,
                })?
        };
        let store = Store {
            dir: dir.to_path_buf(),
            durability,
            tx: Some(tx),
            writer: Some(writer),
            next_seq: AtomicU64::new(restored.next_seq),
            fail,
        };
        let mut cleanup: Vec<Op> = restored
            .orphans
            .iter()
            .map(|(client_id, seq)| Op::DeleteMessage {
                client_id: client_id.clone(),
                seq: *seq,
            })
            .collect();
        cleanup.extend(
            restored
                .orphan_qos2
                .iter()
                .map(|(client_id, packet_id)| Op::DeleteQos2 {
                    client_id: client_id.clone(),
                    packet_id: *packet_id,
                }),
        );
        cleanup.extend(restored.orphan_outbound.iter().map(|(client_id, seq)| {
            Op::DeleteOutbound {
                client_id: client_id.clone(),
                seq: *seq,
            }
        }));
        if !cleanup.is_empty() {
            store.submit_detached(cleanup);
        }
        Ok((store, restored))
    }

    /// Tests only: makes every commit from now on fail (or succeed again).
    #[cfg(test)]
    pub fn fail_writes(&self, on: bool) {
        self.fail.set(on);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A sequence number for a queued copy: increasing, so that a session's
    /// copies are restored in the order they were queued.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Enqueues `ops` (applied together, in order, after everything enqueued
    /// before); the answer resolves when they are durable.
    pub fn submit(&self, ops: Vec<Op>) -> Durable {
        let (done, rx) = oneshot::channel();
        let sent = self.tx.as_ref().is_some_and(|tx| {
            tx.send(Request {
                ops,
                done: Some(done),
                sync: false,
            })
            .is_ok()
        });
        Durable(sent.then_some(rx))
    }

    /// Enqueues `ops` that nobody waits for (removals after an acknowledgement:
    /// a crash before they are durable only delivers a copy again).
    pub fn submit_detached(&self, ops: Vec<Op>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request {
                ops,
                done: None,
                sync: false,
            });
        }
    }

    /// Resolves once everything enqueued so far is fsynced, whatever the
    /// durability (at shutdown, so that `relaxed` loses nothing there).
    pub fn flush(&self) -> Durable {
        let (done, rx) = oneshot::channel();
        let sent = self.tx.as_ref().is_some_and(|tx| {
            tx.send(Request {
                ops: Vec::new(),
                done: Some(done),
                sync: true,
            })
            .is_ok()
        });
        Durable(sent.then_some(rx))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests;
