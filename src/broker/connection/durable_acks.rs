//! The connection's side of durable state (decision 0025): acknowledgements
//! that wait for the store, and removing stored copies the client has.

use super::Conn;
use crate::broker::durable;
use crate::broker::store::Op;
use mqtt_protocol_core::mqtt::packet::Packet;
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

    /// The client has the copy sent under `packet_id` (PUBACK, or PUBREC for
    /// QoS 2, after which only the PUBREL/PUBCOMP exchange is left).
    pub(super) fn delivered_stored(&mut self, packet_id: u16) {
        if let Some(i) = self.stored_out.iter().position(|(id, _)| *id == packet_id) {
            let (_, seq) = self.stored_out.swap_remove(i);
            self.unstore(Some(seq));
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
        if self.acks_waiting.is_empty() {
            self.send(packet);
        } else {
            self.acks_waiting.push(packet);
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
        let written = match self.store_wait.take() {
            Some(d) => d.wait().await,
            None => Ok(()),
        };
        let acks = std::mem::take(&mut self.acks_waiting);
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
