//! The outbound queue's bookkeeping, free of I/O: QoS 1/2 deliveries waiting
//! for the client's inflight window, in order, and where the retained
//! messages owed to the session go among them (after what was queued before
//! the SUBSCRIBE, before what is queued after it).

use crate::broker::message::Delivery;
use mqtt_protocol_core::mqtt::packet::Qos;
use std::collections::VecDeque;

/// Whether retained messages are owed to the connection's session, and what
/// their sending waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainedDue {
    /// None owed.
    #[default]
    None,
    /// Room in the inflight window (a PUBACK / PUBCOMP).
    Window,
    /// The next turn of the connection's loop.
    Turn,
}

/// What [`OutboundQueue::admit`] decided for a delivery.
#[derive(Debug)]
pub enum Admit {
    /// Nothing waits before it and it needs no window (QoS 0): send it now.
    SendNow(Delivery),
    /// Queued behind the window.
    Queued,
    /// The queue holds `maxQueuedMessages` already: dropped.
    Full,
}

/// What goes out next, per [`OutboundQueue::next`].
#[derive(Debug)]
pub enum Next {
    /// The owed retained messages' turn.
    Retained,
    /// This delivery.
    Send(Delivery),
    /// Nothing can go now: the queue is empty, or its front waits for the window.
    Wait,
}

/// Deliveries behind the inflight window, and the owed retained messages' place.
#[derive(Debug, Default)]
pub struct OutboundQueue {
    pending: VecDeque<Delivery>,
    retained_due: RetainedDue,
    /// Deliveries at the front of `pending` that go before the owed retained messages.
    retained_ahead: usize,
}

impl OutboundQueue {
    /// An empty queue, as a constant (the resting connection's `Traffic`).
    pub const fn new() -> Self {
        OutboundQueue {
            pending: VecDeque::new(),
            retained_due: RetainedDue::None,
            retained_ahead: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing queued and no retained messages owed.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.retained_due == RetainedDue::None
    }

    /// Room left for `max` deliveries in all.
    pub fn room(&self, max: usize) -> usize {
        max.saturating_sub(self.pending.len())
    }

    /// After CONNACK: the session's offline messages, and retained messages
    /// still owed from before, which go first, as they would have.
    pub fn resume(&mut self, offline: VecDeque<Delivery>, retained_owed: bool) {
        self.pending.extend(offline);
        if retained_owed {
            self.retained_due = RetainedDue::Turn;
            self.retained_ahead = 0;
        }
    }

    /// A SUBSCRIBE owed retained messages: they go after what is queued now.
    pub fn retained_owed(&mut self) {
        if self.retained_due == RetainedDue::None {
            self.retained_ahead = self.pending.len();
        }
        self.retained_due = RetainedDue::Turn;
    }

    pub fn retained_due(&self) -> RetainedDue {
        self.retained_due
    }

    /// What sending owed retained messages came to.
    pub fn set_retained_due(&mut self, due: RetainedDue) {
        self.retained_due = due;
    }

    /// Whether the loop should take another turn for retained messages
    /// without waiting for the network.
    pub fn retained_turn(&self) -> bool {
        self.retained_due == RetainedDue::Turn && self.retained_ahead == 0
    }

    /// Takes `d` in, bounded by `max`: QoS 0 with nothing before it goes at once.
    pub fn admit(&mut self, d: Delivery, max: usize) -> Admit {
        if d.qos == Qos::AtMostOnce
            && self.pending.is_empty()
            && self.retained_due == RetainedDue::None
        {
            return Admit::SendNow(d);
        }
        if self.pending.len() >= max {
            return Admit::Full;
        }
        self.pending.push_back(d);
        Admit::Queued
    }

    /// What goes out next, with `window_open` telling whether a QoS 1/2
    /// PUBLISH may go now.
    pub fn next(&mut self, window_open: bool) -> Next {
        if self.retained_ahead == 0 && self.retained_due != RetainedDue::None {
            return Next::Retained;
        }
        match self.pending.front() {
            None => Next::Wait,
            Some(front) if front.qos != Qos::AtMostOnce && !window_open => Next::Wait,
            Some(_) => match self.pending.pop_front() {
                Some(d) => {
                    self.retained_ahead = self.retained_ahead.saturating_sub(1);
                    Next::Send(d)
                }
                None => Next::Wait,
            },
        }
    }

    /// Everything still queued, for the session when the connection ends.
    pub fn take_all(&mut self) -> VecDeque<Delivery> {
        self.retained_ahead = 0;
        std::mem::take(&mut self.pending)
    }
}

/// QoS 1/2 PUBLISHes the inflight window has room for: fewer unacknowledged
/// (`inflight`) than both our window (`ours`, at least 1) and the client's
/// Receive Maximum.
pub fn window_room(ours: u16, client_receive_maximum: u16, inflight: usize) -> usize {
    usize::from(window(ours, client_receive_maximum)).saturating_sub(inflight)
}

/// The inflight window: our Receive Maximum (at least 1), or the client's if smaller.
pub fn window(ours: u16, client_receive_maximum: u16) -> u16 {
    ours.max(1).min(client_receive_maximum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(topic: &str, qos: Qos) -> Delivery {
        Delivery::for_test(topic, b"", qos)
    }

    fn sent(n: Next) -> String {
        match n {
            Next::Send(d) => d.msg.topic.clone(),
            Next::Retained => "retained".into(),
            Next::Wait => "wait".into(),
        }
    }

    #[test]
    fn qos0_with_nothing_before_it_goes_at_once_otherwise_in_order() {
        let mut q = OutboundQueue::default();
        assert!(matches!(
            q.admit(d("a", Qos::AtMostOnce), 4),
            Admit::SendNow(_)
        ));
        assert!(matches!(
            q.admit(d("b", Qos::AtLeastOnce), 4),
            Admit::Queued
        ));
        // A QoS 0 behind a queued QoS 1 keeps its place.
        assert!(matches!(q.admit(d("c", Qos::AtMostOnce), 4), Admit::Queued));
        assert_eq!(sent(q.next(true)), "b");
        assert_eq!(sent(q.next(true)), "c");
        assert_eq!(sent(q.next(true)), "wait");
    }

    #[test]
    fn the_queue_is_bounded_and_a_closed_window_holds_qos1_back() {
        let mut q = OutboundQueue::default();
        for t in ["a", "b"] {
            assert!(matches!(q.admit(d(t, Qos::AtLeastOnce), 2), Admit::Queued));
        }
        assert!(matches!(q.admit(d("c", Qos::AtLeastOnce), 2), Admit::Full));
        assert_eq!(q.room(2), 0);
        assert_eq!(sent(q.next(false)), "wait");
        assert_eq!(q.len(), 2);
        assert_eq!(sent(q.next(true)), "a");
        assert_eq!(q.room(2), 1);
    }

    #[test]
    fn owed_retained_messages_go_after_what_was_queued_before_the_subscribe() {
        let mut q = OutboundQueue::default();
        q.admit(d("before", Qos::AtLeastOnce), 8);
        q.retained_owed();
        // Queued after the SUBSCRIBE: behind the retained messages.
        q.admit(d("after", Qos::AtLeastOnce), 8);
        assert!(!q.retained_turn());
        assert_eq!(sent(q.next(true)), "before");
        assert!(q.retained_turn());
        assert_eq!(sent(q.next(true)), "retained");
        // Until they are all sent, the live message waits.
        q.set_retained_due(RetainedDue::Window);
        assert_eq!(sent(q.next(true)), "retained");
        q.set_retained_due(RetainedDue::None);
        assert_eq!(sent(q.next(true)), "after");
    }

    #[test]
    fn after_connack_retained_messages_owed_from_before_go_first() {
        let mut q = OutboundQueue::default();
        q.resume(VecDeque::from([d("offline", Qos::AtLeastOnce)]), true);
        assert_eq!(sent(q.next(true)), "retained");
        q.set_retained_due(RetainedDue::None);
        assert_eq!(sent(q.next(true)), "offline");
        let mut q = OutboundQueue::default();
        q.resume(VecDeque::from([d("offline", Qos::AtLeastOnce)]), false);
        assert_eq!(sent(q.next(true)), "offline");
    }

    #[test]
    fn take_all_empties_the_queue_for_the_session() {
        let mut q = OutboundQueue::default();
        q.admit(d("a", Qos::ExactlyOnce), 8);
        q.admit(d("b", Qos::AtLeastOnce), 8);
        let all: Vec<String> = q.take_all().iter().map(|d| d.msg.topic.clone()).collect();
        assert_eq!(all, ["a", "b"]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn the_window_is_the_smaller_of_ours_and_the_clients_minus_what_is_in_flight() {
        assert_eq!(window_room(10, 3, 0), 3);
        assert_eq!(window_room(2, 100, 1), 1);
        assert_eq!(window_room(2, 100, 5), 0);
        // Our window is at least one.
        assert_eq!(window_room(0, 100, 0), 1);
    }
}
