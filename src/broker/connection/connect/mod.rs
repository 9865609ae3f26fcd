//! CONNECT (semantics.md §4-§6), one step at a time: who the client is, whether
//! its will is allowed, its client identifier, the session it claims, then the
//! CONNACK (`connack`). Each step that refuses sends the refusing CONNACK and
//! ends the connection.

mod connack;
mod info;

pub use info::{connect_info, ConnectInfo};

use super::packet_ids::PacketIds;
use super::{log_denial, Conn};
use crate::broker::config::IdentityMode;
use crate::broker::durable;
use crate::broker::lifecycle::{self, Claim};
use crate::broker::message::{qos_u8, Message};
use crate::broker::session::{Offline, Session};
use crate::broker::stats::{Action, DenialCode};
use crate::broker::store::StoreError;
use crate::broker::will::Will;
use crate::decisions::access::{AccessPolicy, ClientId, PasswordCheck, RefusalKind};
use crate::topic;
use connack::{Accepted, Refusal};
use mqtt_protocol_core::mqtt::packet::Property;
use mqtt_protocol_core::mqtt::Version;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// Takeover waits: the old connection is asked to leave, and waited for this
/// long this many times before the CONNECT is refused as busy.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);
const TAKEOVER_ATTEMPTS: u32 = 3;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(in crate::broker::connection) async fn on_connect(&mut self, info: ConnectInfo) {
        let (policy, decided_under) = self.shared.policy.current_with_generation();
        let Some(client) = self.authenticate(&*policy, &info) else {
            return;
        };
        let auth_name = policy.authentication_name(client).to_string();
        if !self.client_enabled(&*policy, client, &auth_name, &info)
            || !self.will_allowed(&*policy, client, &auth_name, &info)
            || !self.client_id_acceptable(&info)
        {
            return;
        }
        let requested = (!info.client_id.is_empty()).then_some(info.client_id.as_str());
        let Some((session, present, prior)) =
            self.claim_session(&info, requested, &auth_name).await
        else {
            return;
        };
        let client_id = session.client_id.clone();
        let will = self.will_of(&info, &client_id, &auth_name);
        let granted_expiry = self.grant_expiry(&info, &session);
        // A persistent session is in the store before CONNACK says so, and so
        // is the connection's will (semantics.md §11); a new session replaces
        // whatever the store held under its client ID.
        let written = durable::connected(&self.shared, &session, present, will.as_ref());
        // Attached at once, before anything that could fail or panic: from here
        // the connection's end (even by a panic) releases the claim (`Conn::drop`).
        self.attach(&auth_name, session.clone(), will, info.request_problem_info);
        // A reload that swapped the policy after this CONNECT was decided may
        // have scanned the sessions before this one attached: the connection
        // re-authorizes itself (client, will) right after CONNACK.
        if self.shared.policy.generation() != decided_under {
            session.policy_changed();
        }
        if let Some(written) = written {
            if let Err(e) = written.wait().await {
                self.refuse_unstored(&info, &session, prior, &e);
                return;
            }
        }
        if present {
            self.restore_inflight(&session, info.version);
        }
        let accepted = Accepted {
            present,
            assigned: requested.is_none().then_some(&*client_id),
            granted_expiry: (granted_expiry != info.session_expiry).then_some(granted_expiry),
        };
        self.accept(&info, &accepted);
        info!(
            client = %auth_name, client_id = %client_id, version = ?info.version,
            clean_start = info.clean_start, session_present = present, peer = %self.peer,
            "client connected"
        );
        self.shared.events.connected(&auth_name, &client_id);
    }

    /// The session or the will could not be stored: the CONNECT is refused
    /// (MQTT 5 0x88 Server unavailable, 3.1.1 0x03; decision 0031) and leaves
    /// nothing behind: the session goes back to what it was, the will is
    /// dropped unpublished (it belongs to an accepted connection only).
    fn refuse_unstored(
        &mut self,
        info: &ConnectInfo,
        session: &Arc<Session>,
        prior: Option<Offline>,
        error: &StoreError,
    ) {
        warn!(
            client_id = %session.client_id, peer = %self.peer, error = %error,
            "CONNECT refused: the store could not be written"
        );
        // Taken before the release: the connection was never accepted, so
        // its end must not publish the will nor detach a second time.
        self.client = None;
        lifecycle::refused(&self.shared, session, self.conn_id, prior);
        let reason = "the broker could not store the session".to_string();
        self.refuse(info, Refusal::Unavailable, Some(reason));
    }

    /// Step 1, identity: the TLS client certificate if there is one, else the
    /// listener's identity mode.
    fn authenticate(&mut self, policy: &dyn AccessPolicy, info: &ConnectInfo) -> Option<ClientId> {
        let identified = match self.certificate.as_deref() {
            Some(peer) => policy
                .authenticate_certificate(peer, info.username.as_deref())
                .map_err(|r| {
                    let why = match r.kind {
                        RefusalKind::NotAccepted => Refusal::NotAuthorized,
                        RefusalKind::UsernameMismatch => Refusal::BadCredentials,
                    };
                    (why, r.detail.clone(), r.client_reason().to_string())
                }),
            None => self
                .identify(policy, info)
                .map_err(|r| (Refusal::BadCredentials, r.clone(), r)),
        };
        match identified {
            Ok(c) => Some(c),
            Err((why, logged, told)) => {
                let who = info.username.as_deref().unwrap_or_default();
                log_denial(who, &info.client_id, "connect", "", &logged);
                self.shared.stats.denied(Action::Connect, why.denial_code());
                self.refuse(info, why, Some(told));
                None
            }
        }
    }

    /// Who the client is, by the listener's identity mode.
    fn identify(&self, policy: &dyn AccessPolicy, info: &ConnectInfo) -> Result<ClientId, String> {
        match &self.shared.identity {
            IdentityMode::Password => {
                let Some(user) = &info.username else {
                    return Err("a username and password are required".into());
                };
                let Some(client) = policy.lookup_client(user) else {
                    return Err("bad username or password".into());
                };
                let Some(pw) = &info.password else {
                    return Err("bad username or password".into());
                };
                match policy.verify_password(client, pw) {
                    PasswordCheck::Valid => Ok(client),
                    PasswordCheck::Invalid => Err("bad username or password".into()),
                    PasswordCheck::NotConfigured => {
                        Err("the client has no password configured".into())
                    }
                }
            }
            IdentityMode::Dev { anonymous } => {
                let name = match (&info.username, anonymous) {
                    (Some(u), _) => u.as_str(),
                    (None, Some(a)) => a.as_str(),
                    (None, None) => return Err("a username is required".into()),
                };
                policy
                    .lookup_client(name)
                    .ok_or_else(|| "unknown client".to_string())
            }
        }
    }

    /// A known client that the policy disables is refused.
    fn client_enabled(
        &mut self,
        policy: &dyn AccessPolicy,
        client: ClientId,
        auth_name: &str,
        info: &ConnectInfo,
    ) -> bool {
        if policy.is_enabled(client) {
            return true;
        }
        let reason = "the client is disabled".to_string();
        log_denial(auth_name, &info.client_id, "connect", "", &reason);
        self.shared
            .stats
            .denied(Action::Connect, DenialCode::NotAuthorized);
        self.refuse(info, Refusal::NotAuthorized, Some(reason));
        false
    }

    /// Step 2, the will: supported, well-formed, and authorized now.
    fn will_allowed(
        &mut self,
        policy: &dyn AccessPolicy,
        client: ClientId,
        auth_name: &str,
        info: &ConnectInfo,
    ) -> bool {
        let Some(w) = &info.will else {
            return true;
        };
        let refusal = if qos_u8(w.qos) > self.shared.config.max_qos {
            Some((Refusal::QosNotSupported, None))
        } else if w.retain && !self.shared.config.retain_available {
            Some((Refusal::RetainNotSupported, None))
        } else if topic::validate_name(&w.topic).is_err() {
            Some((Refusal::TopicNameInvalid, None))
        } else if let Err(e) = self.shared.config.topic_limits().check(&w.topic) {
            Some((Refusal::TopicNameInvalid, Some(format!("will topic: {e}"))))
        } else {
            // The policy also refuses `$` topics.
            let verdict = policy.may_publish(client, &w.topic);
            (!verdict.allowed).then(|| {
                log_denial(
                    auth_name,
                    &info.client_id,
                    "will",
                    &w.topic,
                    &verdict.reason,
                );
                self.shared
                    .stats
                    .denied(Action::Will, DenialCode::NotAuthorized);
                let reason = format!(
                    "will topic `{}` is not allowed: {}",
                    w.topic, verdict.reason
                );
                (Refusal::NotAuthorized, Some(reason))
            })
        };
        match refusal {
            None => true,
            Some((why, reason)) => {
                self.refuse(info, why, reason);
                false
            }
        }
    }

    /// Step 3, the client identifier: an empty one is assigned with the
    /// session, except to a 3.1.1 client that asks to resume a session.
    fn client_id_acceptable(&mut self, info: &ConnectInfo) -> bool {
        if info.client_id.is_empty() && info.version == Version::V3_1_1 && !info.clean_start {
            self.refuse(info, Refusal::IdentifierRejected, None);
            return false;
        }
        true
    }

    /// Step 4, the session: only the same authentication name may take it
    /// over; a connection that holds it is asked to leave and waited for.
    async fn claim_session(
        &mut self,
        info: &ConnectInfo,
        requested: Option<&str>,
        auth_name: &str,
    ) -> Option<(Arc<Session>, bool, Option<Offline>)> {
        let mut attempts = 0;
        let claim = loop {
            match lifecycle::claim(
                &self.shared,
                requested,
                auth_name,
                info.clean_start,
                self.conn_id,
            ) {
                Claim::Wait(held) => {
                    attempts += 1;
                    // Bounded: a connection that does not let go is refused below.
                    let _detached_or_timed_out =
                        tokio::time::timeout(TAKEOVER_WAIT, held.detached()).await;
                    if attempts > TAKEOVER_ATTEMPTS {
                        // The old connection did not let go (e.g. stuck writing).
                        let reason = "the session is still held by another connection".to_string();
                        self.refuse(info, Refusal::Busy, Some(reason));
                        return None;
                    }
                }
                other => break other,
            }
        };
        let (why, reason) = match claim {
            Claim::Attached {
                session,
                present,
                prior,
            } => return Some((session, present, prior)),
            Claim::WrongOwner | Claim::Wait(_) => {
                let reason = "the client ID is in use by another authentication name".to_string();
                log_denial(auth_name, &info.client_id, "connect", "", &reason);
                self.shared
                    .stats
                    .denied(Action::Connect, DenialCode::NotAuthorized);
                (Refusal::NotAuthorized, reason)
            }
            Claim::TooManySessions { limit } => {
                let reason = format!(
                    "the client already holds {limit} sessions (maxSessionsPerAuthenticationName)"
                );
                log_denial(auth_name, &info.client_id, "connect", "", &reason);
                (Refusal::QuotaExceeded, reason)
            }
            Claim::NoIdentifier => (
                Refusal::Busy,
                "no client identifier could be assigned".to_string(),
            ),
        };
        self.refuse(info, why, Some(reason));
        None
    }

    /// The connection's will, as a message of `client_id`. Its Message Expiry
    /// Interval starts when it is published, not now.
    fn will_of(&self, info: &ConnectInfo, client_id: &str, auth_name: &str) -> Option<Will> {
        let w = info.will.as_ref()?;
        let (props, _) = Message::from_props(&w.props);
        let expiry = w.props.iter().find_map(|p| match p {
            Property::MessageExpiryInterval(m) => Some(m.val()),
            _ => None,
        });
        Some(Will {
            msg: Message {
                topic: w.topic.clone(),
                payload: Arc::from(w.payload.as_slice()),
                qos: w.qos,
                retain: w.retain,
                props,
                expires_at: None,
                origin: Arc::from(client_id),
            },
            expiry,
            delay: w.delay.min(self.shared.config.max_will_delay),
            auth_name: auth_name.to_string(),
        })
    }

    /// Sets the session's expiry: the one asked for, capped by the config (a
    /// 3.1.1 persistent session gets the cap). Returns the granted one the
    /// CONNACK reports.
    fn grant_expiry(&self, info: &ConnectInfo, session: &Session) -> u32 {
        let max = self.shared.config.max_session_expiry;
        let granted = info.session_expiry.min(max);
        let expiry = if info.session_expiry == u32::MAX && info.version == Version::V3_1_1 {
            max
        } else {
            granted
        };
        session.set_expiry(expiry);
        session.set_protocol(if info.version == Version::V5_0 { 5 } else { 4 });
        granted
    }

    /// Step 5: restores the unacknowledged QoS 1/2 state of a resumed session.
    fn restore_inflight(&mut self, session: &Session, version: Version) {
        if let Some(inflight) = session.take_inflight(version) {
            self.inflight_out = inflight.packets.len();
            let rare = self.rare();
            rare.stored_out = inflight.stored;
            rare.qos2_open = inflight.qos2_handled.iter().copied().collect();
            // 3.1.1: the connection gives out the identifiers (decision 0035);
            // those of the packets the codec resends are the codec's until it
            // releases them.
            if version == Version::V3_1_1 && !inflight.packets.is_empty() {
                let mut ids = PacketIds::new(self.window());
                for p in &inflight.packets {
                    ids.restored_in_codec(p.packet_id());
                }
                self.packet_ids = Some(Box::new(ids));
            }
            match self.mqtt.live() {
                Ok(codec) => {
                    codec.restore_packets(inflight.packets);
                    codec.restore_qos2_publish_handled(inflight.qos2_handled);
                }
                Err(e) => self.codec_lost(&e),
            }
        }
    }
}
