//! The keep-alive deadlines of resting connections, kept by one watcher task
//! instead of a timer in every connection (decision 0036). A resting
//! connection waits on its socket and its session's wake-up only; at its
//! deadline the watcher wakes the session, and the connection, busy again,
//! finds the deadline passed. Deadlines are exact (tokio's timer, as a
//! connection's own would be), not rounded to a tick.

use super::Session;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Deadlines by (when, connection id): unique keys, so that removing one
/// never removes another connection's.
#[derive(Default)]
pub struct KeepAliveWatch {
    due: Mutex<BTreeMap<(Instant, u64), Arc<Session>>>,
    /// Wakes the watcher for a deadline earlier than the one it sleeps until.
    earlier: Notify,
    started: AtomicBool,
}

impl KeepAliveWatch {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(Instant, u64), Arc<Session>>> {
        // Every change is one insert or remove: the map stays consistent.
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes `session` at `deadline` unless [`unwatch`](Self::unwatch)ed
    /// first. The first call starts the watcher (it needs a runtime, which a
    /// connection has), which ends at `shutdown`.
    pub fn watch(
        self: &Arc<Self>,
        deadline: Instant,
        conn_id: u64,
        session: Arc<Session>,
        shutdown: &watch::Receiver<bool>,
    ) {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().run(shutdown.clone()));
        }
        let mut due = self.lock();
        let first = due
            .first_key_value()
            .is_none_or(|(k, _)| (deadline, conn_id) < *k);
        due.insert((deadline, conn_id), session);
        drop(due);
        if first {
            self.earlier.notify_one();
        }
    }

    /// Forgets the deadline (the connection woke before it); nothing if it
    /// already fired.
    pub fn unwatch(&self, deadline: Instant, conn_id: u64) {
        self.lock().remove(&(deadline, conn_id));
    }

    /// How many deadlines are watched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes each session whose deadline passed, then sleeps until the next
    /// one or an earlier one arrives.
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            // A broker already stopped when the watcher started sends no change.
            if *shutdown.borrow_and_update() {
                return;
            }
            let now = Instant::now();
            let (passed, next) = {
                let mut due = self.lock();
                let later = match due.keys().find(|(t, _)| *t > now).copied() {
                    Some(k) => due.split_off(&k),
                    None => BTreeMap::new(),
                };
                let passed = std::mem::replace(&mut *due, later);
                (passed, due.first_key_value().map(|((t, _), _)| *t))
            };
            // Outside the lock: waking takes the session's.
            for session in passed.into_values() {
                session.wake_attached();
            }
            let earlier = self.earlier.notified();
            tokio::select! {
                () = earlier => {}
                () = tokio::time::sleep_until(next.unwrap_or(now + std::time::Duration::from_secs(3600))) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The paused clock moves only when every task waits: a wake-up shows as
    /// the session's `woken` resolving, without real time passing.
    #[tokio::test(start_paused = true)]
    async fn a_session_is_woken_at_its_deadline_and_not_before() {
        let (_tx, rx) = watch::channel(false);
        let w = Arc::new(KeepAliveWatch::default());
        let s = Session::new("c", "a");
        s.attach(1);
        let start = Instant::now();
        w.watch(start + Duration::from_secs(90), 1, s.clone(), &rx);
        tokio::time::timeout(Duration::from_secs(89), s.woken())
            .await
            .expect_err("not woken before its deadline");
        tokio::time::timeout(Duration::from_secs(2), s.woken())
            .await
            .expect("woken at its deadline");
        assert!(w.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unwatched_deadline_never_wakes_and_an_earlier_one_comes_first() {
        let (_tx, rx) = watch::channel(false);
        let w = Arc::new(KeepAliveWatch::default());
        let talked = Session::new("talked", "a");
        talked.attach(1);
        let silent = Session::new("silent", "a");
        silent.attach(2);
        let start = Instant::now();
        w.watch(start + Duration::from_secs(60), 1, talked.clone(), &rx);
        // Watched later with an earlier deadline: the watcher sleeping for
        // the first must wake for this one.
        w.watch(start + Duration::from_secs(30), 2, silent.clone(), &rx);
        // The client talked in time: its connection woke and unwatched.
        w.unwatch(start + Duration::from_secs(60), 1);
        tokio::time::timeout(Duration::from_secs(31), silent.woken())
            .await
            .expect("the earlier deadline fired");
        tokio::time::timeout(Duration::from_secs(600), talked.woken())
            .await
            .expect_err("an unwatched deadline never fires");
        assert!(w.is_empty());
    }
}
