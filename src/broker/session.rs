//! Sessions: what outlives a network connection (subscriptions, queued messages,
//! a delayed will) and the rules for claiming one at CONNECT.

use super::durable::{self, Restoring};
use super::message::{min_qos, qos_u8, Message};
use super::retained::{Advance, Retained, RetainedCursor};
use super::router::SubOptions;
use super::state::Shared;
use super::store::convert;
use super::store::record::{self, SessionRecord, WillRecord};
use super::will::{self, Will};
use crate::topic;
use mqtt_protocol_core::mqtt::common::HashSet;
use mqtt_protocol_core::mqtt::packet::{GenericStorePacket, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

/// One copy of a message for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    pub qos: Qos,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Its sequence number in the durable store, when it is stored there (a
    /// QoS 1/2 copy for a persistent session, with `--data`).
    pub stored: Option<u64>,
}

/// Why another part of the broker asks a connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    None,
    /// A new connection with the same client ID took the session over.
    TakenOver,
    /// The policy in force no longer knows or enables the client.
    NotAuthorized,
}

/// The connection a session is attached to, and the mail waiting for it.
///
/// The mailbox is a plain queue under the session's lock rather than a channel:
/// an idle connection then holds no channel allocation, and the connection takes
/// everything queued in one swap, so one write carries many messages.
struct Attached {
    conn_id: u64,
    /// Deliveries the connection has not taken yet (at most `max_queued_messages`).
    mailbox: VecDeque<Delivery>,
    kick: Kick,
}

/// What a publisher's delivery to one session came to.
pub enum Deliver {
    /// Queued for the connection or, offline, in the session.
    Queued,
    /// Dropped: QoS 0 to an offline session, a full offline queue, an ended session,
    /// or a connection that stopped taking its mail.
    Dropped,
    /// The attached connection's mailbox is full: the caller may wait for room
    /// ([`Session::room`]) and try again, or drop it.
    Full(Delivery),
}

/// What the attached connection finds when it is woken.
pub struct Mail {
    /// Deliveries taken, oldest first.
    pub taken: usize,
    /// Deliveries left in the mailbox (beyond the limit).
    pub left: usize,
    pub kick: Kick,
    /// The session no longer knows this connection.
    pub detached: bool,
}

/// A subscription's retained messages not sent yet (MQTT 5 §3.3.1.3, §3.8.4):
/// read from the store as the client's flow control allows, so that however
/// many match, none is lost to the bounded queues.
struct Backlog {
    cursor: RetainedCursor,
    granted: Qos,
    subscription_id: Option<u32>,
}

/// What [`Session::next_retained`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainedStep {
    /// No retained message is left to send.
    Done,
    /// The next one waits for room in the inflight window.
    Window,
    /// The batch is full, or the store was scanned long enough: call again.
    More,
}

/// QoS 1/2 state saved from a connection of a persistent session.
pub struct Inflight {
    pub version: Version,
    pub packets: Vec<GenericStorePacket<u16>>,
    pub qos2_handled: HashSet<u16>,
    /// Packet ID -> store sequence of the stored copies among `packets`.
    pub stored: Vec<(u16, u64)>,
}

#[derive(Default)]
struct SessionState {
    attached: Option<Attached>,
    offline: VecDeque<Delivery>,
    /// Raw filter (with `$share/NAME/` if any) -> options.
    subscriptions: HashMap<String, SubOptions>,
    /// Session expiry in seconds; `u32::MAX` never expires.
    expiry: u32,
    pending_will: Option<Box<Will>>,
    timer: Option<AbortHandle>,
    inflight: Option<Box<Inflight>>,
    /// Retained messages owed to subscriptions, oldest SUBSCRIBE first (at most
    /// one per filter, so bounded by `maxSubscriptionsPerSession`).
    retained: VecDeque<Backlog>,
    /// The offline queue overflowed since the session was last online (logged once).
    offline_overflowed: bool,
    ended: bool,
    /// MQTT protocol level of the last connection (4 or 5), for the store.
    protocol: u8,
    /// When the last connection ended (Unix ms), for the store.
    disconnected_at_ms: Option<u64>,
    /// When `pending_will` is due (Unix ms), for the store.
    will_due_ms: Option<u64>,
}

/// A session, named by its client ID and owned by one authentication name.
pub struct Session {
    pub client_id: String,
    pub auth_name: String,
    online: AtomicBool,
    state: Mutex<SessionState>,
    /// Wakes the attached connection: mail arrived or it was kicked. It keeps a
    /// permit when nobody waits, so a wake between two waits is not lost.
    wake: Notify,
    /// Wakes publishers waiting for room in the mailbox and connections waiting
    /// for this session's connection to detach.
    room: Notify,
    /// A publisher waited for room in vain: until the connection takes its mail
    /// again, deliveries that find the mailbox full are dropped without waiting.
    stalled: AtomicBool,
    /// Session expiry > 0: it outlives its connection, and with `--data` its
    /// state is kept in the store (decision 0025).
    persistent: AtomicBool,
}

impl Session {
    pub(crate) fn new(client_id: &str, auth_name: &str) -> Arc<Session> {
        Arc::new(Session {
            client_id: client_id.to_string(),
            auth_name: auth_name.to_string(),
            online: AtomicBool::new(false),
            state: Mutex::new(SessionState::default()),
            wake: Notify::new(),
            room: Notify::new(),
            stalled: AtomicBool::new(false),
            persistent: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a network connection is attached now.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Hands one copy to the attached connection's mailbox or, when offline, to
    /// the bounded queue (QoS 1/2 only).
    pub fn deliver(&self, d: Delivery, max_queue: usize) -> Deliver {
        let mut st = self.lock();
        if st.ended {
            return Deliver::Dropped;
        }
        if let Some(a) = &mut st.attached {
            if a.mailbox.len() >= max_queue.max(1) {
                return Deliver::Full(d);
            }
            let first = a.mailbox.is_empty();
            a.mailbox.push_back(d);
            drop(st);
            // A non-empty mailbox has already woken the connection, which takes all of it.
            if first {
                self.wake.notify_one();
            }
            return Deliver::Queued;
        }
        if d.qos == Qos::AtMostOnce {
            // MQTT: QoS 0 is not queued for an offline session.
            return Deliver::Dropped;
        }
        if st.offline.len() >= max_queue {
            if !std::mem::replace(&mut st.offline_overflowed, true) {
                warn!(
                    client_id = %self.client_id, max_queued_messages = max_queue,
                    "offline queue full: further QoS 1/2 messages for this session are dropped (counted) until it reconnects"
                );
            }
            return Deliver::Dropped;
        }
        st.offline.push_back(d);
        Deliver::Queued
    }

    /// Resolves when the attached connection has taken mail from a full mailbox
    /// or detached. Create and `enable` it before [`deliver`](Self::deliver)
    /// returns `Full`, so that a take in between is not missed.
    pub fn room(&self) -> Notified<'_> {
        self.room.notified()
    }

    /// A publisher waited for room in vain and the connection has not taken mail
    /// since: copies that find the mailbox full are dropped at once, so one stuck
    /// subscriber cannot hold its publishers back again and again.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    pub fn mark_stalled(&self) {
        // Logged once per stall (the flag clears when the connection takes mail).
        if !self.stalled.swap(true, Ordering::Relaxed) {
            warn!(
                client_id = %self.client_id,
                "mailbox stayed full: copies for this subscriber are dropped (counted) until it takes mail again"
            );
        }
    }

    /// Resolves when the attached connection is woken (mail or kick).
    pub fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// For the attached connection `conn_id`: moves up to `limit` deliveries of
    /// its mail to `into` and reports a kick, or that the session no longer knows it.
    pub fn take_mail(
        &self,
        conn_id: u64,
        max_queue: usize,
        limit: usize,
        into: &mut VecDeque<Delivery>,
    ) -> Mail {
        let mut st = self.lock();
        let Some(a) = st.attached.as_mut().filter(|a| a.conn_id == conn_id) else {
            return Mail {
                taken: 0,
                left: 0,
                kick: Kick::None,
                detached: true,
            };
        };
        let before = a.mailbox.len();
        if before <= limit && into.is_empty() {
            // Swap rather than copy: the two queues keep their capacity in turn.
            std::mem::swap(&mut a.mailbox, into);
        } else {
            into.extend(a.mailbox.drain(..before.min(limit)));
        }
        let left = a.mailbox.len();
        let taken = before - left;
        let kick = a.kick;
        drop(st);
        if taken > 0 {
            self.stalled.store(false, Ordering::Relaxed);
            // Publishers wait only on a full mailbox; waking them on every take
            // would cost a lock per batch for nothing.
            if before >= max_queue.max(1) {
                self.room.notify_waiters();
            }
        }
        Mail {
            taken,
            left,
            kick,
            detached: false,
        }
    }

    /// Records a subscription; returns (existed before, count after) or None when
    /// the limit is reached.
    pub fn add_subscription(&self, raw: &str, opts: SubOptions, max: usize) -> Option<bool> {
        let mut st = self.lock();
        let existed = st.subscriptions.contains_key(raw);
        if !existed && st.subscriptions.len() >= max {
            return None;
        }
        st.subscriptions.insert(raw.to_string(), opts);
        Some(existed)
    }

    /// The raw filters of the session's subscriptions.
    pub fn subscription_filters(&self) -> Vec<String> {
        self.lock().subscriptions.keys().cloned().collect()
    }

    /// Asks the attached connection, if any, to end.
    pub fn kick(&self, why: Kick) {
        let mut st = self.lock();
        if let Some(a) = &mut st.attached {
            a.kick = why;
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Waits until no connection is attached (after a takeover was asked for).
    pub async fn detached(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.is_online() {
                return;
            }
            room.await;
        }
    }

    /// Forgets a subscription, and the retained messages it was still owed.
    pub fn remove_subscription(&self, raw: &str) -> bool {
        let mut st = self.lock();
        st.retained.retain(|b| b.cursor.filter() != raw);
        st.subscriptions.remove(raw).is_some()
    }

    /// Owes the subscription to `cursor`'s filter its retained messages, sent
    /// after those owed to earlier SUBSCRIBEs. A new SUBSCRIBE to the same
    /// filter starts its messages over (MQTT 5 §3.8.4: they are sent again).
    pub fn start_retained(
        &self,
        cursor: RetainedCursor,
        granted: Qos,
        subscription_id: Option<u32>,
    ) {
        let mut st = self.lock();
        st.retained.retain(|b| b.cursor.filter() != cursor.filter());
        st.retained.push_back(Backlog {
            cursor,
            granted,
            subscription_id,
        });
    }

    /// Whether retained messages are owed to a subscription.
    pub fn has_retained(&self) -> bool {
        !self.lock().retained.is_empty()
    }

    /// Moves the next retained messages owed into `into`, in order: at most
    /// `window` at QoS 1/2 (the room in the client's inflight window) and at
    /// most `batch` in all.
    pub fn next_retained(
        &self,
        store: &Retained,
        window: usize,
        batch: usize,
        into: &mut Vec<Delivery>,
    ) -> RetainedStep {
        let mut st = self.lock();
        let mut window_left = window;
        while let Some(b) = st.retained.front_mut() {
            let mut window_full = false;
            let granted = b.granted;
            let sub_id = b.subscription_id;
            let step = store.advance(&mut b.cursor, |msg| {
                let qos = min_qos(msg.qos, granted);
                if into.len() >= batch {
                    return false;
                }
                if qos != Qos::AtMostOnce {
                    if window_left == 0 {
                        window_full = true;
                        return false;
                    }
                    window_left -= 1;
                }
                into.push(Delivery {
                    msg: msg.clone(),
                    qos,
                    retain: true,
                    subscription_ids: sub_id.into_iter().collect(),
                    stored: None,
                });
                true
            });
            match step {
                Advance::Done => {
                    st.retained.pop_front();
                }
                Advance::Declined if window_full => return RetainedStep::Window,
                Advance::Declined | Advance::More => return RetainedStep::More,
            }
        }
        RetainedStep::Done
    }

    /// Messages queued while offline, to send after CONNACK.
    pub fn take_offline(&self) -> VecDeque<Delivery> {
        let mut st = self.lock();
        st.offline_overflowed = false;
        std::mem::take(&mut st.offline)
    }

    /// Saved QoS state of the previous connection, when the versions match.
    pub fn take_inflight(&self, version: Version) -> Option<Inflight> {
        self.lock()
            .inflight
            .take()
            .filter(|i| i.version == version)
            .map(|i| *i)
    }

    pub fn set_expiry(&self, secs: u32) {
        self.lock().expiry = secs;
        self.persistent.store(secs > 0, Ordering::Relaxed);
    }

    /// Whether the session outlives its connection (expiry > 0).
    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Records the protocol level of the connection attached now.
    pub fn set_protocol(&self, level: u8) {
        self.lock().protocol = level;
    }

    /// The session as the store keeps it; None once it has ended.
    pub fn record(&self) -> Option<SessionRecord> {
        let st = self.lock();
        if st.ended {
            return None;
        }
        let mut subscriptions: Vec<_> = st
            .subscriptions
            .iter()
            .map(|(raw, o)| convert::sub_record(raw, o))
            .collect();
        subscriptions.sort_by(|a, b| a.filter.cmp(&b.filter));
        let will = match (&st.pending_will, st.will_due_ms) {
            (Some(w), Some(due_ms)) => Some(WillRecord {
                msg: convert::message_record(&w.msg, qos_u8(w.msg.qos), &[]),
                due_ms,
                expiry: w.expiry,
                auth_name: w.auth_name.clone(),
            }),
            _ => None,
        };
        Some(SessionRecord {
            auth_name: self.auth_name.clone(),
            expiry: st.expiry,
            protocol: st.protocol,
            subscriptions,
            disconnected_at_ms: st.disconnected_at_ms,
            will,
        })
    }

    /// Puts a session read from the store back: its offline queue, the QoS 2
    /// state of its publisher side, its pending will, and its expiry timer
    /// (`will_left` and `expiry_left` in seconds from now).
    pub(crate) fn restore(self: &Arc<Self>, shared: &Arc<Shared>, restored: Restoring) {
        let mut st = self.lock();
        st.protocol = restored.protocol;
        st.disconnected_at_ms = restored.disconnected_at_ms;
        st.offline = restored.offline;
        st.inflight = restored.inflight.map(Box::new);
        st.will_due_ms = restored.will.as_ref().map(|(_, due)| *due);
        st.pending_will = restored.will.map(|(w, _)| Box::new(w));
        if st.expiry != u32::MAX || st.pending_will.is_some() {
            let will_left = st.pending_will.as_ref().map(|_| restored.will_left);
            let task = tokio::spawn(expire(
                shared.clone(),
                self.clone(),
                will_left,
                restored.expiry_left,
            ));
            st.timer = Some(task.abort_handle());
        }
    }

    pub fn expiry(&self) -> u32 {
        self.lock().expiry
    }
}

/// The outcome of trying to attach a new connection to a client ID.
pub enum Claim {
    Attached {
        session: Arc<Session>,
        present: bool,
    },
    /// The client ID belongs to another authentication name.
    WrongOwner,
    /// Another connection holds it: it was asked to leave; wait for
    /// [`Session::detached`], then retry.
    Wait(Arc<Session>),
    /// A new session would exceed `maxSessionsPerAuthenticationName`.
    TooManySessions { limit: usize },
    /// No client identifier could be assigned: the system's random source failed.
    NoIdentifier,
}

/// Every session, by client ID. Locked only at CONNECT and when a connection ends.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<Registry>,
}

/// The sessions and how many each authentication name holds, kept together
/// under one lock so that the count is never out of step with the map.
#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Arc<Session>>,
    /// Sessions (online and offline) per lower-cased authentication name.
    per_auth: HashMap<String, usize>,
}

impl Registry {
    fn get(&self, client_id: &str) -> Option<&Arc<Session>> {
        self.by_id.get(client_id)
    }

    fn sessions_of(&self, auth_name: &str) -> usize {
        self.per_auth
            .get(&auth_name.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Adds `session` under its client ID, replacing the one there (of the same
    /// authentication name: only that one may take a session over).
    fn insert(&mut self, session: Arc<Session>) {
        let auth = session.auth_name.to_lowercase();
        if let Some(old) = self.by_id.insert(session.client_id.clone(), session) {
            self.forget_owner(&old.auth_name);
        }
        *self.per_auth.entry(auth).or_insert(0) += 1;
    }

    /// Removes `session` if it is still the one registered under its client ID.
    fn remove(&mut self, session: &Arc<Session>) {
        if self
            .by_id
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            self.by_id.remove(&session.client_id);
            self.forget_owner(&session.auth_name);
        }
    }

    fn forget_owner(&mut self, auth_name: &str) {
        let auth = auth_name.to_lowercase();
        if let Some(n) = self.per_auth.get_mut(&auth) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_auth.remove(&auth);
            }
        }
    }
}

/// An assigned client identifier: 128 random bits, so that nobody can take
/// the next one first (as with a counter), and never the ID of a session that
/// exists. `random` fills 16 bytes; None when it fails every time.
fn assign_client_id(
    reg: &Registry,
    mut random: impl FnMut(&mut [u8; 16]) -> bool,
) -> Option<String> {
    // A collision of 128 random bits does not happen; the bound is for a broken source.
    for _ in 0..8 {
        let mut bits = [0u8; 16];
        if !random(&mut bits) {
            continue;
        }
        let id = format!("tg-{}", hex::encode(bits));
        if reg.get(&id).is_none() {
            return Some(id);
        }
    }
    None
}

/// The operating system's random source (getrandom(2) on Linux).
fn system_random(bits: &mut [u8; 16]) -> bool {
    getrandom::getrandom(bits).is_ok()
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every session now.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().by_id.values().cloned().collect()
    }

    pub fn contains(&self, client_id: &str) -> bool {
        self.lock().by_id.contains_key(client_id)
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a session read from the store (at start, before any connection).
    pub(crate) fn insert_restored(&self, session: Arc<Session>) {
        self.lock().insert(session);
    }

    /// Sessions, online and offline, held by `auth_name`.
    pub fn count_for(&self, auth_name: &str) -> usize {
        self.lock().sessions_of(auth_name)
    }

    /// Attaches connection `conn_id` to `client_id`, or to a fresh session under
    /// an assigned identifier when `client_id` is None (semantics.md §5 and §6):
    /// only the same authentication name may take a session over; Clean Start
    /// ends the old session and publishes its pending will at once; resuming
    /// discards a pending will. A new session (not a takeover) is refused when
    /// the authentication name already holds `maxSessionsPerAuthenticationName`.
    pub fn claim(
        &self,
        shared: &Shared,
        client_id: Option<&str>,
        auth_name: &str,
        clean_start: bool,
        conn_id: u64,
    ) -> Claim {
        let mut fire_now = None;
        let mut removed_subs = Vec::new();
        let mut replaced = false;
        let claim = {
            let mut map = self.lock();
            let existing = client_id.and_then(|id| map.get(id).cloned());
            let (session, present) = match existing {
                Some(s) => {
                    // Authentication names compare case-insensitively (semantics.md §1).
                    if s.auth_name.to_lowercase() != auth_name.to_lowercase() {
                        return Claim::WrongOwner;
                    }
                    let mut st = s.lock();
                    if let Some(a) = &mut st.attached {
                        a.kick = Kick::TakenOver;
                        drop(st);
                        s.wake.notify_one();
                        return Claim::Wait(s);
                    }
                    if let Some(t) = st.timer.take() {
                        t.abort();
                    }
                    let pending = st.pending_will.take().map(|w| *w);
                    if clean_start {
                        fire_now = pending;
                        replaced = true;
                        st.ended = true;
                        removed_subs = st.subscriptions.drain().map(|(k, _)| k).collect();
                        st.retained.clear();
                        drop(st);
                        let fresh = Session::new(&s.client_id, auth_name);
                        map.insert(fresh.clone());
                        (fresh, false)
                    } else {
                        if pending.is_some() {
                            debug!(
                                client_id = %s.client_id,
                                "session resumed before the will delay: will discarded"
                            );
                        }
                        drop(st);
                        (s, true)
                    }
                }
                None => {
                    let limit = shared.config.max_sessions_per_authentication_name;
                    if map.sessions_of(auth_name) >= limit {
                        return Claim::TooManySessions { limit };
                    }
                    let id = match client_id {
                        Some(id) => id.to_string(),
                        None => match assign_client_id(&map, system_random) {
                            Some(id) => id,
                            None => return Claim::NoIdentifier,
                        },
                    };
                    let fresh = Session::new(&id, auth_name);
                    map.insert(fresh.clone());
                    (fresh, false)
                }
            };
            {
                let mut st = session.lock();
                st.attached = Some(Attached {
                    conn_id,
                    mailbox: VecDeque::new(),
                    kick: Kick::None,
                });
                st.disconnected_at_ms = None;
                st.will_due_ms = None;
                session.online.store(true, Ordering::Relaxed);
                session.stalled.store(false, Ordering::Relaxed);
            }
            Claim::Attached { session, present }
        };
        if let Claim::Attached { session, .. } = &claim {
            if replaced {
                durable::session_ended(shared, &session.client_id);
            }
            unsubscribe_all(shared, &session.client_id, removed_subs);
        }
        if let Some(w) = fire_now {
            will::fire(shared, w);
        }
        claim
    }

    /// Detaches connection `conn_id` when it ends. `will` is the connection's will
    /// if it must be published (not after a normal DISCONNECT). `undelivered` (the
    /// connection's queue) and the mail it never took go back to the session's
    /// offline queue (QoS 1/2) before the next connection can claim it. A session
    /// with expiry 0 ends now; otherwise a timer publishes the will after
    /// min(will delay, session expiry) and ends the session at expiry.
    pub fn release(
        &self,
        shared: &Arc<Shared>,
        session: &Arc<Session>,
        conn_id: u64,
        will: Option<Will>,
        inflight: Option<Inflight>,
        undelivered: VecDeque<Delivery>,
    ) {
        let mut fire_now = None;
        let mut removed_subs = Vec::new();
        let mut unstored = Vec::new();
        let mut ended = false;
        {
            let mut map = self.lock();
            let mut st = session.lock();
            if st.attached.as_ref().map(|a| a.conn_id) != Some(conn_id) {
                // Not ours any more (cannot happen: takeover waits for us); still honour the will.
                drop(st);
                drop(map);
                if let Some(w) = will {
                    will::fire(shared, w);
                }
                return;
            }
            let mail = st.attached.take().map(|a| a.mailbox).unwrap_or_default();
            session.online.store(false, Ordering::Relaxed);
            let max = shared.config.max_queued_messages;
            let mut dropped = 0u64;
            for d in undelivered.into_iter().chain(mail) {
                if d.qos == Qos::AtMostOnce {
                    continue;
                }
                if st.offline.len() < max {
                    st.offline.push_back(d);
                } else {
                    dropped += 1;
                    unstored.extend(d.stored);
                }
            }
            if dropped > 0 {
                st.offline_overflowed = true;
                shared
                    .stats
                    .drop_messages(super::stats::DropReason::QueueFull, dropped);
                warn!(
                    client_id = %session.client_id, dropped, max_queued_messages = max,
                    "undelivered QoS 1/2 messages beyond the offline queue dropped at disconnect"
                );
            }
            let expiry = st.expiry;
            if expiry == 0 {
                ended = true;
                st.ended = true;
                removed_subs = st.subscriptions.drain().map(|(k, _)| k).collect();
                st.offline.clear();
                st.retained.clear();
                map.remove(session);
                fire_now = will;
            } else {
                st.inflight = inflight.map(Box::new);
                let will_delay = will.as_ref().map(|w| w.delay.min(expiry));
                let now = record::now_ms();
                st.disconnected_at_ms = Some(now);
                match (will, will_delay) {
                    (Some(w), Some(0)) => fire_now = Some(w),
                    (Some(w), Some(d)) => {
                        st.pending_will = Some(Box::new(w));
                        st.will_due_ms = Some(now.saturating_add(u64::from(d) * 1000));
                    }
                    _ => {}
                }
                if expiry != u32::MAX || st.pending_will.is_some() {
                    let task = tokio::spawn(expire(
                        shared.clone(),
                        session.clone(),
                        will_delay.filter(|d| *d > 0),
                        expiry,
                    ));
                    st.timer = Some(task.abort_handle());
                }
            }
        }
        // Publishers waiting for room, and a connection waiting to take over.
        session.room.notify_waiters();
        if ended {
            durable::session_ended(shared, &session.client_id);
        } else {
            durable::unstore(shared, &session.client_id, unstored);
            durable::session_changed(shared, session);
        }
        unsubscribe_all(shared, &session.client_id, removed_subs);
        if let Some(w) = fire_now {
            will::fire(shared, w);
        }
    }
}

/// Publishes a delayed will when its time comes, then ends the session at expiry.
async fn expire(shared: Arc<Shared>, session: Arc<Session>, will_delay: Option<u32>, expiry: u32) {
    let mut waited = 0u32;
    if let Some(d) = will_delay {
        tokio::time::sleep(Duration::from_secs(u64::from(d))).await;
        waited = d;
        let w = {
            let mut st = session.lock();
            st.will_due_ms = None;
            st.pending_will.take().map(|w| *w)
        };
        if let Some(w) = w {
            will::fire(&shared, w);
            durable::session_changed(&shared, &session);
        }
    }
    if expiry == u32::MAX {
        return;
    }
    tokio::time::sleep(Duration::from_secs(u64::from(expiry - waited))).await;
    let removed = {
        let mut map = shared.sessions.lock();
        let mut st = session.lock();
        if st.attached.is_some() || st.ended {
            return;
        }
        st.ended = true;
        st.offline.clear();
        st.retained.clear();
        st.timer = None;
        map.remove(&session);
        debug!(client_id = %session.client_id, "session expired");
        let pending = st.pending_will.take().map(|w| *w);
        (
            st.subscriptions.drain().map(|(k, _)| k).collect::<Vec<_>>(),
            pending,
        )
    };
    durable::session_ended(&shared, &session.client_id);
    unsubscribe_all(&shared, &session.client_id, removed.0);
    if let Some(w) = removed.1 {
        will::fire(&shared, w);
    }
}

fn unsubscribe_all(shared: &Shared, client_id: &str, raws: Vec<String>) {
    for raw in raws {
        if let Ok(sub) = topic::parse_subscription(&raw) {
            shared.router.unsubscribe(client_id, &sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(ids: &[&str]) -> Registry {
        let mut reg = Registry::default();
        for id in ids {
            reg.insert(Session::new(id, "owner"));
        }
        reg
    }

    #[test]
    fn an_assigned_identifier_skips_one_that_a_session_already_has() {
        let taken = format!("tg-{}", hex::encode([7u8; 16]));
        let reg = registry_with(&[taken.as_str()]);
        // The source first repeats the taken ID's bits, then gives fresh ones.
        let mut calls = 0u8;
        let id = assign_client_id(&reg, |bits| {
            calls += 1;
            *bits = if calls == 1 { [7; 16] } else { [9; 16] };
            true
        });
        assert_eq!(id, Some(format!("tg-{}", hex::encode([9u8; 16]))));
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_source_that_only_fails_or_collides_assigns_nothing() {
        let taken = format!("tg-{}", hex::encode([7u8; 16]));
        let reg = registry_with(&[taken.as_str()]);
        assert_eq!(assign_client_id(&reg, |_| false), None);
        assert_eq!(
            assign_client_id(&reg, |bits| {
                *bits = [7; 16];
                true
            }),
            None
        );
    }

    #[test]
    fn the_system_source_gives_distinct_identifiers() {
        let reg = Registry::default();
        let a = assign_client_id(&reg, system_random).expect("random source");
        let b = assign_client_id(&reg, system_random).expect("random source");
        assert_ne!(a, b);
        assert_eq!(a.len(), "tg-".len() + 32);
    }

    #[test]
    fn the_count_per_authentication_name_follows_inserts_replacements_and_removals() {
        let mut reg = Registry::default();
        let a = Session::new("a", "Alice");
        reg.insert(a.clone());
        reg.insert(Session::new("b", "alice"));
        assert_eq!(reg.sessions_of("ALICE"), 2);
        // Clean Start replaces a session under the same ID: the count stays.
        let a2 = Session::new("a", "alice");
        reg.insert(a2.clone());
        assert_eq!(reg.sessions_of("alice"), 2);
        // Removing the replaced session is a no-op; removing the current one counts.
        reg.remove(&a);
        assert_eq!(reg.sessions_of("alice"), 2);
        reg.remove(&a2);
        assert_eq!(reg.sessions_of("alice"), 1);
        assert_eq!(reg.sessions_of("bob"), 0);
    }
}
