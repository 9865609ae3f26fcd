//! SUBSCRIBE and UNSUBSCRIBE: per-filter authorization (semantics.md §4),
//! subscription options and retained messages.

use super::{log_denial, Conn, End};
use crate::broker::message::{qos_from_u8, qos_u8};
use crate::broker::router::StaleEpoch;
use crate::broker::stats::{Action, DenialCode};
use crate::broker::sub_options::SubOptions;
use crate::topic;
use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, Property, Qos, ReasonString, RetainHandling, SubEntry,
};
use mqtt_protocol_core::mqtt::result_code::{
    DisconnectReasonCode, SubackReasonCode, SubackReturnCode, UnsubackReasonCode,
};
use tokio::io::{AsyncRead, AsyncWrite};

/// The outcome for one filter of a SUBSCRIBE.
enum Outcome {
    Granted(Qos),
    NotAuthorized(String),
    Invalid,
    Quota,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn on_subscribe_v3(&mut self, s: &v3_1_1::Subscribe) {
        // 3.1.1 §3.8.3.1: the upper 6 bits of the options byte are reserved (0).
        if s.entries()
            .iter()
            .any(|e| e.sub_opts().to_buffer()[0] & 0xFC != 0)
        {
            self.shared.stats.protocol_errors.inc();
            self.end.get_or_insert(End::Abnormal);
            return;
        }
        let Some(outcomes) = self.subscribe_all(s.entries(), None) else {
            return;
        };
        let codes = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Granted(Qos::AtMostOnce) => SubackReturnCode::SuccessMaximumQos0,
                Outcome::Granted(Qos::AtLeastOnce) => SubackReturnCode::SuccessMaximumQos1,
                Outcome::Granted(Qos::ExactlyOnce) => SubackReturnCode::SuccessMaximumQos2,
                _ => SubackReturnCode::Failure,
            })
            .collect();
        let suback = v3_1_1::Suback::builder()
            .packet_id(s.packet_id())
            .return_codes(codes)
            .build();
        self.send_built("SUBACK", suback);
        self.send_retained(s.entries(), &outcomes, None);
    }

    pub(super) fn on_subscribe_v5(&mut self, s: &v5_0::Subscribe) {
        let sub_id = s.props().iter().find_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v.val()),
            _ => None,
        });
        let Some(outcomes) = self.subscribe_all(s.entries(), sub_id) else {
            return;
        };
        let mut reasons = Vec::new();
        let codes = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Granted(Qos::AtMostOnce) => SubackReasonCode::GrantedQos0,
                Outcome::Granted(Qos::AtLeastOnce) => SubackReasonCode::GrantedQos1,
                Outcome::Granted(Qos::ExactlyOnce) => SubackReasonCode::GrantedQos2,
                Outcome::NotAuthorized(r) => {
                    reasons.push(r.clone());
                    SubackReasonCode::NotAuthorized
                }
                Outcome::Invalid => SubackReasonCode::TopicFilterInvalid,
                Outcome::Quota => SubackReasonCode::QuotaExceeded,
            })
            .collect();
        let mut b = v5_0::Suback::builder()
            .packet_id(s.packet_id())
            .reason_codes(codes);
        let rpi = self.client.as_ref().is_some_and(|c| c.request_problem_info);
        if rpi && !reasons.is_empty() {
            // The reason string only explains: one too long for the field is left out.
            if let Ok(r) = ReasonString::new(reasons.join("; ")) {
                b = b.props(vec![r.into()]);
            }
        }
        self.send_built("SUBACK", b.build());
        self.send_retained(s.entries(), &outcomes, sub_id);
    }

    /// Decides and records each filter. None when the packet ended the connection.
    fn subscribe_all(&mut self, entries: &[SubEntry], sub_id: Option<u32>) -> Option<Vec<Outcome>> {
        let client = self.client.as_ref()?;
        let session = client.session.clone();
        let auth_name = client.auth_name.clone();
        let client_id = client.client_id.clone();
        let mut outcomes = Vec::with_capacity(entries.len());
        for e in entries {
            let raw = e.topic_filter();
            let opts = e.sub_opts();
            if self
                .shared
                .config
                .topic_limits()
                .check_subscription(raw)
                .is_err()
            {
                outcomes.push(Outcome::Invalid);
                continue;
            }
            let Ok(sub) = topic::parse_subscription(raw) else {
                outcomes.push(Outcome::Invalid);
                continue;
            };
            if sub.share.is_some() && opts.nl() {
                // MQTT 5 §3.8.3.1: No Local on a shared subscription is a protocol error.
                self.server_disconnect(DisconnectReasonCode::ProtocolError, None);
                return None;
            }
            let granted = qos_from_u8(qos_u8(opts.qos()).min(self.shared.config.max_qos));
            let so = SubOptions {
                qos: granted,
                no_local: opts.nl(),
                retain_as_published: opts.rap(),
                retain_handling: opts.rh(),
                subscription_id: sub_id,
            };
            let outcome = self.grant(&session, &sub, raw, so);
            if let Outcome::NotAuthorized(reason) = &outcome {
                self.shared
                    .stats
                    .denied(Action::Subscribe, DenialCode::NotAuthorized);
                log_denial(&auth_name, &client_id, "subscribe", raw, reason);
            }
            outcomes.push(outcome);
        }
        // Written before SUBACK goes out; ordered before any message that
        // will be acknowledged for the new subscriptions.
        crate::broker::durable::session_changed(&self.shared, &session);
        Some(outcomes)
    }

    /// Authorizes one filter under the policy in force and records it. A
    /// policy reload between the decision and the trie makes the router refuse
    /// it (`subscribe_at`): it is decided again under the new policy, a
    /// bounded number of times (reloads are rare; three in a row during one
    /// SUBSCRIBE mean something is reloading in a loop).
    fn grant(
        &mut self,
        session: &std::sync::Arc<crate::broker::session::Session>,
        sub: &topic::SubFilter<'_>,
        raw: &str,
        so: SubOptions,
    ) -> Outcome {
        let Some(client) = self.client.as_ref() else {
            return Outcome::NotAuthorized("the client is not connected".into());
        };
        let auth_name = client.auth_name.clone();
        for _ in 0..3 {
            let (policy, generation) = self.shared.policy.current_with_generation();
            let verdict = match policy
                .lookup_client(&auth_name)
                .filter(|c| policy.is_enabled(*c))
            {
                Some(c) => policy.may_subscribe(c, sub.filter),
                None => crate::decisions::access::Verdict::deny("the client is not allowed"),
            };
            if !verdict.allowed {
                return Outcome::NotAuthorized(format!(
                    "subscribe to `{raw}` is not allowed: {}",
                    verdict.reason
                ));
            }
            let max = self.shared.config.max_subscriptions_per_session;
            if session.add_subscription(raw, so, max).is_none() {
                return Outcome::Quota;
            }
            match self
                .shared
                .router
                .subscribe_at(session, sub, so, generation)
            {
                Ok(existed) => {
                    self.rare().subscribed_new.push(!existed);
                    return Outcome::Granted(so.qos);
                }
                Err(StaleEpoch) => continue,
            }
        }
        // The trie never took it: neither may the session keep it.
        session.remove_subscription(raw);
        Outcome::NotAuthorized(format!(
            "subscribe to `{raw}`: the policy was being reloaded; subscribe again"
        ))
    }

    /// Owes newly granted filters their retained messages, per Retain Handling;
    /// they are sent as flow control allows (see `retained_delivery`).
    fn send_retained(&mut self, entries: &[SubEntry], outcomes: &[Outcome], sub_id: Option<u32>) {
        let Some(session) = self.client.as_ref().map(|c| c.session.clone()) else {
            return;
        };
        let mut owed = false;
        let mut fresh = std::mem::take(&mut self.rare().subscribed_new).into_iter();
        for (e, o) in entries.iter().zip(outcomes) {
            let Outcome::Granted(granted) = o else {
                continue;
            };
            let is_new = fresh.next().unwrap_or(true);
            let Ok(sub) = topic::parse_subscription(e.topic_filter()) else {
                continue;
            };
            if sub.share.is_some() {
                continue;
            }
            let send = match e.sub_opts().rh() {
                RetainHandling::SendRetained => true,
                RetainHandling::SendRetainedIfNotExists => is_new,
                RetainHandling::DoNotSendRetained => false,
            };
            if !send || !self.shared.config.retain_available {
                continue;
            }
            let cursor = self.shared.retained.cursor(sub.filter);
            session.start_retained(cursor, *granted, sub_id);
            owed = true;
        }
        if owed {
            self.retained_owed();
            self.drain_pending();
        }
    }

    pub(super) fn on_unsubscribe_v3(&mut self, u: &v3_1_1::Unsubscribe) {
        for f in u.entries() {
            self.unsubscribe_one(f.as_str());
        }
        let unsuback = v3_1_1::Unsuback::builder().packet_id(u.packet_id()).build();
        self.send_built("UNSUBACK", unsuback);
    }

    pub(super) fn on_unsubscribe_v5(&mut self, u: &v5_0::Unsubscribe) {
        let codes = u
            .entries()
            .iter()
            .map(|f| {
                let over_limit = self
                    .shared
                    .config
                    .topic_limits()
                    .check_subscription(f.as_str())
                    .is_err();
                if over_limit {
                    UnsubackReasonCode::TopicFilterInvalid
                } else if self.unsubscribe_one(f.as_str()) {
                    UnsubackReasonCode::Success
                } else {
                    UnsubackReasonCode::NoSubscriptionExisted
                }
            })
            .collect();
        let unsuback = v5_0::Unsuback::builder()
            .packet_id(u.packet_id())
            .reason_codes(codes)
            .build();
        self.send_built("UNSUBACK", unsuback);
    }

    fn unsubscribe_one(&mut self, raw: &str) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        let Ok(sub) = topic::parse_subscription(raw) else {
            return false;
        };
        let had = client.session.remove_subscription(raw);
        self.shared.router.unsubscribe(&client.client_id, &sub);
        if had {
            crate::broker::durable::session_changed(&self.shared, &client.session);
        }
        had
    }
}
