//! Sending a subscription's retained messages as flow control allows (MQTT 5
//! §3.3.1.3, §3.8.4): every matching message is sent, however many there are,
//! paced by the client's Receive Maximum and our inflight window. They are read
//! from the store in batches (the session's retained backlog), never copied
//! whole into the bounded delivery queue, where the excess would be lost.

use super::queue::RetainedDue;
use super::Conn;
use crate::broker::message::Delivery;
use crate::broker::session::RetainedStep;
use tokio::io::{AsyncRead, AsyncWrite};

/// Messages taken from the store at a time.
const BATCH: usize = 64;
/// Batches per turn of the connection's loop: it then writes them out and
/// reads what the client sent before sending more.
const BATCHES_PER_TURN: usize = 16;
/// Output per turn, in bytes, past which the rest waits for the next turn.
const OUTPUT_PER_TURN: usize = 64 * 1024;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// After a SUBSCRIBE owed retained messages to the session, or a connection
    /// attached to a session that is owed some: they go out before what is
    /// queued from now on, after what is queued already.
    pub(super) fn retained_owed(&mut self) {
        self.traffic.outbound.retained_owed();
    }

    /// Whether the connection's loop should take another turn for retained
    /// messages without waiting for the network.
    pub(super) fn retained_turn(&self) -> bool {
        self.traffic.outbound.retained_turn()
    }

    /// Sends owed retained messages while the inflight window and this turn's
    /// output allow. True when none is owed any more.
    pub(super) fn send_retained_batch(&mut self) -> bool {
        let Some(session) = self.client.as_ref().map(|c| c.session.clone()) else {
            self.traffic.outbound.set_retained_due(RetainedDue::None);
            return true;
        };
        if self.traffic.outbound.retained_due() == RetainedDue::Window && self.window_room() == 0 {
            // The next one is QoS 1/2 (they are sent in order): nothing can go yet.
            return false;
        }
        let mut batch: Vec<Delivery> = Vec::with_capacity(BATCH);
        for _ in 0..BATCHES_PER_TURN {
            let limits = (self.window_room(), BATCH, self.shared.router.epoch());
            let step = session.next_retained(&self.shared.retained, limits, &mut batch);
            for d in batch.drain(..) {
                self.deliver(d);
            }
            self.traffic.outbound.set_retained_due(match step {
                RetainedStep::Done => RetainedDue::None,
                RetainedStep::Window => RetainedDue::Window,
                RetainedStep::More => RetainedDue::Turn,
            });
            if step != RetainedStep::More
                || self.traffic.out.len() >= OUTPUT_PER_TURN
                || self.end.is_some()
            {
                break;
            }
        }
        self.traffic.outbound.retained_due() == RetainedDue::None
    }
}
