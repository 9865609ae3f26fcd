//! The group-commit writer: one thread owns the write side of the store.
//! Callers enqueue their changes and await a signal that fires once the
//! transaction holding them is committed (and, in `sync` mode, fsynced), so
//! that many publishers share one fsync (decision 0025).

use super::error::StoreError;
use super::record::{encode, MessageRecord, OpenWillRecord, OutboundRecord, SessionRecord};
use super::schema::{OPEN_WILLS, OUTBOUND, QOS2_IN, QUEUE, RETAINED, SESSIONS};
use redb::{Database, Durability as RedbDurability, WriteTransaction};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::error;

/// When an acknowledgement may be sent (decision 0025).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the change is fsynced: nothing acknowledged is lost by a crash.
    Sync,
    /// After the change is committed, not yet fsynced; an fsync follows at
    /// most `window` later. A crash (of the process or the host) can lose the
    /// changes of that window, never leave a store that does not open.
    Relaxed { window: Duration },
}

/// One change to the store.
#[derive(Debug, Clone)]
pub enum Op {
    PutSession {
        client_id: String,
        record: SessionRecord,
    },
    /// Removes the session with its queued messages, their outbound state,
    /// its QoS 2 state and the will of its open connection.
    DeleteSession {
        client_id: String,
    },
    PutMessage {
        client_id: String,
        seq: u64,
        record: MessageRecord,
    },
    DeleteMessage {
        client_id: String,
        seq: u64,
    },
    /// The queued copy `seq` went (or goes) out under `record.packet_id`.
    PutOutbound {
        client_id: String,
        seq: u64,
        record: OutboundRecord,
    },
    /// Forgets the outbound state of copy `seq` (beside its `DeleteMessage`;
    /// a separate op so that copies never sent cost no second delete).
    DeleteOutbound {
        client_id: String,
        seq: u64,
    },
    PutQos2 {
        client_id: String,
        packet_id: u16,
    },
    DeleteQos2 {
        client_id: String,
        packet_id: u16,
    },
    /// Sets the retained message of `record.topic`.
    PutRetained {
        record: MessageRecord,
    },
    DeleteRetained {
        topic: String,
    },
    /// Sets the will of the open connection of `client_id`.
    PutOpenWill {
        client_id: String,
        record: OpenWillRecord,
    },
    /// The open connection's will was discarded, published or became pending.
    DeleteOpenWill {
        client_id: String,
    },
}

/// What the writer tells a waiting caller.
pub(super) type Outcome = Result<(), String>;

pub(super) struct Request {
    pub ops: Vec<Op>,
    pub done: Option<oneshot::Sender<Outcome>>,
    /// Fsync this batch whatever the durability (a flush at shutdown).
    pub sync: bool,
}

/// Changes applied in one transaction at most: bounds the latency of the
/// first caller in a batch and the memory of one transaction.
const MAX_BATCH_OPS: usize = 8192;

/// Tests only: while set, every commit fails as a full or broken disk would
/// make it fail, so that the callers' real error paths run end to end. Empty,
/// and never failing, outside tests.
#[derive(Clone, Default)]
pub(super) struct FailWrites(#[cfg(test)] std::sync::Arc<std::sync::atomic::AtomicBool>);

impl FailWrites {
    #[cfg(test)]
    pub(super) fn set(&self, on: bool) {
        self.0.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), String> {
        #[cfg(test)]
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("injected write failure (test)".into());
        }
        Ok(())
    }
}

pub(super) fn run(
    db: Database,
    dir: PathBuf,
    durability: Durability,
    rx: Receiver<Request>,
    fail: FailWrites,
) {
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match (durability, unsynced_since) {
            (Durability::Relaxed { window }, Some(since)) => {
                match rx.recv_timeout(window.saturating_sub(since.elapsed())) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        sync(&db, &dir);
                        unsynced_since = None;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        let mut ops = batch[0].ops.len();
        while ops < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(r) => {
                    ops += r.ops.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let flush = batch.iter().any(|r| r.sync);
        let immediate = flush
            || match durability {
                Durability::Sync => true,
                Durability::Relaxed { window } => {
                    let since = *unsynced_since.get_or_insert_with(Instant::now);
                    since.elapsed() >= window
                }
            };
        let outcome = fail.check()
            .and_then(|()| commit(&db, &batch, immediate))
            .map_err(|e| {
            let e = StoreError::Write {
                dir: dir.clone(),
                why: e,
            };
            error!(error = %e, "the broker store could not be written: the changes are not acknowledged");
            e.to_string()
        });
        if immediate && outcome.is_ok() {
            unsynced_since = None;
        }
        for r in batch {
            if let Some(done) = r.done {
                let _ = done.send(outcome.clone());
            }
        }
    }
    // The last senders are gone: make what was committed durable.
    if unsynced_since.is_some() {
        sync(&db, &dir);
    }
}

/// Makes the non-durable commits so far durable (an empty immediate commit).
fn sync(db: &Database, dir: &std::path::Path) {
    if let Err(e) = commit(db, &[], true) {
        error!(dir = %dir.display(), error = %e, "the broker store could not be synced");
    }
}

fn commit(db: &Database, batch: &[Request], immediate: bool) -> Result<(), String> {
    let mut tx = db.begin_write().map_err(|e| e.to_string())?;
    let level = if immediate {
        RedbDurability::Immediate
    } else {
        RedbDurability::None
    };
    tx.set_durability(level).map_err(|e| e.to_string())?;
    for r in batch {
        for op in &r.ops {
            apply(&tx, op).map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

fn apply(tx: &WriteTransaction, op: &Op) -> Result<(), redb::Error> {
    match op {
        Op::PutSession { client_id, record } => {
            tx.open_table(SESSIONS)?
                .insert(client_id.as_str(), encode(record).as_slice())?;
        }
        Op::DeleteSession { client_id } => {
            let id = client_id.as_str();
            tx.open_table(SESSIONS)?.remove(id)?;
            tx.open_table(QUEUE)?
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            tx.open_table(OUTBOUND)?
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            tx.open_table(QOS2_IN)?
                .retain_in((id, 0)..=(id, u16::MAX), |_, _| false)?;
            tx.open_table(OPEN_WILLS)?.remove(id)?;
        }
        Op::PutMessage {
            client_id,
            seq,
            record,
        } => {
            tx.open_table(QUEUE)?
                .insert((client_id.as_str(), *seq), encode(record).as_slice())?;
        }
        Op::DeleteMessage { client_id, seq } => {
            tx.open_table(QUEUE)?.remove((client_id.as_str(), *seq))?;
        }
        Op::DeleteOutbound { client_id, seq } => {
            tx.open_table(OUTBOUND)?
                .remove((client_id.as_str(), *seq))?;
        }
        Op::PutOutbound {
            client_id,
            seq,
            record,
        } => {
            tx.open_table(OUTBOUND)?
                .insert((client_id.as_str(), *seq), encode(record).as_slice())?;
        }
        Op::PutQos2 {
            client_id,
            packet_id,
        } => {
            tx.open_table(QOS2_IN)?
                .insert((client_id.as_str(), *packet_id), ())?;
        }
        Op::DeleteQos2 {
            client_id,
            packet_id,
        } => {
            tx.open_table(QOS2_IN)?
                .remove((client_id.as_str(), *packet_id))?;
        }
        Op::PutRetained { record } => {
            tx.open_table(RETAINED)?
                .insert(record.topic.as_str(), encode(record).as_slice())?;
        }
        Op::DeleteRetained { topic } => {
            tx.open_table(RETAINED)?.remove(topic.as_str())?;
        }
        Op::PutOpenWill { client_id, record } => {
            tx.open_table(OPEN_WILLS)?
                .insert(client_id.as_str(), encode(record).as_slice())?;
        }
        Op::DeleteOpenWill { client_id } => {
            tx.open_table(OPEN_WILLS)?.remove(client_id.as_str())?;
        }
    }
    Ok(())
}
