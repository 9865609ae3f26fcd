//! The session lifecycle (semantics.md §5 and §6): claiming a session at
//! CONNECT, releasing it when the connection ends, ending it at expiry, and
//! publishing wills when their time comes. The session's state and its
//! transitions are `session`'s; this module decides when they happen, and
//! does what follows from them (unsubscribing, publishing a will), with the
//! broker's shared state at hand.

use super::durable;
use super::message::Delivery;
use super::session::{Ended, Inflight, Offline, Session};
use super::state::Shared;
use super::stats::DropReason;
use super::will::Will;
use crate::topic;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The outcome of trying to attach a new connection to a client ID.
pub enum Claim {
    Attached {
        session: Arc<Session>,
        present: bool,
        /// A resumed session: what it held offline, to put back with
        /// [`refused`] if the CONNECT is refused after all.
        prior: Option<Offline>,
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

/// Attaches connection `conn_id` to `client_id`, or to a fresh session under
/// an assigned identifier when `client_id` is None (semantics.md §5 and §6):
/// only the same authentication name may take a session over; Clean Start
/// ends the old session and publishes its pending will at once; resuming
/// discards a pending will. A new session (not a takeover) is refused when
/// the authentication name already holds `maxSessionsPerAuthenticationName`.
pub fn claim(
    shared: &Shared,
    client_id: Option<&str>,
    auth_name: &str,
    clean_start: bool,
    conn_id: u64,
) -> Claim {
    let mut ended = None;
    let claim = {
        let mut reg = shared.sessions.lock();
        let existing = client_id.and_then(|id| reg.get(id).cloned());
        let (session, present, prior) = match existing {
            Some(s) => {
                if !s.owned_by(auth_name) {
                    return Claim::WrongOwner;
                }
                if s.ask_to_leave() {
                    return Claim::Wait(s);
                }
                if clean_start {
                    let pending = s.stop_timer();
                    let mut old = s.end();
                    old.will = pending;
                    // In the registry's lock: a later CONNECT's writes come after.
                    durable::session_ended(shared, &s.client_id);
                    ended = Some((s.client_id.clone(), old));
                    let fresh = Session::new(&s.client_id, auth_name);
                    reg.insert(fresh.clone());
                    (fresh, false, None)
                } else {
                    let prior = s.suspend_offline();
                    if prior.has_will() {
                        debug!(
                            client_id = %s.client_id,
                            "session resumed before the will delay: will discarded"
                        );
                    }
                    (s, true, Some(prior))
                }
            }
            None => {
                let limit = shared.config.max_sessions_per_authentication_name;
                if reg.sessions_of(auth_name) >= limit {
                    return Claim::TooManySessions { limit };
                }
                let id = match client_id {
                    Some(id) => id.to_string(),
                    None => match reg.assign_client_id() {
                        Some(id) => id,
                        None => return Claim::NoIdentifier,
                    },
                };
                let fresh = Session::new(&id, auth_name);
                reg.insert(fresh.clone());
                (fresh, false, None)
            }
        };
        session.attach(conn_id);
        Claim::Attached {
            session,
            present,
            prior,
        }
    };
    if let Some((id, old)) = ended {
        after_end(shared, &id, old);
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
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    conn_id: u64,
    will: Option<Will>,
    inflight: Option<Inflight>,
    undelivered: VecDeque<Delivery>,
) {
    let mut fire_now = None;
    let mut ended = None;
    {
        let mut reg = shared.sessions.lock();
        let max = shared.config.max_queued_messages;
        let Some(detached) = session.detach(conn_id, undelivered, max) else {
            // Not ours any more (cannot happen: takeover waits for us); still honour the will.
            drop(reg);
            if let Some(w) = will {
                fire_will(shared, w);
            }
            return;
        };
        if detached.dropped > 0 {
            shared
                .stats
                .drop_messages(DropReason::QueueFull, detached.dropped);
            warn!(
                client_id = %session.client_id, dropped = detached.dropped, max_queued_messages = max,
                "undelivered QoS 1/2 messages beyond the offline queue dropped at disconnect"
            );
        }
        durable::unstore(shared, &session.client_id, detached.unstored);
        let expiry = detached.expiry;
        if expiry == 0 {
            ended = Some(session.end());
            reg.remove(session);
            // In the registry's lock: a later CONNECT's writes come after.
            durable::session_ended(shared, &session.client_id);
            fire_now = will;
        } else {
            let will_delay = will.as_ref().map(|w| w.delay.min(expiry));
            let pending = match (will, will_delay) {
                (Some(w), Some(0)) => {
                    fire_now = Some(w);
                    None
                }
                (w, _) => w,
            };
            let timed = expiry != u32::MAX || pending.is_some();
            session.hold(inflight, pending);
            durable::connection_ended(shared, session);
            if timed {
                let task = tokio::spawn(expire(
                    shared.clone(),
                    session.clone(),
                    will_delay.filter(|d| *d > 0),
                    expiry,
                ));
                session.set_timer(task.abort_handle());
            }
        }
    }
    if let Some(e) = ended {
        after_end(shared, &session.client_id, e);
    }
    session.notify_detached();
    if let Some(w) = fire_now {
        fire_will(shared, w);
    }
}

/// A CONNECT refused after its session was claimed (the store could not be
/// written): connection `conn_id` detaches and the session is left as if that
/// CONNECT never came. A resumed session goes back offline with its queue
/// (and what arrived meanwhile), its pending will and its expiry running as
/// before; a session made for this CONNECT ends without a trace. No will of
/// this connection is published: it was never accepted.
pub fn refused(shared: &Arc<Shared>, session: &Arc<Session>, conn_id: u64, prior: Option<Offline>) {
    let mut ended = None;
    {
        let mut reg = shared.sessions.lock();
        let max = shared.config.max_queued_messages;
        let Some(detached) = session.detach(conn_id, VecDeque::new(), max) else {
            return;
        };
        durable::unstore(shared, &session.client_id, detached.unstored);
        match prior {
            Some(prior) => {
                let (will_left, expiry_left) = prior.left(super::store::record::now_ms());
                session.reinstate(prior);
                restart_timer(shared, session, will_left, expiry_left);
            }
            None => {
                ended = Some(session.end());
                reg.remove(session);
                durable::session_ended(shared, &session.client_id);
            }
        }
    }
    if let Some(e) = ended {
        after_end(shared, &session.client_id, e);
    }
    session.notify_detached();
}

/// Starts the timer of a session restored from the store: its will after
/// `will_left` seconds (if it holds one), its end after `expiry_left`.
pub(crate) fn restart_timer(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    will_left: Option<u32>,
    expiry_left: u32,
) {
    if expiry_left != u32::MAX || will_left.is_some() {
        let task = tokio::spawn(expire(
            shared.clone(),
            session.clone(),
            will_left,
            expiry_left,
        ));
        session.set_timer(task.abort_handle());
    }
}

/// Publishes a delayed will when its time comes, then ends the session at expiry.
async fn expire(shared: Arc<Shared>, session: Arc<Session>, will_delay: Option<u32>, expiry: u32) {
    let mut waited = 0u32;
    if let Some(d) = will_delay {
        tokio::time::sleep(Duration::from_secs(u64::from(d))).await;
        waited = d;
        if let Some(w) = session.take_pending_will() {
            fire_will(&shared, w);
            durable::session_changed(&shared, &session);
        }
    }
    if expiry == u32::MAX {
        return;
    }
    tokio::time::sleep(Duration::from_secs(u64::from(expiry - waited))).await;
    let ended = {
        let mut reg = shared.sessions.lock();
        let Some(ended) = session.end_if_offline() else {
            return;
        };
        reg.remove(&session);
        durable::session_ended(&shared, &session.client_id);
        ended
    };
    debug!(client_id = %session.client_id, "session expired");
    after_end(&shared, &session.client_id, ended);
}

/// What follows the end of a session: its subscriptions leave the router and
/// a will whose delay still ran is published now. (Its stored state was
/// removed in the registry's lock, where it ended.)
fn after_end(shared: &Shared, client_id: &str, ended: Ended) {
    for raw in ended.subscriptions {
        if let Ok(sub) = topic::parse_subscription(&raw) {
            shared.router.unsubscribe(client_id, &sub);
        }
    }
    if let Some(w) = ended.will {
        fire_will(shared, w);
    }
}

/// Publishes `will` as if its client had published it, after authorizing it
/// again against the policy in force now. A will no longer allowed is dropped.
pub fn fire_will(shared: &Shared, will: Will) {
    let policy = shared.policy.current();
    let topic = will.msg.topic.as_str();
    // The policy also refuses disabled clients and `$` topics.
    let denied = match policy.lookup_client(&will.auth_name) {
        None => Some("the client is no longer in the policy".to_string()),
        Some(c) => {
            let v = policy.may_publish(c, topic);
            (!v.allowed).then_some(v.reason)
        }
    };
    if let Some(reason) = denied {
        shared.stats.wills_dropped.inc();
        warn!(
            client = %will.auth_name, client_id = %will.msg.origin, action = "will",
            topic, reason = %reason, "will dropped at fire time: no longer authorized"
        );
        return;
    }
    shared.stats.wills_published.inc();
    info!(client = %will.auth_name, client_id = %will.msg.origin, topic, "publishing will");
    let mut msg = will.msg;
    if let Some(secs) = will.expiry {
        msg.expires_at = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
    }
    // Nobody to hold back: a will that finds a full mailbox is dropped. Nobody
    // waits for the store either: the will's copies are written ahead anyway.
    let _written = shared.publish(Arc::new(msg), None);
}
