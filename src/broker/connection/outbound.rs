//! The outbound queue at work: deliveries waiting for the client's inflight
//! window go out as it opens, with the retained messages owed to the session
//! in their turn. The bookkeeping is `queue::OutboundQueue`.

use super::queue::{window, window_room, Admit, Next};
use super::Conn;
use crate::broker::message::Delivery;
use crate::broker::stats::DropReason;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// After CONNACK: the session's offline messages and owed retained ones go out.
    pub(super) fn after_connack(&mut self) {
        if let Some(c) = &self.client {
            self.traffic
                .outbound
                .resume(c.session.take_offline(), c.session.has_retained());
        }
        self.drain_pending();
    }

    /// Queues a delivery behind the inflight window (bounded).
    pub(super) fn enqueue(&mut self, d: Delivery) {
        let max = self.shared.config.max_queued_messages;
        match self.traffic.outbound.admit(d, max) {
            Admit::SendNow(d) => self.deliver(d),
            Admit::Queued => self.drain_pending(),
            Admit::Full => self.shared.stats.drop_message(DropReason::QueueFull),
        }
    }

    /// Sends queued deliveries while the client's inflight window has room,
    /// and owed retained messages in their turn.
    pub(super) fn drain_pending(&mut self) {
        while self.end.is_none() {
            let window_open = self.window_open();
            match self.traffic.outbound.next(window_open) {
                Next::Retained => {
                    if !self.send_retained_batch() {
                        break;
                    }
                }
                Next::Send(d) => self.deliver(d),
                Next::Wait => break,
            }
        }
    }

    /// QoS 1/2 PUBLISHes the inflight window has room for now. `inflight_out`
    /// also counts what a resumed session restored, which the codec's own
    /// window does not.
    pub(super) fn window_room(&self) -> usize {
        window_room(
            self.shared.config.receive_maximum,
            self.client_receive_maximum,
            self.inflight_out,
        )
    }

    /// The inflight window's size: QoS 1/2 PUBLISHes unacknowledged at most.
    pub(super) fn window(&self) -> u16 {
        window(
            self.shared.config.receive_maximum,
            self.client_receive_maximum,
        )
    }

    /// Room for one more QoS 1/2 PUBLISH.
    pub(super) fn window_open(&self) -> bool {
        self.window_room() > 0
    }
}
