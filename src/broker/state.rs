//! State shared by every connection: policy, sessions, subscriptions, retained messages.

use super::config::{BrokerConfig, IdentityMode};
use super::events::EventSink;
use super::message::{Delivery, Message};
use super::policy::PolicyHandle;
use super::retained::Retained;
use super::router::Router;
use super::session::registry::Sessions;
use super::session::{Deliver, Session};
use super::stats::{DropReason, Stats};
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
    /// Bytes of CONNECTs being read before authentication (`maxPreAuthBytes`).
    pub pre_auth_budget: Arc<Semaphore>,
}

impl Shared {
    /// Routes an authorized message: stores it if retained, then gives every
    /// matching session one copy. Copies that find a connection's mailbox full
    /// go to `blocked` for the publisher to wait on, or are dropped without one.
    pub fn publish(
        &self,
        msg: Arc<Message>,
        mut blocked: Option<&mut Vec<(Arc<Session>, Delivery)>>,
    ) {
        if msg.retain && self.config.retain_available {
            self.retained.set(msg.clone());
        }
        for t in self.router.route(&msg.topic, &msg.origin, msg.qos) {
            let d = Delivery {
                msg: msg.clone(),
                qos: t.qos,
                retain: msg.retain && t.retain_as_published,
                subscription_ids: t.subscription_ids,
            };
            match t.session.deliver(d, self.config.max_queued_messages) {
                Deliver::Queued => {}
                Deliver::Dropped => self.stats.drop_message(DropReason::QueueFull),
                Deliver::Full(d) => match blocked.as_deref_mut() {
                    Some(b) => b.push((t.session, d)),
                    None => {
                        // A will: nobody to hold back (decision 0012).
                        self.stats.drop_message(DropReason::QueueFull);
                        warn!(
                            client_id = %t.session.client_id, topic = %msg.topic,
                            "will copy dropped: the subscriber's mailbox is full"
                        );
                    }
                },
            }
        }
    }
}
