//! The connection's rarely used state, in one box created on first use and
//! dropped when the connection rests (decision 0036): SUBSCRIBE scratch,
//! MQTT 5 QoS 2 bookkeeping, a deferred decode failure and the durable
//! mode's bookkeeping. An idle connection, and every connection that only
//! publishes and receives QoS 0/1 in memory, holds a null pointer instead of
//! seven empty collections (~160 B in every connection's future).

use super::Conn;
use crate::broker::session::StoredOut;
use crate::broker::store::{Durable, Op};
use mqtt_protocol_core::mqtt::packet::Packet;

#[derive(Default)]
pub(super) struct Rare {
    /// For the SUBSCRIBE being handled: whether each granted filter is new.
    pub(super) subscribed_new: Vec<bool>,
    /// MQTT 5: identifiers of the client's QoS 2 PUBLISHes not yet released,
    /// to answer a PUBREL for any other with PUBCOMP 0x92 (§3.7.2.1). The codec
    /// keeps the same set but only lets it be copied; at most Receive Maximum long.
    pub(super) qos2_open: Vec<u16>,
    /// The codec failed to decode a packet of the bytes just fed: what it asked to
    /// send (its DISCONNECT). Like `Conn::fault`, acted on after the packets decoded
    /// before it, so that they are not lost and their answers go first.
    pub(super) decode_failed: Option<Vec<u8>>,
    /// The stored copies in flight to the client: removed from the store once
    /// the exchange is complete (PUBACK, PUBCOMP).
    pub(super) stored_out: Vec<StoredOut>,
    /// Store changes that must be durable before the bytes in `out` leave:
    /// the packet identifiers of QoS 2 copies sent and their PUBREL state
    /// (decision 0030). Written as one batch at `flush`.
    pub(super) before_send: Vec<Op>,
    /// Acknowledgements of the client's PUBLISHes that wait for the store
    /// (`store_wait`), in the order the PUBLISHes came.
    pub(super) acks_waiting: Vec<Packet>,
    /// Resolves when everything the waiting acknowledgements need is durable.
    pub(super) store_wait: Option<Durable>,
}

impl Rare {
    /// Nothing here keeps the connection from resting (the SUBSCRIBE scratch
    /// is emptied within the SUBSCRIBE's turn).
    fn holds_nothing(&self) -> bool {
        self.qos2_open.is_empty()
            && self.decode_failed.is_none()
            && self.stored_out.is_empty()
            && self.before_send.is_empty()
            && self.acks_waiting.is_empty()
            && self.store_wait.is_none()
    }
}

impl<S> Conn<S> {
    /// The rarely used state, created on first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Whether the rarely used state holds nothing that keeps the connection
    /// from resting (true when it was never created).
    pub(super) fn rare_holds_nothing(&self) -> bool {
        self.rare.as_deref().is_none_or(Rare::holds_nothing)
    }

    /// A decode failure waits to be acted on.
    pub(super) fn decode_failed(&self) -> bool {
        self.rare
            .as_deref()
            .is_some_and(|r| r.decode_failed.is_some())
    }

    /// Acknowledgements wait for the store.
    pub(super) fn acks_wait_for_store(&self) -> bool {
        self.rare
            .as_deref()
            .is_some_and(|r| r.store_wait.is_some() || !r.acks_waiting.is_empty())
    }

    /// Store changes wait to be written before the next bytes leave.
    pub(super) fn store_before_send_pending(&self) -> bool {
        self.rare
            .as_deref()
            .is_some_and(|r| !r.before_send.is_empty())
    }
}
