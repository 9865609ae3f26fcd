//! Every session, by client ID, and how many each authentication name holds.
//! Its lock is the one the session lifecycle (`broker::lifecycle`) holds while
//! it attaches, detaches or ends a session.

use super::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Every session, by client ID. Locked only at CONNECT and when a connection ends.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<Registry>,
}

/// The sessions and how many each authentication name holds, kept together
/// under one lock so that the count is never out of step with the map.
#[derive(Default)]
pub struct Registry {
    /// Keyed by the session's own client ID (shared, not copied).
    by_id: HashMap<Arc<str>, Arc<Session>>,
    /// Sessions (online and offline) per lower-cased authentication name.
    per_auth: HashMap<String, usize>,
}

impl Registry {
    pub fn get(&self, client_id: &str) -> Option<&Arc<Session>> {
        self.by_id.get(client_id)
    }

    /// Sessions, online and offline, held by `auth_name`.
    pub fn sessions_of(&self, auth_name: &str) -> usize {
        self.per_auth
            .get(&auth_name.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Adds `session` under its client ID, replacing the one there (of the same
    /// authentication name: only that one may take a session over).
    pub fn insert(&mut self, session: Arc<Session>) {
        let auth = session.auth_name.to_lowercase();
        if let Some(old) = self.by_id.insert(session.client_id.clone(), session) {
            self.forget_owner(&old.auth_name);
        }
        *self.per_auth.entry(auth).or_insert(0) += 1;
    }

    /// Removes `session` if it is still the one registered under its client ID.
    pub fn remove(&mut self, session: &Arc<Session>) {
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

    /// A client identifier for a client that sent none, from the system's
    /// random source (see [`assign_client_id`]).
    pub fn assign_client_id(&self) -> Option<String> {
        assign_client_id(self, system_random)
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
    /// The registry, for the session lifecycle: attaching, detaching and
    /// ending a session happen under this lock, so that none of them
    /// interleaves with another for the same client ID.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while the lock was held leaves the map consistent (every
        // change is a single insert or remove): keep serving.
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

    /// Sessions, online and offline, held by `auth_name`.
    pub fn count_for(&self, auth_name: &str) -> usize {
        self.lock().sessions_of(auth_name)
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
