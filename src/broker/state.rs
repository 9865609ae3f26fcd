//! State shared by every connection: policy, sessions, subscriptions, retained messages.

use super::config::{BrokerConfig, IdentityMode};
use super::events::EventSink;
use super::message::{Delivery, Message};
use super::policy::PolicyHandle;
use super::retained::Retained;
use super::router::{Router, Target};
use super::session::keepalive::KeepAliveWatch;
use super::session::registry::Sessions;
use super::session::{Deliver, Session};
use super::stats::{DropReason, Stats};
use super::store::{convert, Durable, Op, Store};
use mqtt_protocol_core::mqtt::packet::Qos;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};
use tracing::warn;

/// Everything connections share. Each part has its own lock; none is held while
/// another part's lock is taken on the publish path.
pub struct Shared {
    pub config: BrokerConfig,
    pub identity: IdentityMode,
    pub policy: PolicyHandle,
    pub sessions: Sessions,
    pub router: Router,
    pub retained: Retained,
    pub stats: Stats,
    pub events: EventSink,
    /// Flips to true when the broker shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The keep-alive deadlines of resting connections (decision 0036).
    pub keepalive: Arc<KeepAliveWatch>,
    /// Bytes of CONNECTs being read before authentication (`maxPreAuthBytes`).
    pub pre_auth_budget: Arc<Semaphore>,
    /// The durable store (`--data`); None keeps everything in memory only.
    pub store: Option<Store>,
}

impl Shared {
    /// Routes an authorized message: stores it if retained, then gives every
    /// matching session one copy. Copies that find a connection's mailbox full
    /// go to `blocked` for the publisher to wait on, or are dropped without one.
    ///
    /// With a store, the retained change and every QoS 1/2 copy for a
    /// persistent session are written ahead of the deliveries (so that an
    /// acknowledgement's removal can never overtake them); the answer resolves
    /// once they are durable, and the publisher's acknowledgement waits for it.
    pub fn publish(
        &self,
        msg: Arc<Message>,
        mut blocked: Option<&mut Vec<(Arc<Session>, Delivery)>>,
    ) -> Option<Durable> {
        let mut ops = Vec::new();
        if msg.retain && self.config.retain_available {
            self.retained.set(msg.clone());
            if self.store.is_some() {
                ops.push(convert::put_retained(&msg));
            }
        }
        // Read before routing: a copy routed in a trie that a reload is about
        // to revise carries the old epoch and is checked again before it is sent.
        let epoch = self.router.epoch();
        let targets = self.router.route(&msg.topic, &msg.origin, msg.qos);
        let Some(store) = &self.store else {
            // In memory only: nothing to write ahead.
            for t in targets {
                let (session, d) = routed_copy(&msg, t, epoch);
                self.hand_over(&session, d, blocked.as_deref_mut());
            }
            return None;
        };
        let mut copies = Vec::with_capacity(targets.len());
        for t in targets {
            let (session, mut d) = routed_copy(&msg, t, epoch);
            if d.qos != Qos::AtMostOnce && session.is_persistent() {
                let seq = store.next_seq();
                ops.push(convert::put_copy(&session.client_id, seq, &d));
                d.stored = Some(seq);
            }
            copies.push((session, d));
        }
        let written = (!ops.is_empty()).then(|| store.submit(ops));
        for (session, d) in copies {
            let stored = d.stored;
            if !self.hand_over(&session, d, blocked.as_deref_mut()) {
                if let Some(seq) = stored {
                    store.submit_detached(vec![Op::DeleteMessage {
                        client_id: session.client_id.to_string(),
                        seq,
                    }]);
                }
            }
        }
        written
    }

    /// Gives `session` its copy; false when the copy was dropped.
    fn hand_over(
        &self,
        session: &Arc<Session>,
        d: Delivery,
        blocked: Option<&mut Vec<(Arc<Session>, Delivery)>>,
    ) -> bool {
        match session.deliver(d, self.config.max_queued_messages) {
            Deliver::Queued => true,
            Deliver::Dropped => {
                self.stats.drop_message(DropReason::QueueFull);
                false
            }
            Deliver::Full(d) => match blocked {
                Some(b) => {
                    b.push((session.clone(), d));
                    true
                }
                None => {
                    // A will: nobody to hold back (decision 0012).
                    self.stats.drop_message(DropReason::QueueFull);
                    warn!(
                        client_id = %session.client_id, topic = %d.msg.topic,
                        "will copy dropped: the subscriber's mailbox is full"
                    );
                    false
                }
            },
        }
    }
}

/// The copy of `msg` a routed subscription gets (not stored yet), routed
/// under `epoch`.
fn routed_copy(msg: &Arc<Message>, t: Target, epoch: u64) -> (Arc<Session>, Delivery) {
    let d = Delivery {
        msg: msg.clone(),
        qos: t.qos,
        retain: msg.retain && t.retain_as_published,
        subscription_ids: t.subscription_ids,
        stored: None,
        epoch,
    };
    (t.session, d)
}
