//! What the broker writes to its durable store (`--data`), and when; and the
//! state it resumes from at start (decision 0025, semantics.md §11).
//!
//! Only persistent sessions (session expiry > 0) are stored. The store is a
//! write-ahead copy: the broker works from memory and reads the store only
//! at start.

use super::lifecycle;
use super::message::{qos_from_u8, resend_pubrel, Delivery};
use super::session::{Inflight, Session, StoredOut};
use super::state::Shared;
use super::store::record::{now_ms, MessageRecord, OutboundRecord, OutboundState};
use super::store::{convert, Durable, Op, Restored};
use super::will::Will;
use crate::topic;
use mqtt_protocol_core::mqtt::common::HashSet;
use mqtt_protocol_core::mqtt::packet::GenericStorePacket;
use mqtt_protocol_core::mqtt::Version;
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::{info, warn};

/// At CONNECT, once the session is claimed: a persistent session's record
/// and the connection's will (semantics.md §11, "Wills across a crash") are
/// written in one transaction, and the answer resolves when they are durable
/// (CONNACK waits: a Session Present after a restart must be true, and a will
/// must survive a crash of the broker). A session that resumed with expiry 0
/// ends with this connection: its stored state goes now. None: nothing to
/// wait for.
pub fn connected(
    shared: &Shared,
    session: &Session,
    present: bool,
    will: Option<&Will>,
) -> Option<Durable> {
    let store = shared.store.as_ref()?;
    let client_id: &str = &session.client_id;
    let mut ops = Vec::new();
    if session.is_persistent() {
        ops.push(Op::PutSession {
            client_id: client_id.to_string(),
            record: session.record()?,
        });
        if will.is_none() {
            // Nothing of an earlier connection may stand for this one's will.
            ops.push(Op::DeleteOpenWill {
                client_id: client_id.to_string(),
            });
        }
    } else if present {
        ops.push(Op::DeleteSession {
            client_id: client_id.to_string(),
        });
    }
    if let Some(w) = will {
        ops.push(convert::put_open_will(client_id, w));
    } else if !session.is_persistent() {
        // Nobody waits for the removal of what an ended session left.
        store.submit_detached(ops);
        return None;
    }
    Some(store.submit(ops))
}

/// The connection of `session` ended: its will is no longer an open
/// connection's (it was published, discarded or is now pending, which the
/// session's record says). For a session that lives on, its record is
/// written in the same transaction, so that a crash finds the will in
/// exactly one of the two places.
pub fn connection_ended(shared: &Shared, session: &Session) {
    let Some(store) = &shared.store else { return };
    let client_id = session.client_id.to_string();
    let mut ops = Vec::with_capacity(2);
    if session.is_persistent() {
        if let Some(record) = session.record() {
            ops.push(Op::PutSession {
                client_id: client_id.clone(),
                record,
            });
        }
    }
    ops.push(Op::DeleteOpenWill { client_id });
    store.submit_detached(ops);
}

/// The open connection's will was discarded (a reload no longer allows it).
pub fn will_discarded(shared: &Shared, client_id: &str) {
    if let Some(store) = &shared.store {
        store.submit_detached(vec![Op::DeleteOpenWill {
            client_id: client_id.to_string(),
        }]);
    }
}

/// Writes the session's current record (detached: a later acknowledged
/// message is behind it in the same ordered writer).
pub fn session_changed(shared: &Shared, session: &Session) {
    let Some(store) = &shared.store else { return };
    if !session.is_persistent() {
        return;
    }
    if let Some(record) = session.record() {
        store.submit_detached(vec![Op::PutSession {
            client_id: session.client_id.to_string(),
            record,
        }]);
    }
}

/// The session ended: its record, queue and QoS 2 state go.
pub fn session_ended(shared: &Shared, client_id: &str) {
    if let Some(store) = &shared.store {
        store.submit_detached(vec![Op::DeleteSession {
            client_id: client_id.to_string(),
        }]);
    }
}

/// Copies that will not be delivered any more (acknowledged, dropped, expired).
pub fn unstore(shared: &Shared, client_id: &str, seqs: Vec<u64>) {
    let Some(store) = &shared.store else { return };
    if seqs.is_empty() {
        return;
    }
    let ops = seqs
        .into_iter()
        .map(|seq| Op::DeleteMessage {
            client_id: client_id.to_string(),
            seq,
        })
        .collect();
    store.submit_detached(ops);
}

/// What a restart did to the stored state, for the start-up log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    pub sessions: usize,
    pub messages: usize,
    pub retained: usize,
    pub sessions_dropped: usize,
    pub sessions_expired: usize,
    pub subscriptions_revoked: usize,
    pub messages_dropped: usize,
    pub wills_due: usize,
    /// Of `messages`, the QoS 2 copies in flight at the crash: resent under
    /// their packet identifiers when their session resumes.
    pub in_flight: usize,
    /// Wills of connections that were open when the broker stopped.
    pub open_wills: usize,
}

/// Puts the stored state back into a broker that has no sessions yet,
/// applying the policy and limits in force now exactly as a policy reload
/// would (semantics.md §11): a session whose client is gone or disabled is
/// dropped, a subscription no longer granted is revoked, a queue beyond
/// `maxQueuedMessages` keeps its oldest copies. Sessions that expired while
/// the broker was down are removed; wills that fell due are published. The
/// will of a connection that was open when the broker stopped is handled as
/// if the connection ended now (semantics.md §11, "Wills across a crash"):
/// pending in its session for its delay, or published now.
pub fn restore(shared: &Arc<Shared>, restored: Restored) -> RestoreSummary {
    let mut sum = RestoreSummary::default();
    let Some(store) = &shared.store else {
        return sum;
    };
    let mut ops = Vec::new();
    let now = now_ms();
    for r in restored.retained {
        if r.expires_at_ms.is_some_and(|t| t <= now) {
            ops.push(Op::DeleteRetained { topic: r.topic });
            continue;
        }
        shared.retained.set(Arc::new(convert::message(&r)));
        sum.retained += 1;
    }
    let policy = shared.policy.current();
    let max_queue = shared.config.max_queued_messages;
    let mut due_wills = Vec::new();
    for rs in restored.sessions {
        let rec = rs.record;
        let id = rs.client_id;
        let drop_session = |ops: &mut Vec<Op>| {
            ops.push(Op::DeleteSession {
                client_id: id.clone(),
            })
        };
        let client = policy
            .lookup_client(&rec.auth_name)
            .filter(|c| policy.is_enabled(*c));
        let Some(client) = client else {
            warn!(
                client = %rec.auth_name, client_id = %id,
                "stored session dropped at start: the policy in force no longer allows its client"
            );
            sum.sessions_dropped += 1;
            drop_session(&mut ops);
            continue;
        };
        // A session whose connection was open at the crash ended then; we count
        // from now, which keeps it at least as long as it would have lived.
        let since = rec.disconnected_at_ms.unwrap_or(now);
        let expiry = rec.expiry.min(shared.config.max_session_expiry);
        let ends_ms = since.saturating_add(u64::from(expiry) * 1000);
        let pending = rec.will.map(|w| {
            let will = Will {
                msg: convert::message(&w.msg),
                delay: 0,
                expiry: w.expiry,
                auth_name: w.auth_name,
            };
            (will, w.due_ms)
        });
        // Its connection was open at the crash: the will of that connection
        // becomes pending now, as at the end of any connection.
        let open = rs.open_will.map(|w| {
            sum.open_wills += 1;
            let will = convert::open_will(&w);
            let delay = will.delay.min(shared.config.max_will_delay);
            (will, now.saturating_add(u64::from(delay) * 1000))
        });
        let had_open_will = open.is_some();
        let will = open.or(pending);
        if expiry != u32::MAX && ends_ms <= now {
            info!(client_id = %id, "stored session expired while the broker was down: removed");
            sum.sessions_expired += 1;
            drop_session(&mut ops);
            due_wills.extend(will.map(|(w, _)| w));
            continue;
        }
        let session = Session::new(&id, &rec.auth_name);
        session.set_expiry(expiry);
        // The record is written again with the will now pending, in the same
        // transaction that removes it as an open connection's.
        let mut changed = expiry != rec.expiry || had_open_will;
        if had_open_will {
            ops.push(Op::DeleteOpenWill {
                client_id: id.clone(),
            });
        }
        for sub in &rec.subscriptions {
            let Ok(parsed) = topic::parse_subscription(&sub.filter) else {
                changed = true;
                continue;
            };
            let verdict = policy.may_subscribe(client, parsed.filter);
            if !verdict.allowed {
                warn!(
                    client = %rec.auth_name, client_id = %id, action = "subscribe",
                    topic = %sub.filter, reason = %verdict.reason,
                    "stored subscription revoked at start: the policy in force no longer grants it"
                );
                sum.subscriptions_revoked += 1;
                changed = true;
                continue;
            }
            let opts = convert::sub_options(sub);
            if session
                .add_subscription(
                    &sub.filter,
                    opts,
                    shared.config.max_subscriptions_per_session,
                )
                .is_some()
            {
                shared.router.subscribe(&session, &parsed, opts);
            } else {
                changed = true;
            }
        }
        let version = if rec.protocol == 5 {
            Version::V5_0
        } else {
            Version::V3_1_1
        };
        let mut offline = VecDeque::new();
        let mut beyond = Vec::new();
        let mut resend = Resend::default();
        for (seq, m) in rs.queue {
            if let Some(sent) = rs.outbound.get(&seq) {
                if resend.add(version, seq, &m, *sent, shared.router.epoch()) {
                    continue;
                }
                // Cannot go out again as it went: its state goes; a PUBLISH
                // not yet received is queued again, a released one is done.
                ops.push(Op::DeleteOutbound {
                    client_id: id.clone(),
                    seq,
                });
                if sent.state == OutboundState::PubrelSent {
                    ops.push(Op::DeleteMessage {
                        client_id: id.clone(),
                        seq,
                    });
                    continue;
                }
            }
            if offline.len() >= max_queue {
                beyond.push(seq);
                continue;
            }
            offline.push_back(delivery(seq, &m, shared.router.epoch()));
        }
        if !beyond.is_empty() {
            warn!(
                client_id = %id, dropped = beyond.len(), max_queued_messages = max_queue,
                "stored messages beyond maxQueuedMessages dropped at start (the oldest are kept)"
            );
            sum.messages_dropped += beyond.len();
            shared
                .stats
                .drop_messages(super::stats::DropReason::QueueFull, beyond.len() as u64);
            ops.extend(beyond.into_iter().map(|seq| Op::DeleteMessage {
                client_id: id.clone(),
                seq,
            }));
        }
        sum.messages += offline.len() + resend.stored.len();
        sum.in_flight += resend.stored.len();
        let inflight = (!rs.qos2_in.is_empty() || !resend.stored.is_empty()).then(|| Inflight {
            version,
            packets: resend.packets,
            qos2_handled: rs.qos2_in.iter().copied().collect::<HashSet<u16>>(),
            stored: resend.stored,
        });
        let secs_until =
            |ms: u64| u32::try_from(ms.saturating_sub(now).div_ceil(1000)).unwrap_or(u32::MAX);
        let expiry_left = if expiry == u32::MAX {
            u32::MAX
        } else {
            secs_until(ends_ms)
        };
        let (will, will_left) = match will {
            Some((w, due)) if due <= now => {
                due_wills.push(w);
                changed = true;
                (None, 0)
            }
            Some((w, due)) => (Some((w, due)), secs_until(due).min(expiry_left)),
            None => (None, 0),
        };
        let has_will = will.is_some();
        session.restore(rec.protocol, Some(since), offline, inflight, will);
        lifecycle::restart_timer(shared, &session, has_will.then_some(will_left), expiry_left);
        shared.sessions.lock().insert(session.clone());
        sum.sessions += 1;
        if changed {
            if let Some(record) = session.record() {
                ops.push(Op::PutSession {
                    client_id: id.clone(),
                    record,
                });
            }
        }
    }
    // Wills of connections without a persistent session: their session ended
    // with the connection, so they are published now (semantics.md §11).
    for (client_id, w) in restored.open_wills {
        sum.open_wills += 1;
        due_wills.push(convert::open_will(&w));
        ops.push(Op::DeleteOpenWill { client_id });
    }
    if !ops.is_empty() {
        store.submit_detached(ops);
    }
    sum.wills_due = due_wills.len();
    for w in due_wills {
        info!(client_id = %w.msg.origin, "will fell due while the broker was down: publishing it now");
        lifecycle::fire_will(shared, w);
    }
    sum
}

/// The copies a session had in flight, as its resumed connection sends them
/// again (the codec's own resend at CONNACK, as for a session resumed in
/// memory): PUBLISH with DUP=1 or PUBREL, under the stored packet
/// identifiers, in the order they were queued (semantics.md §11).
#[derive(Default)]
struct Resend {
    packets: Vec<GenericStorePacket<u16>>,
    stored: Vec<StoredOut>,
}

impl Resend {
    /// Adds the copy `seq` as it was last sent; false when it cannot be sent
    /// that way again (an identifier 0 or used twice, a message the codec
    /// refuses): only a damaged store holds such a copy.
    fn add(
        &mut self,
        version: Version,
        seq: u64,
        m: &MessageRecord,
        sent: OutboundRecord,
        epoch: u64,
    ) -> bool {
        let id = sent.packet_id;
        if id == 0 || self.stored.iter().any(|s| s.packet_id == id) {
            warn!(
                packet_id = id,
                seq, "stored in-flight copy has an unusable packet identifier"
            );
            return false;
        }
        let packet = match sent.state {
            OutboundState::PublishSent => delivery(seq, m, epoch).resend(version, id),
            OutboundState::PubrelSent => resend_pubrel(version, id),
        };
        match packet {
            Ok(p) => {
                self.packets.push(p);
                self.stored.push(StoredOut {
                    packet_id: id,
                    seq,
                    id_stored: true,
                });
                true
            }
            Err(e) => {
                warn!(packet_id = id, seq, error = %e, "stored in-flight copy cannot be sent again");
                false
            }
        }
    }
}

fn delivery(seq: u64, m: &MessageRecord, epoch: u64) -> Delivery {
    Delivery {
        msg: Arc::new(convert::message(m)),
        qos: qos_from_u8(m.qos),
        retain: m.retain,
        subscription_ids: m.subscription_ids.clone(),
        stored: Some(seq),
        epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::fuzzing;
    use crate::broker::store::record::SessionRecord;
    use crate::broker::store::{Durability, Store};
    use crate::broker::{Broker, BrokerConfig, IdentityMode};

    fn copy(payload: &str) -> MessageRecord {
        MessageRecord {
            topic: "a/b".into(),
            payload: payload.as_bytes().to_vec(),
            qos: 2,
            retain: false,
            props: Vec::new(),
            expires_at_ms: None,
            origin: "p".into(),
            subscription_ids: Vec::new(),
        }
    }

    /// A session of `admin` with four QoS 2 copies: released (PUBREL 5),
    /// sent (PUBLISH 6), sent under 6 again (only a damaged store holds
    /// that), and queued. Returns the store reopened and what it read.
    async fn stored_session(dir: &std::path::Path) -> (Store, Restored, [u64; 4]) {
        let (store, _) = Store::open(dir, Durability::Sync).expect("opens");
        let seqs = [(); 4].map(|()| store.next_seq());
        let session = SessionRecord {
            auth_name: "admin".into(),
            expiry: 3600,
            protocol: 5,
            subscriptions: Vec::new(),
            disconnected_at_ms: None,
            will: None,
        };
        let mut ops = vec![Op::PutSession {
            client_id: "c1".into(),
            record: session,
        }];
        for (seq, payload) in seqs.iter().zip(["released", "sent", "twice", "queued"]) {
            ops.push(Op::PutMessage {
                client_id: "c1".into(),
                seq: *seq,
                record: copy(payload),
            });
        }
        let sent = [
            (seqs[0], 5, OutboundState::PubrelSent),
            (seqs[1], 6, OutboundState::PublishSent),
            (seqs[2], 6, OutboundState::PublishSent),
        ];
        for (seq, packet_id, state) in sent {
            ops.push(Op::PutOutbound {
                client_id: "c1".into(),
                seq,
                record: OutboundRecord { packet_id, state },
            });
        }
        store.submit(ops).wait().await.expect("durable");
        drop(store);
        let (store, restored) = Store::open(dir, Durability::Sync).expect("reopens");
        (store, restored, seqs)
    }

    #[tokio::test]
    async fn copies_in_flight_are_restored_as_the_codec_resends_them_in_queue_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, restored, seqs) = stored_session(tmp.path()).await;
        let policy = fuzzing::broker().shared().policy.current();
        let (broker, summary) = Broker::with_store(
            policy,
            BrokerConfig::default(),
            IdentityMode::Dev { anonymous: None },
            store,
            restored,
        );
        assert_eq!((summary.messages, summary.in_flight), (4, 2));
        let session = broker
            .shared()
            .sessions
            .lock()
            .get("c1")
            .cloned()
            .expect("restored");
        let inflight = session.take_inflight(Version::V5_0).expect("in flight");
        let resent: Vec<_> = inflight
            .packets
            .iter()
            .map(|p| (p.packet_type(), p.packet_id()))
            .collect();
        use mqtt_protocol_core::mqtt::packet::PacketType::{Publish, Pubrel};
        assert_eq!(resent, vec![(Pubrel, 5), (Publish, 6)]);
        let GenericStorePacket::V5_0Publish(p) = &inflight.packets[1] else {
            panic!("a PUBLISH");
        };
        assert!(p.dup());
        assert_eq!(p.payload().as_slice(), b"sent");
        assert_eq!(
            inflight.stored,
            vec![
                StoredOut {
                    packet_id: 5,
                    seq: seqs[0],
                    id_stored: true
                },
                StoredOut {
                    packet_id: 6,
                    seq: seqs[1],
                    id_stored: true
                },
            ]
        );
        // The copy stored under an identifier already taken goes out again
        // under a new one, before the copy queued after it.
        let offline: Vec<_> = session
            .take_offline()
            .iter()
            .map(|d| (d.stored, d.msg.payload.to_vec()))
            .collect();
        assert_eq!(
            offline,
            vec![
                (Some(seqs[2]), b"twice".to_vec()),
                (Some(seqs[3]), b"queued".to_vec())
            ]
        );
    }
}
