//! A session's retained messages not sent yet (MQTT 5 §3.3.1.3, §3.8.4): per
//! subscription, a cursor into the retained store, read as the client's flow
//! control allows, so that however many match, none is lost to the bounded
//! queues.

use crate::broker::message::{min_qos, Delivery};
use crate::broker::retained::{Advance, Retained, RetainedCursor};
use mqtt_protocol_core::mqtt::packet::Qos;
use std::collections::VecDeque;

/// One subscription's retained messages still owed.
struct Owed {
    cursor: RetainedCursor,
    granted: Qos,
    subscription_id: Option<u32>,
}

/// What [`RetainedBacklog::next`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainedStep {
    /// No retained message is left to send.
    Done,
    /// The next one waits for room in the inflight window.
    Window,
    /// The batch is full, or the store was scanned long enough: call again.
    More,
}

/// Retained messages owed to subscriptions, oldest SUBSCRIBE first (at most
/// one entry per filter, so bounded by `maxSubscriptionsPerSession`).
#[derive(Default)]
pub struct RetainedBacklog {
    owed: VecDeque<Owed>,
}

impl RetainedBacklog {
    /// Owes the subscription to `cursor`'s filter its retained messages, after
    /// those owed to earlier SUBSCRIBEs. A new SUBSCRIBE to the same filter
    /// starts its messages over (MQTT 5 §3.8.4: they are sent again).
    pub fn start(&mut self, cursor: RetainedCursor, granted: Qos, subscription_id: Option<u32>) {
        self.forget(cursor.filter());
        self.owed.push_back(Owed {
            cursor,
            granted,
            subscription_id,
        });
    }

    /// Forgets what is owed to the subscription to `filter` (raw, as subscribed).
    pub fn forget(&mut self, filter: &str) {
        self.owed.retain(|o| o.cursor.filter() != filter);
    }

    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// Moves the next retained messages owed into `into`, in order: at most
    /// `window` at QoS 1/2 (the room in the client's inflight window) and at
    /// most `batch` in all.
    /// `epoch` is the router's, read before the call (it tags the deliveries).
    pub fn next(
        &mut self,
        store: &Retained,
        (window, batch, epoch): (usize, usize, u64),
        into: &mut Vec<Delivery>,
    ) -> RetainedStep {
        let mut window_left = window;
        while let Some(o) = self.owed.front_mut() {
            let mut window_full = false;
            let granted = o.granted;
            let sub_id = o.subscription_id;
            let step = store.advance(&mut o.cursor, |msg| {
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
                    epoch,
                });
                true
            });
            match step {
                Advance::Done => {
                    self.owed.pop_front();
                }
                Advance::Declined if window_full => return RetainedStep::Window,
                Advance::Declined | Advance::More => return RetainedStep::More,
            }
        }
        RetainedStep::Done
    }
}
