//! The outbound queue: deliveries waiting for the client's inflight window,
//! in order, with the retained messages owed to the session in their turn.

use super::queue::RetainedDue;
use super::Conn;
use crate::broker::message::Delivery;
use crate::broker::stats::DropReason;
use mqtt_protocol_core::mqtt::packet::Qos;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn after_connack(&mut self) {
        if let Some(c) = &self.client {
            for d in c.session.take_offline() {
                self.pending.push_back(d);
            }
            // Retained messages still owed from before go first, as they would have.
            if c.session.has_retained() {
                self.retained_due = RetainedDue::Turn;
                self.retained_ahead = 0;
            }
        }
        self.drain_pending();
    }

    /// Queues a delivery behind the inflight window (bounded).
    pub(super) fn enqueue(&mut self, d: Delivery) {
        if d.qos == Qos::AtMostOnce
            && self.pending.is_empty()
            && self.retained_due == RetainedDue::None
        {
            self.deliver(d);
            return;
        }
        if self.pending.len() >= self.shared.config.max_queued_messages {
            self.shared.stats.drop_message(DropReason::QueueFull);
            self.unstore(d.stored);
            return;
        }
        self.pending.push_back(d);
        self.drain_pending();
    }

    /// Sends queued deliveries while the client's inflight window has room,
    /// and owed retained messages in their turn.
    pub(super) fn drain_pending(&mut self) {
        while self.end.is_none() {
            if self.retained_ahead == 0 && self.retained_due != RetainedDue::None {
                if self.send_retained_batch() {
                    continue;
                }
                break;
            }
            let Some(front) = self.pending.front() else {
                break;
            };
            if front.qos != Qos::AtMostOnce && !self.window_open() {
                break;
            }
            if let Some(d) = self.pending.pop_front() {
                self.retained_ahead = self.retained_ahead.saturating_sub(1);
                self.deliver(d);
            }
        }
    }

    /// QoS 1/2 PUBLISHes the inflight window has room for now: fewer
    /// unacknowledged than both our inflight window and the client's Receive
    /// Maximum. `inflight_out` also counts what a resumed session restored,
    /// which the codec's own window does not.
    pub(super) fn window_room(&self) -> usize {
        let ours = self.shared.config.receive_maximum.max(1);
        let window = usize::from(ours.min(self.client_receive_maximum));
        window.saturating_sub(self.inflight_out)
    }

    /// Room for one more QoS 1/2 PUBLISH.
    pub(super) fn window_open(&self) -> bool {
        self.window_room() > 0
    }
}
