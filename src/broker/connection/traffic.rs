//! What flows through a busy connection, in one box that exists while the
//! connection is busy and is dropped when it rests (decision 0036): the
//! output buffer, the queue of deliveries waiting for the inflight window,
//! decoded packets not yet acted on, the mail taken from the session and the
//! copies waiting for room in a full mailbox. All of them are empty while a
//! connection rests; holding them inline cost every idle connection 160 B of
//! its task (the task cell one jemalloc size class larger).
//!
//! `Conn::traffic` reads as the struct itself: reading an absent box sees the
//! empty state (no allocation), and the first write creates it.

use super::queue::OutboundQueue;
use crate::broker::message::Delivery;
use crate::broker::session::Session;
use mqtt_protocol_core::mqtt::packet::Packet;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

pub(super) struct Traffic {
    /// Bytes to write at the next flush.
    pub(super) out: Vec<u8>,
    /// Deliveries waiting for the client's inflight window, and the owed
    /// retained messages' place among them.
    pub(super) outbound: OutboundQueue,
    /// Packets the codec decoded, not yet acted on.
    pub(super) inbox: VecDeque<Packet>,
    /// Deliveries taken from the session's mailbox, being encoded.
    pub(super) mail: VecDeque<Delivery>,
    /// Copies of this client's PUBLISH that met a full mailbox: the connection
    /// waits for room (and reads nothing meanwhile) before its next packet.
    pub(super) blocked: Vec<(Arc<Session>, Delivery)>,
}

impl Traffic {
    const EMPTY: Traffic = Traffic {
        out: Vec::new(),
        outbound: OutboundQueue::new(),
        inbox: VecDeque::new(),
        mail: VecDeque::new(),
        blocked: Vec::new(),
    };

    fn is_idle(&self) -> bool {
        self.out.is_empty()
            && self.outbound.is_idle()
            && self.inbox.is_empty()
            && self.mail.is_empty()
            && self.blocked.is_empty()
    }
}

/// What an absent box reads as.
static EMPTY: Traffic = Traffic::EMPTY;

/// [`Traffic`], boxed while in use.
#[derive(Default)]
pub(super) struct TrafficSlot(Option<Box<Traffic>>);

impl TrafficSlot {
    /// Drops the box if everything in it is empty (the connection rests);
    /// otherwise gives back what the empty parts hold (a burst's capacity).
    pub(super) fn release(&mut self) {
        let Some(t) = self.0.as_deref_mut() else {
            return;
        };
        if t.is_idle() {
            self.0 = None;
            return;
        }
        if t.out.is_empty() {
            t.out = Vec::new();
        }
        if t.mail.is_empty() {
            t.mail = VecDeque::new();
        }
        if t.outbound.len() == 0 {
            drop(t.outbound.take_all());
        }
        if t.inbox.is_empty() {
            t.inbox = VecDeque::new();
        }
        if t.blocked.is_empty() {
            t.blocked = Vec::new();
        }
    }

    /// Whether the box exists (for tests of the resting state).
    #[cfg(test)]
    pub(super) fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

impl Deref for TrafficSlot {
    type Target = Traffic;

    fn deref(&self) -> &Traffic {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for TrafficSlot {
    fn deref_mut(&mut self) -> &mut Traffic {
        self.0.get_or_insert_with(|| Box::new(Traffic::EMPTY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_an_absent_box_sees_empty_traffic_and_allocates_nothing() {
        let slot = TrafficSlot::default();
        assert!(slot.out.is_empty() && slot.inbox.is_empty() && slot.outbound.is_idle());
        assert!(!slot.is_held());
    }

    #[test]
    fn the_first_write_creates_the_box_and_release_drops_it_once_empty() {
        let mut slot = TrafficSlot::default();
        slot.out.extend_from_slice(b"\x30\x00");
        assert!(slot.is_held());
        // Bytes still to write: the box stays, with them.
        slot.release();
        assert!(slot.is_held());
        assert_eq!(slot.out, b"\x30\x00");
        slot.out.clear();
        slot.release();
        assert!(!slot.is_held());
    }

    #[test]
    fn release_keeps_a_busy_part_and_gives_back_the_empty_parts_capacity() {
        let mut slot = TrafficSlot::default();
        slot.out.reserve(64 * 1024);
        slot.outbound.retained_owed();
        slot.release();
        // Retained messages still owed: not idle, the box stays...
        assert!(slot.is_held());
        assert!(!slot.outbound.is_idle());
        // ...but the empty output buffer's burst capacity is given back.
        assert_eq!(slot.out.capacity(), 0);
    }
}
