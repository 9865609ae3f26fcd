//! PUBLISH from a client: validation, authorization (semantics.md §4) and routing.

use super::{log_denial, Conn, End};
use crate::broker::events::DisconnectionReason;
use crate::broker::message::{qos_u8, Message};
use crate::broker::stats::{Action, DenialCode};
use crate::broker::store::Op;
use crate::decisions::access::Verdict;
use crate::topic;
use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0, Packet, Qos, ReasonString};
use mqtt_protocol_core::mqtt::result_code::{
    DisconnectReasonCode, MqttError, PubackReasonCode, PubrecReasonCode,
};
use mqtt_protocol_core::mqtt::Version;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn on_publish(&mut self, msg: Message, packet_id: Option<u16>) {
        let Some(client) = &self.client else { return };
        self.shared.stats.received(msg.qos);
        let v5 = self.mqtt.version() == Version::V5_0;
        let limits = self.shared.config.topic_limits();
        if topic::validate_name(&msg.topic).is_err() || limits.check(&msg.topic).is_err() {
            self.server_disconnect(DisconnectReasonCode::TopicNameInvalid, None);
            return;
        }
        if qos_u8(msg.qos) > self.shared.config.max_qos {
            self.server_disconnect(DisconnectReasonCode::QosNotSupported, None);
            return;
        }
        if msg.retain && !self.shared.config.retain_available {
            self.server_disconnect(DisconnectReasonCode::RetainNotSupported, None);
            return;
        }
        let rpi = client.request_problem_info;

        let verdict = {
            let (policy, generation) = self.shared.policy.current_with_generation();
            let Some(client) = self.client.as_mut() else {
                return;
            };
            // The client's index is looked up once per policy, not per PUBLISH.
            let known = match client.policy_client {
                Some((g, known)) if g == generation => known,
                _ => {
                    let known = policy.lookup_client(&client.auth_name);
                    client.policy_client = Some((generation, known));
                    known
                }
            };
            // The policy also refuses disabled clients and `$` topics.
            match known {
                Some(c) => policy.may_publish(c, &msg.topic),
                None => Verdict::deny("the client is no longer in the policy"),
            }
        };

        if !verdict.allowed {
            self.shared
                .stats
                .denied(Action::Publish, DenialCode::NotAuthorized);
            if let Some(c) = &self.client {
                log_denial(
                    &c.auth_name,
                    &c.client_id,
                    "publish",
                    &msg.topic,
                    &verdict.reason,
                );
            }
            if !v5 {
                // 3.1.1 has no negative acknowledgement: close (as Event Grid does).
                self.disconnection
                    .get_or_insert(DisconnectionReason::ClientAuthorizationError);
                self.end.get_or_insert(End::Abnormal);
                return;
            }
            let reason = format!(
                "publish to `{}` is not allowed: {}",
                msg.topic, verdict.reason
            );
            // The reason string only explains: one too long for the field is left out.
            let reason = rpi.then(|| ReasonString::new(reason).ok()).flatten();
            match (msg.qos, packet_id) {
                (Qos::AtLeastOnce, Some(id)) => {
                    let mut b = v5_0::Puback::builder()
                        .packet_id(id)
                        .reason_code(PubackReasonCode::NotAuthorized);
                    if let Some(r) = reason {
                        b = b.props(vec![r.into()]);
                    }
                    self.ack_built("PUBACK", b.build());
                }
                (Qos::ExactlyOnce, Some(id)) => {
                    let mut b = v5_0::Pubrec::builder()
                        .packet_id(id)
                        .reason_code(PubrecReasonCode::NotAuthorized);
                    if let Some(r) = reason {
                        b = b.props(vec![r.into()]);
                    }
                    self.ack_built("PUBREC", b.build());
                }
                _ => self.shared.stats.publish_denied_qos0_dropped.inc(),
            }
            return;
        }

        // Route (writing ahead what must survive a crash), then acknowledge.
        let qos = msg.qos;
        let written = self
            .shared
            .publish(Arc::new(msg), Some(&mut self.traffic.blocked));
        let qos2_state = match (qos, packet_id, &self.shared.store) {
            // The PUBREC below promises exactly once: a PUBLISH sent again with
            // this identifier after a restart must not be routed again.
            (Qos::ExactlyOnce, Some(id), Some(store)) if self.session_persistent() => {
                self.client.as_ref().map(|c| {
                    store.submit(vec![Op::PutQos2 {
                        client_id: c.client_id.to_string(),
                        packet_id: id,
                    }])
                })
            }
            _ => None,
        };
        let ack = match self.ack_packet(qos, packet_id, v5) {
            Some((_, Ok(p))) => Some(p),
            Some((what, Err(e))) => {
                self.build_failed(what, &e);
                None
            }
            None => None,
        };
        // The writer is ordered: the later of the two covers both.
        if let Some(d) = qos2_state.or(written) {
            let rare = self.rare();
            rare.store_wait = Some(d);
            rare.acks_waiting.extend(ack);
        } else if let Some(p) = ack {
            self.ack(p);
        }
    }

    fn session_persistent(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.session.is_persistent())
    }

    /// PUBACK or PUBREC (success) for the client's protocol version.
    fn ack_packet(
        &self,
        qos: Qos,
        packet_id: Option<u16>,
        v5: bool,
    ) -> Option<(&'static str, Result<Packet, MqttError>)> {
        Some(match (qos, packet_id?, v5) {
            (Qos::AtLeastOnce, id, true) => (
                "PUBACK",
                v5_0::Puback::builder()
                    .packet_id(id)
                    .build()
                    .map(Into::into),
            ),
            (Qos::AtLeastOnce, id, false) => (
                "PUBACK",
                v3_1_1::Puback::builder()
                    .packet_id(id)
                    .build()
                    .map(Into::into),
            ),
            (Qos::ExactlyOnce, id, true) => (
                "PUBREC",
                v5_0::Pubrec::builder()
                    .packet_id(id)
                    .build()
                    .map(Into::into),
            ),
            (Qos::ExactlyOnce, id, false) => (
                "PUBREC",
                v3_1_1::Pubrec::builder()
                    .packet_id(id)
                    .build()
                    .map(Into::into),
            ),
            (Qos::AtMostOnce, _, _) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::connection::Conn;
    use crate::broker::fuzzing;
    use crate::broker::lifecycle::{self, Claim};

    /// A QoS 1 PUBLISH whose PUBACK cannot be built (packet identifier 0: the
    /// frame scan refuses it before the codec, so only a broker bug gets here)
    /// closes the connection instead of leaving the client waiting for it.
    #[tokio::test]
    async fn an_acknowledgement_that_cannot_be_built_closes_the_connection() {
        let broker = fuzzing::broker();
        let shared = broker.shared().clone();
        let (_client, io) = tokio::io::duplex(1024);
        let mut conn = Conn::new(shared.clone(), io, "test".into(), 1, None);
        let Claim::Attached { session, .. } =
            lifecycle::claim(&shared, Some("c"), "admin", true, 1)
        else {
            panic!("admin may claim a session");
        };
        conn.attach("admin", session, None, true);
        let msg = Message {
            topic: "a/b".into(),
            payload: Arc::from(&b"x"[..]),
            qos: Qos::AtLeastOnce,
            retain: false,
            props: Vec::new(),
            expires_at: None,
            origin: Arc::from("c"),
        };
        conn.on_publish(msg, Some(0));
        assert_eq!(conn.end, Some(End::Abnormal));
        assert!(conn.traffic.out.is_empty(), "nothing half-built was sent");
    }
}
