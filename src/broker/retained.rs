//! Retained messages: the last retained message of each topic, kept in topic
//! order so that a subscription's retained set is read in batches through a
//! [`RetainedCursor`] as its client's flow control allows, never copied whole
//! into a bounded queue (where the excess would be lost).

use super::message::Message;
use crate::topic;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Topics one [`Retained::advance`] call looks at before it yields: a sparse
/// filter over a large store must not hold the lock (or its connection) long.
const SCAN_PER_CALL: usize = 4096;

/// The retained message store.
#[derive(Default)]
pub struct Retained {
    store: RwLock<Store>,
}

#[derive(Default)]
struct Store {
    by_topic: BTreeMap<String, Entry>,
    /// Stamp of the last change.
    stamp: u64,
}

struct Entry {
    /// When it was stored (see [`Store::stamp`]).
    stamp: u64,
    msg: Arc<Message>,
}

/// Where a subscription stands in the retained messages matching its filter.
/// It holds no message: what it has not reached yet stays in the store.
#[derive(Debug, Clone)]
pub struct RetainedCursor {
    /// The filter proper (never a shared subscription: they get no retained messages).
    filter: String,
    /// Only messages stored by the time of the SUBSCRIBE: a later one reached the
    /// subscriber when it was published, and sending it again would repeat it.
    upto: u64,
    /// The last topic looked at; the next batch starts after it.
    after: Option<String>,
}

impl RetainedCursor {
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

/// What one [`Retained::advance`] call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Every matching message has been visited.
    Done,
    /// `visit` declined a message: it comes first next time.
    Declined,
    /// The call looked at its share of topics; call again.
    More,
}

impl Retained {
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `msg` as the retained message of its topic; an empty payload deletes it.
    pub fn set(&self, msg: Arc<Message>) {
        let mut st = self.store.write().unwrap_or_else(|e| e.into_inner());
        st.stamp += 1;
        if msg.payload.is_empty() {
            st.by_topic.remove(&msg.topic);
        } else {
            let stamp = st.stamp;
            st.by_topic.insert(msg.topic.clone(), Entry { stamp, msg });
        }
    }

    /// A cursor over the messages retained now that match `filter`.
    pub fn cursor(&self, filter: &str) -> RetainedCursor {
        RetainedCursor {
            filter: filter.to_string(),
            upto: self.read().stamp,
            after: None,
        }
    }

    /// Offers the cursor's next unexpired messages, in topic order, to `visit`,
    /// which returns false to decline one (it is offered again next time).
    /// Expired messages met on the way are removed from the store.
    pub fn advance(
        &self,
        cursor: &mut RetainedCursor,
        mut visit: impl FnMut(&Arc<Message>) -> bool,
    ) -> Advance {
        let prefix = topic::trie::literal_prefix(&cursor.filter);
        let mut expired = Vec::new();
        let outcome = {
            let st = self.read();
            let start = match &cursor.after {
                Some(a) if a.as_str() >= prefix => Bound::Excluded(a.as_str()),
                _ => Bound::Included(prefix),
            };
            let mut last: Option<&str> = None;
            let mut outcome = Advance::Done;
            for (looked, (t, e)) in st
                .by_topic
                .range::<str, _>((start, Bound::Unbounded))
                .enumerate()
            {
                if !t.starts_with(prefix) {
                    break;
                }
                if looked == SCAN_PER_CALL {
                    outcome = Advance::More;
                    break;
                }
                if e.stamp <= cursor.upto && topic::matches(&cursor.filter, t) {
                    if e.msg.expired() {
                        expired.push(t.clone());
                    } else if !visit(&e.msg) {
                        outcome = Advance::Declined;
                        break;
                    }
                }
                last = Some(t);
            }
            if let Some(t) = last {
                cursor.after = Some(t.to_string());
            }
            outcome
        };
        if !expired.is_empty() {
            let mut st = self.store.write().unwrap_or_else(|e| e.into_inner());
            for t in expired {
                if st.by_topic.get(&t).is_some_and(|e| e.msg.expired()) {
                    st.by_topic.remove(&t);
                }
            }
        }
        outcome
    }

    pub fn len(&self) -> usize {
        self.read().by_topic.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::Qos;

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Arc::from(payload.as_bytes()),
            qos: Qos::AtLeastOnce,
            retain: true,
            props: Vec::new(),
            expires_at: None,
            origin: Arc::from("c"),
        })
    }

    fn drain(r: &Retained, c: &mut RetainedCursor, batch: usize) -> Vec<String> {
        let mut all = Vec::new();
        for _ in 0..100_000 {
            let mut n = 0;
            let step = r.advance(c, |m| {
                if n == batch {
                    return false;
                }
                n += 1;
                all.push(m.topic.clone());
                true
            });
            if step == Advance::Done {
                return all;
            }
        }
        panic!("cursor never finished");
    }

    #[test]
    fn a_cursor_visits_every_match_once_in_batches_of_any_size() {
        let r = Retained::default();
        for i in 0..5000 {
            r.set(msg(&format!("s/{i:05}"), "x"));
            r.set(msg(&format!("t/{i:05}"), "x"));
        }
        r.set(msg("s", "parent"));
        for batch in [1, 7, 10_000] {
            let mut c = r.cursor("s/#");
            let got = drain(&r, &mut c, batch);
            assert_eq!(got.len(), 5001, "batch {batch}");
            assert_eq!(got[0], "s");
            assert!(got.windows(2).all(|w| w[0] < w[1]));
        }
        let mut c = r.cursor("+/00042");
        assert_eq!(drain(&r, &mut c, 3), vec!["s/00042", "t/00042"]);
    }

    #[test]
    fn expired_messages_are_skipped_and_removed_from_the_store() {
        let r = Retained::default();
        let mut expired = (*msg("a/1", "x")).clone();
        // Its Message Expiry Interval ends now.
        expired.expires_at = Some(tokio::time::Instant::now());
        r.set(Arc::new(expired));
        r.set(msg("a/2", "x"));
        let mut c = r.cursor("a/#");
        assert_eq!(drain(&r, &mut c, 10), vec!["a/2"]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn messages_retained_after_the_cursor_opened_are_not_repeated() {
        let r = Retained::default();
        r.set(msg("a/1", "old"));
        r.set(msg("a/2", "old"));
        let mut c = r.cursor("a/+");
        r.set(msg("a/2", "new"));
        r.set(msg("a/3", "new"));
        r.set(msg("a/1", ""));
        // a/1 deleted, a/2 and a/3 newer than the SUBSCRIBE: nothing left to send.
        assert!(drain(&r, &mut c, 10).is_empty());
    }
}
