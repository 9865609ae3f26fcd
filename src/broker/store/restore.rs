//! Reading the whole store at start: the state the broker resumes from.

use super::error::StoreError;
use super::record::{decode, MessageRecord, OpenWillRecord, OutboundRecord, SessionRecord};
use super::schema::{OPEN_WILLS, OUTBOUND, QOS2_IN, QUEUE, RETAINED, SESSIONS};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::BTreeMap;
use std::path::Path;

/// A persistent session as it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredSession {
    pub client_id: String,
    pub record: SessionRecord,
    /// QoS 1/2 copies not acknowledged, oldest first, with their sequence numbers.
    pub queue: Vec<(u64, MessageRecord)>,
    /// Sequence -> outbound state of the copies in `queue` that were sent.
    pub outbound: BTreeMap<u64, OutboundRecord>,
    /// Packet IDs of its QoS 2 PUBLISHes answered PUBREC and not released.
    pub qos2_in: Vec<u16>,
    /// The will of its connection, if that was open when the broker stopped.
    pub open_will: Option<OpenWillRecord>,
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub struct Restored {
    pub sessions: Vec<RestoredSession>,
    pub retained: Vec<MessageRecord>,
    /// Above every sequence number in the store.
    pub next_seq: u64,
    /// Queue and QoS 2 entries of sessions that no longer exist (a write that
    /// raced the session's end): not restored, and deleted at start.
    pub orphans: Vec<(String, u64)>,
    pub orphan_qos2: Vec<(String, u16)>,
    /// Outbound states of copies no longer stored (their removal raced it).
    pub orphan_outbound: Vec<(String, u64)>,
    /// Wills of connections open when the broker stopped whose session was
    /// not persistent (by client ID).
    pub open_wills: Vec<(String, OpenWillRecord)>,
}

/// Reads every table. Any record that does not decode makes the store
/// damaged: the broker refuses it rather than start on part of it.
pub fn read(db: &Database, dir: &Path) -> Result<Restored, StoreError> {
    let damaged = |why: String| StoreError::Damaged {
        dir: dir.to_path_buf(),
        why,
    };
    let tx = db.begin_read().map_err(|e| damaged(e.to_string()))?;
    let table_err = |e: redb::Error| damaged(e.to_string());

    let mut sessions: BTreeMap<String, RestoredSession> = BTreeMap::new();
    let t = tx.open_table(SESSIONS).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, v) = row.map_err(|e| table_err(e.into()))?;
        let client_id = k.value().to_string();
        let record: SessionRecord = decode("session", v.value())
            .map_err(|e| damaged(format!("session `{client_id}`: {e}")))?;
        sessions.insert(
            client_id.clone(),
            RestoredSession {
                client_id,
                record,
                queue: Vec::new(),
                outbound: BTreeMap::new(),
                qos2_in: Vec::new(),
                open_will: None,
            },
        );
    }

    let mut out = Restored::default();
    let t = tx.open_table(QUEUE).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, v) = row.map_err(|e| table_err(e.into()))?;
        let (client_id, seq) = k.value();
        out.next_seq = out.next_seq.max(seq.saturating_add(1));
        match sessions.get_mut(client_id) {
            Some(s) => {
                let msg: MessageRecord = decode("queued message", v.value())
                    .map_err(|e| damaged(format!("message {seq} of `{client_id}`: {e}")))?;
                s.queue.push((seq, msg));
            }
            None => out.orphans.push((client_id.to_string(), seq)),
        }
    }

    let t = tx.open_table(OUTBOUND).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, v) = row.map_err(|e| table_err(e.into()))?;
        let (client_id, seq) = k.value();
        let queued = sessions
            .get_mut(client_id)
            .filter(|s| s.queue.binary_search_by_key(&seq, |(q, _)| *q).is_ok());
        match queued {
            Some(s) => {
                let r: OutboundRecord = decode("outbound state", v.value()).map_err(|e| {
                    damaged(format!(
                        "outbound state of message {seq} of `{client_id}`: {e}"
                    ))
                })?;
                s.outbound.insert(seq, r);
            }
            None => out.orphan_outbound.push((client_id.to_string(), seq)),
        }
    }

    let t = tx.open_table(QOS2_IN).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, _) = row.map_err(|e| table_err(e.into()))?;
        let (client_id, packet_id) = k.value();
        match sessions.get_mut(client_id) {
            Some(s) => s.qos2_in.push(packet_id),
            None => out.orphan_qos2.push((client_id.to_string(), packet_id)),
        }
    }

    let t = tx.open_table(OPEN_WILLS).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, v) = row.map_err(|e| table_err(e.into()))?;
        let client_id = k.value();
        let will: OpenWillRecord = decode("will", v.value())
            .map_err(|e| damaged(format!("will of `{client_id}`: {e}")))?;
        match sessions.get_mut(client_id) {
            Some(s) => s.open_will = Some(will),
            None => out.open_wills.push((client_id.to_string(), will)),
        }
    }

    let t = tx.open_table(RETAINED).map_err(|e| table_err(e.into()))?;
    for row in t.iter().map_err(|e| table_err(e.into()))? {
        let (k, v) = row.map_err(|e| table_err(e.into()))?;
        let msg: MessageRecord = decode("retained message", v.value())
            .map_err(|e| damaged(format!("retained message of `{}`: {e}", k.value())))?;
        out.retained.push(msg);
    }
    out.sessions = sessions.into_values().collect();
    Ok(out)
}
