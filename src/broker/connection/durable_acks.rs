//! The connection's side of durable state (decision 0025): acknowledgements
//! that wait for the store, and removing stored copies the client has.

use super::Conn;
use crate::broker::durable;
use crate::broker::session::StoredOut;
use crate::broker::store::record::{OutboundRecord, OutboundState};
use crate::broker::store::Op;
use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A stored copy that will not be sent: out of the store.
    pub(super) fn unstore(&self, stored: Option<u64>) {
        if let (Some(seq), Some(c)) = (stored, &self.client) {
            durable::unstore(&self.shared, &c.client_id, vec![seq]);
        }
    }

    /// The stored copy `seq` goes out under `packet_id`. For QoS 2 the
    /// identifier is stored before the PUBLISH leaves (`flush`): a restart
    /// resends it under the same identifier, which the client may already
    /// hold (decision 0030). QoS 1 is resent from the queue under a new one.
    pub(super) fn sending_stored(&mut self, packet_id: u16, seq: u64, qos: Qos) {
        let id_stored = qos == Qos::ExactlyOnce;
        self.rare().stored_out.push(StoredOut {
            packet_id,
            seq,
            id_stored,
        });
        if id_stored {
            self.outbound_state(seq, packet_id, OutboundState::PublishSent);
        }
    }

    /// The client answered the stored QoS 2 copy sent under `packet_id` with
    /// PUBREC: the PUBREL about to be sent is stored first, so that a restart
    /// resends the PUBREL and never the PUBLISH (MQTT 5 §4.3.3).
    pub(super) fn received_stored(&mut self, packet_id: u16) {
        let sent = self.rare.as_deref().and_then(|r| {
            r.stored_out
                .iter()
                .find(|s| s.packet_id == packet_id && s.id_stored)
                .copied()
        });
        if let Some(s) = sent {
            self.outbound_state(s.seq, packet_id, OutboundState::PubrelSent);
        }
    }

    fn outbound_state(&mut self, seq: u64, packet_id: u16, state: OutboundState) {
        if let Some(c) = &self.client {
            let op = Op::PutOutbound {
                client_id: c.client_id.to_string(),
                seq,
                record: OutboundRecord { packet_id, state },
            };
            self.rare().before_send.push(op);
        }
    }

    /// The exchange of the copy sent under `packet_id` is over (PUBACK,
    /// PUBCOMP, a failed PUBREC, or the codec gave the identifier back): the
    /// copy leaves the store, with its outbound state.
    pub(super) fn delivered_stored(&mut self, packet_id: u16) {
        let Some(rare) = self.rare.as_deref_mut() else {
            return;
        };
        let Some(i) = rare
            .stored_out
            .iter()
            .position(|s| s.packet_id == packet_id)
        else {
            return;
        };
        let s = rare.stored_out.swap_remove(i);
        // A state not yet written is not needed any more.
        rare.before_send
            .retain(|op| !matches!(op, Op::PutOutbound { seq, .. } if *seq == s.seq));
        if let (Some(store), Some(c)) = (&self.shared.store, &self.client) {
            let client_id = c.client_id.to_string();
            let mut ops = vec![Op::DeleteMessage {
                client_id: client_id.clone(),
                seq: s.seq,
            }];
            if s.id_stored {
                ops.push(Op::DeleteOutbound {
                    client_id,
                    seq: s.seq,
                });
            }
            store.submit_detached(ops);
        }
    }

    /// Writes what must be durable before the bytes in `out` leave (one
    /// batch for everything sent since the last write). The store failing:
    /// nothing of it is sent and the connection closes (MQTT 5: DISCONNECT
    /// 0x80); the client gets the copies again when it resumes.
    pub(super) async fn store_before_send(&mut self) {
        let ops = self
            .rare
            .as_mut()
            .map(|r| std::mem::take(&mut r.before_send))
            .unwrap_or_default();
        let Some(store) = &self.shared.store else {
            return;
        };
        if let Err(e) = store.submit(ops).wait().await {
            warn!(peer = %self.peer, error = %e, "packet identifiers not stored: the store could not be written; closing");
            self.traffic.out.clear();
            self.server_disconnect(
                DisconnectReasonCode::UnspecifiedError,
                Some("the broker could not store its state"),
            );
        }
    }

    /// The client released its QoS 2 PUBLISH `packet_id` (PUBREL).
    pub(super) fn released_qos2(&self, packet_id: u16) {
        if let (Some(store), Some(c)) = (&self.shared.store, &self.client) {
            if c.session.is_persistent() {
                store.submit_detached(vec![Op::DeleteQos2 {
                    client_id: c.client_id.to_string(),
                    packet_id,
                }]);
            }
        }
    }

    /// Sends an acknowledgement of the client's PUBLISH now, or after those
    /// still waiting for the store (acknowledgements keep the PUBLISHes' order).
    pub(super) fn ack(&mut self, packet: Packet) {
        match self.rare.as_deref_mut() {
            Some(r) if !r.acks_waiting.is_empty() => r.acks_waiting.push(packet),
            _ => self.send(packet),
        }
    }

    /// [`ack`](Self::ack) for a packet still to be built: a refusal (PUBACK or
    /// PUBREC 0x87) keeps its place behind acknowledgements waiting for the store.
    pub(super) fn ack_built<P: Into<Packet>>(
        &mut self,
        what: &'static str,
        built: Result<P, mqtt_protocol_core::mqtt::result_code::MqttError>,
    ) {
        match built {
            Ok(p) => self.ack(p.into()),
            Err(e) => self.build_failed(what, &e),
        }
    }

    /// Waits until what the waiting acknowledgements promise is durable, then
    /// sends them. The store failing: nothing is acknowledged and the
    /// connection closes (MQTT 5: DISCONNECT 0x80), so the client sends again.
    pub(super) async fn send_acks_when_durable(&mut self) {
        let (wait, acks) = match self.rare.as_deref_mut() {
            Some(r) => (r.store_wait.take(), std::mem::take(&mut r.acks_waiting)),
            None => (None, Vec::new()),
        };
        let written = match wait {
            Some(d) => d.wait().await,
            None => Ok(()),
        };
        match written {
            Ok(()) => {
                for p in acks {
                    self.send(p);
                }
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "messages not acknowledged: the store could not be written; closing");
                self.server_disconnect(
                    DisconnectReasonCode::UnspecifiedError,
                    Some("the broker could not store the message"),
                );
            }
        }
    }
}
