//! MQTT 3.1.1: the packet identifiers of the broker's QoS 1/2 PUBLISHes to
//! the client, kept by the connection instead of the codec (decision 0035).
//!
//! A QoS 1 PUBLISH to a 3.1.1 client is encoded straight into the output
//! buffer and its PUBACK taken out of the byte stream in front of the codec
//! (`frame::FrameScan::split`): the codec never sees either, so its
//! identifier allocator (a B-tree), its in-flight sets and its packet store
//! are not paid for per message. QoS 2 keeps the codec's state machine: its
//! identifiers come from this table too (marked as the codec's and registered
//! with it), so the two can never collide, and so do the identifiers of the
//! packets a resumed session gave back to the codec.
//!
//! There is at most one slot per place in the inflight window, added only
//! when none is free: slot `i` is identifier `i + 1`, free slots are reused
//! oldest first (a ring), so taking, finding and freeing an identifier are
//! O(1). A copy restored with a resumed session may carry any identifier; one
//! above the window takes no slot and cannot collide with ours.

use super::Conn;
use crate::broker::message::{Delivery, Message};
use mqtt_protocol_core::mqtt::packet::{GenericStorePacket, Qos};
use mqtt_protocol_core::mqtt::result_code::MqttError;
use mqtt_protocol_core::mqtt::Version;
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::warn;

/// What holds an identifier.
enum Holder {
    Free,
    /// A QoS 1 PUBLISH this table's owner sent itself: the copy (with its
    /// RETAIN flag), to be sent again if the session resumes before the PUBACK.
    Ours {
        msg: Arc<Message>,
        retain: bool,
    },
    /// The codec: a QoS 2 exchange, or a packet restored with the session.
    Codec,
}

struct Slot {
    holder: Holder,
    /// When it was taken (a count): the order to send copies again in.
    taken: u64,
}

/// The identifiers of one connection's PUBLISHes in flight to the client.
pub(super) struct PacketIds {
    /// Slot `i` is identifier `i + 1`. Added only when none is free, so the
    /// table is as large as the most PUBLISHes in flight at once, at most
    /// `window` (a large `receiveMaximum` costs only what is used).
    slots: Vec<Slot>,
    window: u16,
    /// Free slots, the longest free first.
    free: VecDeque<u16>,
    /// The next `Slot::taken`.
    next_taken: u64,
}

impl PacketIds {
    /// A table for an inflight window of `window` PUBLISHes (at least 1).
    pub(super) fn new(window: u16) -> Self {
        PacketIds {
            slots: Vec::new(),
            window: window.max(1),
            free: VecDeque::new(),
            // 0 is for what was sent before this connection (restored).
            next_taken: 1,
        }
    }

    /// The identifier [`take`](Self::take) would give, if any is free.
    pub(super) fn next_free(&self) -> Option<u16> {
        match self.free.front() {
            Some(&slot) => Some(slot + 1),
            None => self.unused().map(|slot| slot + 1),
        }
    }

    /// The next slot never used, if the window allows one more.
    fn unused(&self) -> Option<u16> {
        u16::try_from(self.slots.len())
            .ok()
            .filter(|&n| n < self.window)
    }

    /// A slot never used before, added to the table.
    fn add_slot(&mut self) -> Option<u16> {
        let slot = self.unused()?;
        self.slots.push(Slot {
            holder: Holder::Free,
            taken: 0,
        });
        Some(slot)
    }

    fn take(&mut self, holder: Holder) -> Option<u16> {
        let slot = match self.free.pop_front() {
            Some(slot) => slot,
            None => self.add_slot()?,
        };
        let s = self.slots.get_mut(usize::from(slot))?;
        s.holder = holder;
        s.taken = self.next_taken;
        self.next_taken += 1;
        Some(slot + 1)
    }

    /// Takes the next free identifier (see [`next_free`](Self::next_free))
    /// for a QoS 1 PUBLISH of `msg` sent by the connection itself.
    pub(super) fn take_ours(&mut self, msg: Arc<Message>, retain: bool) -> Option<u16> {
        self.take(Holder::Ours { msg, retain })
    }

    /// Takes the next free identifier for a PUBLISH the codec sends (QoS 2).
    pub(super) fn take_for_codec(&mut self) -> Option<u16> {
        self.take(Holder::Codec)
    }

    fn slot(&self, id: u16) -> Option<&Slot> {
        self.slots.get(usize::from(id).checked_sub(1)?)
    }

    /// Whether `id` is one of our QoS 1 PUBLISHes awaiting its PUBACK.
    pub(super) fn is_ours(&self, id: u16) -> bool {
        matches!(
            self.slot(id),
            Some(Slot {
                holder: Holder::Ours { .. },
                ..
            })
        )
    }

    /// The PUBACK for our `id` arrived: the identifier is free again.
    /// False when `id` is not ours in flight.
    pub(super) fn acknowledged(&mut self, id: u16) -> bool {
        self.is_ours(id) && self.free_slot(id)
    }

    /// The codec gave `id` back (its exchange is over, or the PUBLISH was
    /// refused): free again if the table had given it to the codec.
    pub(super) fn released_by_codec(&mut self, id: u16) {
        if matches!(
            self.slot(id),
            Some(Slot {
                holder: Holder::Codec,
                ..
            })
        ) {
            self.free_slot(id);
        }
    }

    fn free_slot(&mut self, id: u16) -> bool {
        let Some(s) = usize::from(id)
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
        else {
            return false;
        };
        s.holder = Holder::Free;
        self.free.push_back(id - 1);
        true
    }

    /// A resumed session gave the codec a packet under `id`: not to be given
    /// out until the codec releases it.
    pub(super) fn restored_in_codec(&mut self, id: u16) {
        if id == 0 || id > self.window {
            return;
        }
        // The slots before it join the free ones.
        while self.slots.len() < usize::from(id) {
            match self.add_slot() {
                Some(slot) => self.free.push_back(slot),
                None => return,
            }
        }
        if !matches!(
            self.slot(id),
            Some(Slot {
                holder: Holder::Free,
                ..
            })
        ) {
            return;
        }
        let slot = id - 1;
        self.free.retain(|&f| f != slot);
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.holder = Holder::Codec;
            s.taken = 0;
        }
    }

    /// Everything in flight, as the codec keeps unacknowledged packets for a
    /// persistent session (PUBLISH with DUP set, PUBREL) and gives them back
    /// at the next CONNACK: the codec's own (`codec`, in its order) and our
    /// QoS 1 copies, in the order they were first sent. Packets the codec
    /// was given back at this connection's start (restored) go first.
    pub(super) fn in_flight(
        &self,
        codec: Vec<GenericStorePacket<u16>>,
    ) -> Vec<GenericStorePacket<u16>> {
        let mut all: Vec<(u64, GenericStorePacket<u16>)> = codec
            .into_iter()
            .map(|p| {
                let taken = match self.slot(p.packet_id()) {
                    Some(Slot {
                        holder: Holder::Codec,
                        taken,
                    }) => *taken,
                    _ => 0,
                };
                (taken, p)
            })
            .collect();
        for (i, s) in self.slots.iter().enumerate() {
            if let Holder::Ours { msg, retain } = &s.holder {
                let copy = Delivery {
                    msg: msg.clone(),
                    qos: Qos::AtLeastOnce,
                    retain: *retain,
                    subscription_ids: Vec::new(),
                    stored: None,
                    epoch: 0,
                };
                // A copy the codec's builder refuses was refused when routed
                // already (never here): it is lost, not the others.
                match u16::try_from(i + 1)
                    .map_err(|_| MqttError::PacketIdentifierInvalid)
                    .and_then(|id| copy.resend(Version::V3_1_1, id))
                {
                    Ok(p) => all.push((s.taken, p)),
                    Err(e) => warn!(error = %e, "an in-flight copy cannot be kept for the session"),
                }
            }
        }
        // Stable: the codec's packets keep their order among equals.
        all.sort_by_key(|(taken, _)| *taken);
        all.into_iter().map(|(_, p)| p).collect()
    }
}

impl<S> Conn<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    /// The connection's identifier table (MQTT 3.1.1), created with the
    /// first QoS 1/2 PUBLISH to the client, sized by the inflight window.
    pub(super) fn own_ids(&mut self) -> &mut PacketIds {
        let window = self.window();
        self.packet_ids
            .get_or_insert_with(|| Box::new(PacketIds::new(window)))
    }

    /// The codec gave `id` back: free in the table too, if it has one.
    pub(super) fn released_by_codec(&mut self, id: u16) {
        if let Some(ids) = self.packet_ids.as_deref_mut() {
            ids.released_by_codec(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Arc::from(&b"p"[..]),
            qos: Qos::AtLeastOnce,
            retain: false,
            props: Vec::new(),
            expires_at: None,
            origin: Arc::from("o"),
        })
    }

    #[test]
    fn identifiers_stay_within_the_window_and_are_reused_oldest_first() {
        let mut t = PacketIds::new(3);
        assert_eq!(t.next_free(), Some(1));
        assert_eq!(t.take_ours(msg("a"), false), Some(1));
        assert_eq!(t.take_ours(msg("b"), false), Some(2));
        assert_eq!(t.take_for_codec(), Some(3));
        assert_eq!(t.next_free(), None);
        assert_eq!(t.take_ours(msg("c"), false), None);
        // A PUBACK for the codec's identifier or one never given is not ours.
        assert!(!t.acknowledged(3));
        assert!(!t.acknowledged(4));
        assert!(!t.acknowledged(0));
        assert!(t.acknowledged(2));
        // A second PUBACK for it is no longer ours.
        assert!(!t.acknowledged(2));
        assert!(t.acknowledged(1));
        assert_eq!(t.take_ours(msg("d"), false), Some(2));
        t.released_by_codec(3);
        // Ours is not released by the codec.
        t.released_by_codec(2);
        assert!(t.is_ours(2));
        assert_eq!(t.take_ours(msg("e"), false), Some(1));
        assert_eq!(t.take_ours(msg("f"), false), Some(3));
    }

    #[test]
    fn the_table_grows_only_to_the_most_in_flight_at_once() {
        let mut t = PacketIds::new(u16::MAX);
        for _ in 0..1000 {
            assert_eq!(t.take_ours(msg("a"), false), Some(1));
            assert!(t.acknowledged(1));
        }
        assert_eq!(t.slots.len(), 1);
        assert_eq!(t.take_ours(msg("a"), false), Some(1));
        assert_eq!(t.take_ours(msg("b"), false), Some(2));
        assert_eq!(t.slots.len(), 2);
        let mut full = PacketIds::new(u16::MAX);
        for id in 1..=u16::MAX {
            assert_eq!(full.take_for_codec(), Some(id));
        }
        assert_eq!(full.next_free(), None);
        assert_eq!(full.take_for_codec(), None);
    }

    #[test]
    fn restored_identifiers_are_not_given_out_until_the_codec_releases_them() {
        let mut t = PacketIds::new(4);
        t.restored_in_codec(2);
        t.restored_in_codec(900); // above the window: no slot
        let got: Vec<_> = (0..3).filter_map(|_| t.take_for_codec()).collect();
        assert_eq!(got, [1, 3, 4]);
        assert_eq!(t.next_free(), None);
        t.released_by_codec(2);
        assert_eq!(t.next_free(), Some(2));
    }

    #[test]
    fn in_flight_copies_come_in_the_order_they_were_sent() {
        let mut t = PacketIds::new(4);
        t.restored_in_codec(4);
        assert_eq!(t.take_ours(msg("a"), true), Some(1));
        assert_eq!(t.take_for_codec(), Some(2));
        assert_eq!(t.take_ours(msg("c"), false), Some(3));
        assert!(t.acknowledged(1));
        assert_eq!(t.take_ours(msg("d"), false), Some(1));
        let pubrel = |id| crate::broker::message::resend_pubrel(Version::V3_1_1, id).unwrap();
        let all = t.in_flight(vec![pubrel(4), pubrel(2)]);
        let ids: Vec<u16> = all.iter().map(|p| p.packet_id()).collect();
        assert_eq!(ids, [4, 2, 3, 1]);
        match &all[2] {
            GenericStorePacket::V3_1_1Publish(p) => {
                assert!(p.dup());
                assert_eq!(p.qos(), Qos::AtLeastOnce);
                assert_eq!(p.topic_name(), "c");
            }
            other => panic!("{other:?}"),
        }
    }
}
