//! Sessions: what outlives a network connection (subscriptions, queued messages,
//! a delayed will) and the rules for claiming one at CONNECT.

use super::message::Message;
use super::router::SubOptions;
use super::state::Shared;
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
use tracing::debug;

/// One copy of a message for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    pub qos: Qos,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
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

/// QoS 1/2 state saved from a connection of a persistent session.
pub struct Inflight {
    pub version: Version,
    pub packets: Vec<GenericStorePacket<u16>>,
    pub qos2_handled: HashSet<u16>,
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
    ended: bool,
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
        if d.qos == Qos::AtMostOnce || st.offline.len() >= max_queue {
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
        self.stalled.store(true, Ordering::Relaxed);
        debug!(client_id = %self.client_id, "mailbox stayed full: connection marked stalled");
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

    pub fn remove_subscription(&self, raw: &str) -> bool {
        self.lock().subscriptions.remove(raw).is_some()
    }

    /// Messages queued while offline, to send after CONNACK.
    pub fn take_offline(&self) -> VecDeque<Delivery> {
        std::mem::take(&mut self.lock().offline)
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
}

/// Every session, by client ID. Locked only at CONNECT and when a connection ends.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every session now.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    pub fn contains(&self, client_id: &str) -> bool {
        self.lock().contains_key(client_id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attaches connection `conn_id` to `client_id` (semantics.md §5 and §6):
    /// only the same authentication name may take a session over; Clean Start
    /// ends the old session and publishes its pending will at once; resuming
    /// discards a pending will.
    pub fn claim(
        &self,
        shared: &Shared,
        client_id: &str,
        auth_name: &str,
        clean_start: bool,
        conn_id: u64,
    ) -> Claim {
        let mut fire_now = None;
        let mut removed_subs = Vec::new();
        let claim = {
            let mut map = self.lock();
            let existing = map.get(client_id).cloned();
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
                        st.ended = true;
                        removed_subs = st.subscriptions.drain().map(|(k, _)| k).collect();
                        drop(st);
                        let fresh = Session::new(client_id, auth_name);
                        map.insert(client_id.to_string(), fresh.clone());
                        (fresh, false)
                    } else {
                        if pending.is_some() {
                            debug!(
                                client_id,
                                "session resumed before the will delay: will discarded"
                            );
                        }
                        drop(st);
                        (s, true)
                    }
                }
                None => {
                    let fresh = Session::new(client_id, auth_name);
                    map.insert(client_id.to_string(), fresh.clone());
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
                session.online.store(true, Ordering::Relaxed);
                session.stalled.store(false, Ordering::Relaxed);
            }
            Claim::Attached { session, present }
        };
        unsubscribe_all(shared, client_id, removed_subs);
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
            for d in undelivered.into_iter().chain(mail) {
                if d.qos != Qos::AtMostOnce && st.offline.len() < max {
                    st.offline.push_back(d);
                }
            }
            let expiry = st.expiry;
            if expiry == 0 {
                st.ended = true;
                removed_subs = st.subscriptions.drain().map(|(k, _)| k).collect();
                st.offline.clear();
                if map
                    .get(&session.client_id)
                    .is_some_and(|s| Arc::ptr_eq(s, session))
                {
                    map.remove(&session.client_id);
                }
                fire_now = will;
            } else {
                st.inflight = inflight.map(Box::new);
                let will_delay = will.as_ref().map(|w| w.delay.min(expiry));
                match (will, will_delay) {
                    (Some(w), Some(0)) => fire_now = Some(w),
                    (Some(w), _) => st.pending_will = Some(Box::new(w)),
                    (None, _) => {}
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
        let w = session.lock().pending_will.take().map(|w| *w);
        if let Some(w) = w {
            will::fire(&shared, w);
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
        st.timer = None;
        if map
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, &session))
        {
            map.remove(&session.client_id);
        }
        debug!(client_id = %session.client_id, "session expired");
        let pending = st.pending_will.take().map(|w| *w);
        (
            st.subscriptions.drain().map(|(k, _)| k).collect::<Vec<_>>(),
            pending,
        )
    };
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
