//! Sessions: what outlives a network connection (subscriptions, queued
//! messages, owed retained messages, a delayed will), and the registry of them
//! (`registry`). This module holds a session's state and the transitions of
//! it; when they happen (claim at CONNECT, release at the end of a connection,
//! expiry) is decided by `broker::lifecycle`, one layer up.

mod backlog;
pub mod keepalive;
pub mod registry;
mod wake;

use backlog::RetainedBacklog;
pub use backlog::RetainedStep;
use wake::WakeUp;
pub use wake::Woken;

use crate::broker::message::{qos_u8, Delivery};
use crate::broker::retained::{Retained, RetainedCursor};
use crate::broker::store::convert;
use crate::broker::store::record::{self, SessionRecord, WillRecord};
use crate::broker::sub_options::SubOptions;
use crate::broker::will::Will;
use mqtt_protocol_core::mqtt::common::HashSet;
use mqtt_protocol_core::mqtt::packet::{GenericStorePacket, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::warn;

/// Why another part of the broker asks a connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    None,
    /// A new connection with the same client ID took the session over.
    TakenOver,
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
    /// The policy was replaced: the connection re-authorizes what it holds
    /// itself (its client, its will).
    recheck: bool,
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
    /// The policy was replaced since the last take: re-authorize the client and will.
    pub recheck: bool,
    /// The session no longer knows this connection.
    pub detached: bool,
}

/// QoS 1/2 state saved from a connection of a persistent session.
pub struct Inflight {
    pub version: Version,
    pub packets: Vec<GenericStorePacket<u16>>,
    pub qos2_handled: HashSet<u16>,
    /// The stored copies among `packets`.
    pub stored: Vec<StoredOut>,
}

/// A copy in the durable store that is in flight to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOut {
    pub packet_id: u16,
    /// Its sequence in the store.
    pub seq: u64,
    /// Its packet identifier and exchange state are in the store too (QoS 2,
    /// decision 0030): removed with it.
    pub id_stored: bool,
}

#[derive(Default)]
struct SessionState {
    attached: Option<Attached>,
    /// What a session holds while offline (and until its resumed connection
    /// took it): boxed, so that an attached idle session carries a pointer
    /// instead (decision 0036).
    away: Option<Box<Away>>,
    /// Raw filter (with `$share/NAME/` if any) -> options.
    subscriptions: HashMap<String, SubOptions>,
    /// Session expiry in seconds; `u32::MAX` never expires.
    expiry: u32,
    /// Retained messages owed to subscriptions: boxed while any are owed,
    /// none for most sessions (decision 0036).
    retained: Option<Box<RetainedBacklog>>,
    ended: bool,
    /// MQTT protocol level of the last connection (4 or 5), for the store.
    protocol: u8,
}

/// See `SessionState::away`.
#[derive(Default)]
struct Away {
    offline: VecDeque<Delivery>,
    pending_will: Option<Box<Will>>,
    timer: Option<AbortHandle>,
    inflight: Option<Box<Inflight>>,
    /// The offline queue overflowed since the session was last online (logged once).
    offline_overflowed: bool,
    /// When the last connection ended (Unix ms), for the store.
    disconnected_at_ms: Option<u64>,
    /// When `pending_will` is due (Unix ms), for the store.
    will_due_ms: Option<u64>,
}

impl Away {
    fn holds_nothing(&self) -> bool {
        self.offline.is_empty()
            && self.pending_will.is_none()
            && self.timer.is_none()
            && self.inflight.is_none()
            && !self.offline_overflowed
            && self.disconnected_at_ms.is_none()
            && self.will_due_ms.is_none()
    }
}

impl SessionState {
    /// The offline state, created on first use.
    fn away(&mut self) -> &mut Away {
        self.away.get_or_insert_with(Box::default)
    }

    /// Drops the offline state once it holds nothing (an attached session
    /// whose connection took it).
    fn settle(&mut self) {
        if self.away.as_deref().is_some_and(Away::holds_nothing) {
            self.away = None;
        }
    }
}

/// A session, named by its client ID and owned by one authentication name.
pub struct Session {
    /// Shared with the attached connection and the registry's key.
    pub client_id: Arc<str>,
    pub auth_name: Arc<str>,
    online: AtomicBool,
    state: Mutex<SessionState>,
    /// Wakes the attached connection: mail arrived, it was kicked, or the
    /// broker is shutting down. A wake-up while nobody waits is kept, so one
    /// between two waits is not lost (`wake`).
    wake: WakeUp,
    /// Wakes publishers waiting for room in the mailbox and connections waiting
    /// for this session's connection to detach.
    room: Notify,
    /// A publisher waited for room in vain: until the connection takes its mail
    /// again, deliveries that find the mailbox full are dropped without waiting.
    stalled: AtomicBool,
    /// Session expiry > 0 (see [`Session::is_persistent`]).
    persistent: AtomicBool,
    /// Deliveries queued in the attached connection behind the inflight window,
    /// and its QoS 1/2 PUBLISHes unacknowledged: written by that connection
    /// alone (plain stores, no contention), summed only at scrape.
    /// 32 bits (saturating) rather than a word: the session's size is a
    /// memory budget (decision 0036), and both are bounded far below.
    queued_in_connection: AtomicU32,
    inflight: AtomicU32,
}

/// How many messages wait in one session, for the queue-depth gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// In the mailbox, the offline queue and the connection's queue.
    pub queued: usize,
    /// Sent at QoS 1/2 and not yet acknowledged.
    pub inflight: usize,
}

impl Session {
    pub(crate) fn new(client_id: &str, auth_name: &str) -> Arc<Session> {
        Arc::new(Session {
            client_id: Arc::from(client_id),
            auth_name: Arc::from(auth_name),
            online: AtomicBool::new(false),
            state: Mutex::new(SessionState::default()),
            wake: WakeUp::default(),
            room: Notify::new(),
            stalled: AtomicBool::new(false),
            persistent: AtomicBool::new(false),
            queued_in_connection: AtomicU32::new(0),
            inflight: AtomicU32::new(0),
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
                self.wake.wake();
            }
            return Deliver::Queued;
        }
        if d.qos == Qos::AtMostOnce {
            // MQTT: QoS 0 is not queued for an offline session.
            return Deliver::Dropped;
        }
        let away = st.away();
        if away.offline.len() >= max_queue {
            if !std::mem::replace(&mut away.offline_overflowed, true) {
                warn!(
                    client_id = %self.client_id, max_queued_messages = max_queue,
                    "offline queue full: further QoS 1/2 messages for this session are dropped (counted) until it reconnects"
                );
            }
            return Deliver::Dropped;
        }
        away.offline.push_back(d);
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
    pub fn woken(&self) -> Woken<'_> {
        self.wake.woken()
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
                recheck: false,
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
        let recheck = std::mem::replace(&mut a.recheck, false);
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
            recheck,
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

    /// Whether a subscription the session holds now matches `topic`: a copy
    /// routed before a policy reload is sent only if so.
    pub fn receives(&self, topic: &str) -> bool {
        self.lock().subscriptions.keys().any(|raw| {
            crate::topic::parse_subscription(raw)
                .is_ok_and(|sub| crate::topic::matches(sub.filter, topic))
        })
    }

    /// The policy was replaced: wakes the attached connection, if any, to
    /// re-authorize what it holds (see [`Mail::recheck`]).
    pub fn policy_changed(&self) {
        let mut st = self.lock();
        if let Some(a) = &mut st.attached {
            a.recheck = true;
            drop(st);
            self.wake.wake();
        }
    }

    /// Drops the delayed will waiting for its time if `allowed` says no; true when it did.
    pub fn discard_pending_will_unless(&self, allowed: impl FnOnce(&Will) -> bool) -> bool {
        let mut st = self.lock();
        let Some(away) = st.away.as_deref_mut() else {
            return false;
        };
        match away.pending_will.as_deref() {
            Some(w) if !allowed(w) => {
                away.pending_will = None;
                true
            }
            _ => false,
        }
    }

    /// For the attached connection: what waits in it and what is in flight.
    /// Stores only a change, so an idle turn writes nothing shared.
    pub fn report_depth(&self, queued: usize, inflight: usize) {
        let queued = u32::try_from(queued).unwrap_or(u32::MAX);
        let inflight = u32::try_from(inflight).unwrap_or(u32::MAX);
        if self.queued_in_connection.load(Ordering::Relaxed) != queued {
            self.queued_in_connection.store(queued, Ordering::Relaxed);
        }
        if self.inflight.load(Ordering::Relaxed) != inflight {
            self.inflight.store(inflight, Ordering::Relaxed);
        }
    }

    /// The messages waiting in the session now (scrape time only: takes its lock).
    pub fn depth(&self) -> Depth {
        let st = self.lock();
        let mailbox = st.attached.as_ref().map_or(0, |a| a.mailbox.len());
        let offline = st.away.as_deref().map_or(0, |a| a.offline.len());
        let online = st.attached.is_some();
        drop(st);
        let (connection, inflight) = if online {
            (
                self.queued_in_connection.load(Ordering::Relaxed) as usize,
                self.inflight.load(Ordering::Relaxed) as usize,
            )
        } else {
            (0, 0)
        };
        Depth {
            queued: mailbox + offline + connection,
            inflight,
        }
    }

    /// Asks the attached connection, if any, to end.
    pub fn kick(&self, why: Kick) {
        let mut st = self.lock();
        if let Some(a) = &mut st.attached {
            a.kick = why;
            drop(st);
            self.wake.wake();
        }
    }

    /// Wakes the attached connection, if any, without giving it a reason:
    /// it looks at what changed (the broker's shutdown flag).
    pub fn wake_attached(&self) {
        if self.lock().attached.is_some() {
            self.wake.wake();
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
        if let Some(r) = st.retained.as_deref_mut() {
            r.forget(raw);
        }
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
        self.lock().retained.get_or_insert_with(Box::default).start(
            cursor,
            granted,
            subscription_id,
        );
    }

    /// Whether retained messages are owed to a subscription.
    pub fn has_retained(&self) -> bool {
        self.lock()
            .retained
            .as_deref()
            .is_some_and(|r| !r.is_empty())
    }

    /// Moves the next retained messages owed into `into`, in order: at most
    /// `window` at QoS 1/2 (the room in the client's inflight window) and at
    /// most `batch` in all.
    /// `epoch` is the router's, read before the call (it tags the deliveries).
    pub fn next_retained(
        &self,
        store: &Retained,
        limits: (usize, usize, u64),
        into: &mut Vec<Delivery>,
    ) -> RetainedStep {
        let mut st = self.lock();
        let Some(r) = st.retained.as_deref_mut() else {
            return RetainedStep::Done;
        };
        let step = r.next(store, limits, into);
        if r.is_empty() {
            st.retained = None;
        }
        step
    }

    /// Messages queued while offline, to send after CONNACK.
    pub fn take_offline(&self) -> VecDeque<Delivery> {
        let mut st = self.lock();
        let Some(away) = st.away.as_deref_mut() else {
            return VecDeque::new();
        };
        away.offline_overflowed = false;
        let offline = std::mem::take(&mut away.offline);
        // After CONNACK: the rest was taken or cleared at the resume already.
        st.settle();
        offline
    }

    /// Saved QoS state of the previous connection, when the versions match.
    pub fn take_inflight(&self, version: Version) -> Option<Inflight> {
        self.lock()
            .away
            .as_deref_mut()
            .and_then(|a| a.inflight.take())
            .filter(|i| i.version == version)
            .map(|i| *i)
    }

    pub fn set_expiry(&self, secs: u32) {
        self.lock().expiry = secs;
        self.persistent.store(secs > 0, Ordering::Relaxed);
    }

    /// Whether the session outlives its connection (expiry > 0): with
    /// `--data` its state is kept in the store (decision 0025).
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
        let away = st.away.as_deref();
        let will = match (
            away.and_then(|a| a.pending_will.as_ref()),
            away.and_then(|a| a.will_due_ms),
        ) {
            (Some(w), Some(due_ms)) => Some(WillRecord {
                msg: convert::message_record(&w.msg, qos_u8(w.msg.qos), &[]),
                due_ms,
                expiry: w.expiry,
                auth_name: w.auth_name.clone(),
            }),
            _ => None,
        };
        Some(SessionRecord {
            auth_name: self.auth_name.to_string(),
            expiry: st.expiry,
            protocol: st.protocol,
            subscriptions,
            disconnected_at_ms: away.and_then(|a| a.disconnected_at_ms),
            will,
        })
    }

    /// Puts the state read from the store back into a session made at start
    /// (before any connection): offline queue, QoS 2 state of its publisher
    /// side, pending will and when it is due, when its connection ended.
    pub(crate) fn restore(
        &self,
        protocol: u8,
        disconnected_at_ms: Option<u64>,
        offline: VecDeque<Delivery>,
        inflight: Option<Inflight>,
        will: Option<(Will, u64)>,
    ) {
        let mut st = self.lock();
        st.protocol = protocol;
        let away = st.away();
        away.disconnected_at_ms = disconnected_at_ms;
        away.offline = offline;
        away.inflight = inflight.map(Box::new);
        away.will_due_ms = will.as_ref().map(|(_, due)| *due);
        away.pending_will = will.map(|(w, _)| Box::new(w));
    }

    pub fn expiry(&self) -> u32 {
        self.lock().expiry
    }

    /// Whether `auth_name` owns the session: authentication names compare
    /// without case (semantics.md §1).
    pub fn owned_by(&self, auth_name: &str) -> bool {
        self.auth_name.to_lowercase() == auth_name.to_lowercase()
    }
}

/// What a session held when it ended: for the lifecycle to unsubscribe and
/// to publish.
pub struct Ended {
    /// The raw filters (with `$share/NAME/` if any) of its subscriptions.
    pub subscriptions: Vec<String>,
    /// A will whose delay had not run out.
    pub will: Option<Will>,
}

/// What an offline session held that a resuming CONNECT takes over: its
/// pending will and when it is due, when its connection ended, its expiry and
/// protocol level. Put back if that CONNECT is refused after all.
pub struct Offline {
    will: Option<Box<Will>>,
    will_due_ms: Option<u64>,
    disconnected_at_ms: Option<u64>,
    expiry: u32,
    protocol: u8,
}

impl Offline {
    /// Whether a will was pending (a resume discards it).
    pub fn has_will(&self) -> bool {
        self.will.is_some()
    }

    /// Seconds until the pending will is due (if there is one) and until the
    /// session expires (`u32::MAX`: never), counted from `now_ms`.
    pub fn left(&self, now_ms: u64) -> (Option<u32>, u32) {
        let secs =
            |at: u64| u32::try_from(at.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX);
        let since = self.disconnected_at_ms.unwrap_or(now_ms);
        let expiry_left = if self.expiry == u32::MAX {
            u32::MAX
        } else {
            secs(since.saturating_add(u64::from(self.expiry) * 1000))
        };
        let will_left = self
            .will
            .as_ref()
            .map(|_| secs(self.will_due_ms.unwrap_or(now_ms)).min(expiry_left));
        (will_left, expiry_left)
    }
}

/// What detaching a connection found.
pub struct Detached {
    /// QoS 1/2 deliveries beyond the offline queue's room, dropped.
    pub dropped: u64,
    /// The session's expiry in seconds (`u32::MAX`: never).
    pub expiry: u32,
    /// Store sequences of the dropped copies, to remove from the store.
    pub unstored: Vec<u64>,
}

/// The transitions of a session's life. `broker::lifecycle` calls them while
/// it holds the registry's lock, so that none of them interleaves with another
/// for the same client ID; each takes the session's own lock briefly.
impl Session {
    /// Asks the attached connection, if any, to leave for a takeover. True
    /// when one is attached: the caller waits for [`detached`](Self::detached).
    pub(crate) fn ask_to_leave(&self) -> bool {
        let mut st = self.lock();
        let Some(a) = &mut st.attached else {
            return false;
        };
        a.kick = Kick::TakenOver;
        drop(st);
        self.wake.wake();
        true
    }

    /// Stops the expiry timer and takes the will whose delay was running.
    pub(crate) fn stop_timer(&self) -> Option<Will> {
        let mut st = self.lock();
        let away = st.away.as_deref_mut()?;
        if let Some(t) = away.timer.take() {
            t.abort();
        }
        away.pending_will.take().map(|w| *w)
    }

    /// Stops the expiry timer of an offline session being resumed, and keeps
    /// what it held while offline (see [`Offline`]).
    pub(crate) fn suspend_offline(&self) -> Offline {
        let mut st = self.lock();
        let (expiry, protocol) = (st.expiry, st.protocol);
        let away = st.away();
        if let Some(t) = away.timer.take() {
            t.abort();
        }
        Offline {
            will: away.pending_will.take(),
            will_due_ms: away.will_due_ms,
            disconnected_at_ms: away.disconnected_at_ms,
            expiry,
            protocol,
        }
    }

    /// Puts back what [`suspend_offline`](Self::suspend_offline) kept, after
    /// the connection that resumed the session detached (refused).
    pub(crate) fn reinstate(&self, prior: Offline) {
        let mut st = self.lock();
        let away = st.away();
        away.pending_will = prior.will;
        away.will_due_ms = prior.will_due_ms;
        away.disconnected_at_ms = prior.disconnected_at_ms;
        st.expiry = prior.expiry;
        st.protocol = prior.protocol;
        self.persistent.store(prior.expiry > 0, Ordering::Relaxed);
    }

    /// Attaches connection `conn_id` with an empty mailbox.
    pub(crate) fn attach(&self, conn_id: u64) {
        let mut st = self.lock();
        st.attached = Some(Attached {
            conn_id,
            mailbox: VecDeque::new(),
            kick: Kick::None,
            recheck: false,
        });
        if let Some(away) = st.away.as_deref_mut() {
            away.disconnected_at_ms = None;
            away.will_due_ms = None;
        }
        self.online.store(true, Ordering::Relaxed);
        self.stalled.store(false, Ordering::Relaxed);
    }

    /// Detaches connection `conn_id`: `undelivered` (the connection's queue)
    /// and the mail it never took go to the offline queue (QoS 1/2 only, up
    /// to `max_queue`). None when `conn_id` is not the attached connection.
    pub(crate) fn detach(
        &self,
        conn_id: u64,
        undelivered: VecDeque<Delivery>,
        max_queue: usize,
    ) -> Option<Detached> {
        let mut st = self.lock();
        if st.attached.as_ref().map(|a| a.conn_id) != Some(conn_id) {
            return None;
        }
        let mail = st.attached.take().map(|a| a.mailbox).unwrap_or_default();
        self.online.store(false, Ordering::Relaxed);
        let mut dropped = 0u64;
        let mut unstored = Vec::new();
        for d in undelivered.into_iter().chain(mail) {
            if d.qos == Qos::AtMostOnce {
                continue;
            }
            let away = st.away();
            if away.offline.len() < max_queue {
                away.offline.push_back(d);
            } else {
                dropped += 1;
                unstored.extend(d.stored);
            }
        }
        let away = st.away();
        if dropped > 0 {
            away.offline_overflowed = true;
        }
        away.disconnected_at_ms = Some(record::now_ms());
        Some(Detached {
            dropped,
            expiry: st.expiry,
            unstored,
        })
    }

    /// Keeps an offline session's QoS state and the will whose delay runs.
    pub(crate) fn hold(&self, inflight: Option<Inflight>, will: Option<Will>) {
        let mut st = self.lock();
        let expiry = st.expiry;
        let away = st.away();
        away.inflight = inflight.map(Box::new);
        away.will_due_ms = will.as_ref().and_then(|w| {
            let delay = u64::from(w.delay.min(expiry));
            away.disconnected_at_ms
                .map(|t| t.saturating_add(delay * 1000))
        });
        away.pending_will = will.map(Box::new);
    }

    /// The task that publishes the delayed will and ends the session at expiry.
    pub(crate) fn set_timer(&self, timer: AbortHandle) {
        self.lock().away().timer = Some(timer);
    }

    /// The will whose delay ran out, if the session still holds it.
    pub(crate) fn take_pending_will(&self) -> Option<Will> {
        let mut st = self.lock();
        let away = st.away.as_deref_mut()?;
        away.will_due_ms = None;
        away.pending_will.take().map(|w| *w)
    }

    /// Ends the session: it takes no delivery any more and forgets what it
    /// held. The timer is forgotten, not stopped (the expiry task itself may
    /// be the caller).
    pub(crate) fn end(&self) -> Ended {
        end(&mut self.lock())
    }

    /// Ends the session unless a connection attached or it ended meanwhile
    /// (for expiry).
    pub(crate) fn end_if_offline(&self) -> Option<Ended> {
        let mut st = self.lock();
        if st.attached.is_some() || st.ended {
            return None;
        }
        Some(end(&mut st))
    }

    /// Wakes publishers waiting for room, and a connection waiting to take over.
    pub(crate) fn notify_detached(&self) {
        self.room.notify_waiters();
    }
}

fn end(st: &mut SessionState) -> Ended {
    st.ended = true;
    let will = st.away.take().and_then(|a| a.pending_will).map(|w| *w);
    st.retained = None;
    Ended {
        subscriptions: st.subscriptions.drain().map(|(k, _)| k).collect(),
        will,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qos1(topic: &str) -> Delivery {
        Delivery::for_test(topic, b"", Qos::AtLeastOnce)
    }

    /// A memory budget, not a timing: every idle connection's session is one
    /// `Arc<Session>` (16 B of counts more), which fits jemalloc's 256-B class
    /// up to 240 B (decision 0036; 352 B before the offline state and the
    /// retained backlog were boxed).
    #[test]
    fn a_session_stays_within_its_budget() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 240, "Session grew to {size} B");
    }

    #[test]
    fn the_offline_state_is_kept_while_offline_and_dropped_once_the_connection_took_it() {
        let s = Session::new("c", "a");
        s.attach(1);
        assert!(
            s.lock().away.is_none(),
            "a new session holds no offline state"
        );
        s.detach(1, VecDeque::from([qos1("t/1")]), 10)
            .expect("attached");
        assert_eq!(s.depth().queued, 1);
        assert!(s.lock().away.is_some());
        // Resumed: the queue goes to the new connection after CONNACK.
        s.attach(2);
        assert_eq!(s.take_offline().len(), 1);
        assert!(
            s.lock().away.is_none(),
            "an attached session whose connection took its queue holds no offline state"
        );
    }
}
