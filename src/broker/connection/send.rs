//! What the broker sends: packets through the codec's state machine, a
//! delivery encoded for the client's protocol version, a DISCONNECT with its
//! reason, and the output buffer written to the socket.

use super::{Conn, End};
use crate::broker::encode;
use crate::broker::events::DisconnectionReason;
use crate::broker::message::Delivery;
use crate::broker::stats::DropReason;
use mqtt_protocol_core::mqtt::connection::Event;
use mqtt_protocol_core::mqtt::packet::v5_0;
use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::result_code::{DisconnectReasonCode, MqttError};
use mqtt_protocol_core::mqtt::Version;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::warn;

/// Past this, the output buffer gives memory back after a write.
const OUT_KEEP: usize = 64 * 1024;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Sends a packet through the codec's state machine.
    pub fn send(&mut self, p: Packet) {
        match self.mqtt.send(p) {
            Ok(ev) => self.handle_events(ev),
            Err(e) => self.codec_lost(&e),
        }
    }

    /// MQTT 5: DISCONNECT with `code` (and a reason string) before closing; 3.1.1: just close.
    pub fn server_disconnect(&mut self, code: DisconnectReasonCode, reason: Option<&str>) {
        self.disconnection
            .get_or_insert(DisconnectionReason::of_server_code(code));
        if self.mqtt.version() == Version::V5_0 && self.client.is_some() {
            let with_reason = reason
                .and_then(|r| mqtt_protocol_core::mqtt::packet::ReasonString::new(r).ok())
                .map(|rs| {
                    v5_0::Disconnect::builder()
                        .reason_code(code)
                        .props(vec![rs.into()])
                        .build()
                });
            let mut sent = false;
            if let Some(Ok(d)) = with_reason {
                let ev = match self.mqtt.send(d.into()) {
                    Ok(ev) => ev,
                    Err(e) => return self.codec_lost(&e),
                };
                // MQTT 5 §3.14.2.2.3: the reason string is left out when the
                // packet would exceed the client's Maximum Packet Size.
                sent = !ev
                    .iter()
                    .any(|e| matches!(e, Event::NotifyError(MqttError::PacketTooLarge)));
                if sent {
                    self.handle_events(ev);
                }
            }
            if !sent {
                let bare = v5_0::Disconnect::builder().reason_code(code).build();
                self.send_built("DISCONNECT", bare);
            }
        }
        self.end.get_or_insert(End::Abnormal);
    }

    /// Sends a packet the broker built or, when building it failed (our bug,
    /// not the client's), logs it and closes the connection: an acknowledgement
    /// is never dropped silently, which would leave the client waiting.
    pub(super) fn send_built<P: Into<Packet>>(
        &mut self,
        what: &'static str,
        built: Result<P, MqttError>,
    ) {
        match built {
            Ok(p) => self.send(p.into()),
            Err(e) => self.build_failed(what, &e),
        }
    }

    /// A packet the broker had to send could not be built: logged, and the
    /// connection closes (the client would otherwise wait for it forever).
    pub(super) fn build_failed(&mut self, what: &'static str, e: &MqttError) {
        warn!(peer = %self.peer, packet = what, error = %e, "cannot build a packet to send: closing the connection");
        self.end.get_or_insert(End::Abnormal);
    }

    pub(super) async fn flush(&mut self) {
        if let Some(c) = &self.client {
            c.session
                .report_depth(self.traffic.outbound.len(), self.inflight_out);
        }
        if self.store_before_send_pending() {
            self.store_before_send().await;
        }
        if self.traffic.out.is_empty() {
            return;
        }
        let w = tokio::time::timeout(
            Duration::from_secs(30),
            self.io.write_all(&self.traffic.out),
        )
        .await;
        self.traffic.out.clear();
        // Keep a buffer for the next turn, but not a burst's worth on an idle connection.
        if self.traffic.out.capacity() > OUT_KEEP {
            self.traffic.out.shrink_to(OUT_KEEP / 8);
        }
        if !matches!(w, Ok(Ok(()))) {
            self.end.get_or_insert(End::Abnormal);
        }
    }

    /// Encodes one delivery for this client's protocol version and sends it.
    pub(super) fn deliver(&mut self, d: Delivery) {
        if self.revoked_since_routed(&d) {
            return;
        }
        if d.msg.expired() {
            self.shared.stats.drop_message(DropReason::Expired);
            self.unstore(d.stored);
            return;
        }
        self.shared.stats.delivered(d.qos);
        // MQTT 3.1.1 QoS 0 carries no state in the codec: encode it straight into
        // the output, without building a packet object (the hot path of fan-out).
        let v3 = self.mqtt.version() == Version::V3_1_1;
        if d.qos == Qos::AtMostOnce && v3 {
            encode::v3_qos0_publish(
                &mut self.traffic.out,
                &d.msg.topic,
                &d.msg.payload,
                d.retain,
            );
            return;
        }
        // Nor does a 3.1.1 QoS 1 (decision 0035).
        if d.qos == Qos::AtLeastOnce && v3 {
            return self.deliver_v3_qos1(d);
        }
        let packet_id = if d.qos == Qos::AtMostOnce {
            None
        } else {
            let acquired = if v3 {
                self.take_id_for_codec()
            } else {
                match self.mqtt.live() {
                    Ok(codec) => codec.acquire_packet_id().ok(),
                    Err(e) => return self.codec_lost(&e),
                }
            };
            match acquired {
                Some(id) => {
                    self.inflight_out += 1;
                    if let Some(seq) = d.stored {
                        self.sending_stored(id, seq, d.qos);
                    }
                    Some(id)
                }
                None => {
                    // No identifier left (the window check makes this unreachable in
                    // practice): drop rather than spin.
                    self.shared.stats.drop_message(DropReason::NoPacketId);
                    return;
                }
            }
        };
        let built = d.publish(self.mqtt.version(), packet_id);
        let packet = match built {
            Ok(packet) => packet,
            Err(e) => {
                if let Some(id) = packet_id {
                    self.release_packet_id(id);
                }
                return self.build_failed("PUBLISH", &e);
            }
        };
        let ev = match self.mqtt.send(packet) {
            Ok(ev) => ev,
            Err(e) => return self.codec_lost(&e),
        };
        let refused = ev.iter().any(|e| matches!(e, Event::NotifyError(_)));
        self.handle_events(ev);
        if refused {
            if let Some(id) = packet_id {
                self.release_packet_id(id);
            }
        }
    }

    /// An MQTT 3.1.1 QoS 1 copy, without the codec (decision 0035): its
    /// identifier from the connection's table, the PUBLISH encoded straight
    /// into the output, the copy kept until the PUBACK (which `feed` takes
    /// out of the stream before the codec), for a resumed session.
    fn deliver_v3_qos1(&mut self, d: Delivery) {
        let Some(id) = self.own_ids().next_free() else {
            // As for the codec's identifiers: unreachable behind the window check.
            self.shared.stats.drop_message(DropReason::NoPacketId);
            return;
        };
        encode::v3_qos1_publish(
            &mut self.traffic.out,
            &d.msg.topic,
            id,
            &d.msg.payload,
            d.retain,
        );
        // Taken after encoding: the table keeps the message itself (no copy of the Arc).
        self.own_ids().take_ours(d.msg, d.retain);
        self.inflight_out += 1;
        if let Some(seq) = d.stored {
            self.sending_stored(id, seq, Qos::AtLeastOnce);
        }
    }

    /// MQTT 3.1.1: an identifier from the connection's table for a PUBLISH
    /// the codec sends (QoS 2), registered with the codec, so that the
    /// codec's and the connection's identifiers never collide.
    fn take_id_for_codec(&mut self) -> Option<u16> {
        let id = self.own_ids().take_for_codec()?;
        let registered = match self.mqtt.live() {
            Ok(codec) => codec.register_packet_id(id).is_ok(),
            Err(e) => {
                self.codec_lost(&e);
                false
            }
        };
        if !registered {
            self.released_by_codec(id);
            return None;
        }
        Some(id)
    }

    /// Gives back a packet identifier acquired for a PUBLISH that was not sent.
    fn release_packet_id(&mut self, id: u16) {
        match self.mqtt.live() {
            Ok(codec) => {
                let ev = codec.release_packet_id(id);
                self.handle_events(ev);
            }
            Err(e) => self.codec_lost(&e),
        }
    }
}
