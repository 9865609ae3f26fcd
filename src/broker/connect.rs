//! CONNECT: identity, will authorization, session claim and CONNACK (semantics.md §4-§6).

use super::config::IdentityMode;
use super::connection::{log_denial, Conn, End};
use super::durable;
use super::message::{qos_u8, Message};
use super::session::Claim;
use super::stats::{Action, DenialCode};
use super::will::Will;
use crate::decisions::access::{AccessPolicy, ClientId, PasswordCheck, RefusalKind};
use crate::topic;
use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, AssignedClientIdentifier, MaximumPacketSize, MaximumQos, Property, Qos,
    ReasonString, ReceiveMaximum, RetainAvailable, ServerKeepAlive, SessionExpiryInterval,
    SharedSubscriptionAvailable, SubscriptionIdentifierAvailable, TopicAliasMaximum,
    WildcardSubscriptionAvailable,
};
use mqtt_protocol_core::mqtt::result_code::{ConnectReasonCode, ConnectReturnCode, MqttError};
use mqtt_protocol_core::mqtt::Version;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// A CONNECT, independent of protocol version.
pub struct ConnectInfo {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub will: Option<WillSpec>,
    pub session_expiry: u32,
    pub request_problem_info: bool,
    /// MQTT 5: the client's Maximum Packet Size (`u32::MAX` when absent).
    pub maximum_packet_size: u32,
}

/// The will as sent in CONNECT.
pub struct WillSpec {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    pub props: Vec<Property>,
    pub delay: u32,
}

impl ConnectInfo {
    pub fn v3(c: &v3_1_1::Connect) -> Self {
        let will = c.will_topic().map(|t| WillSpec {
            topic: t.to_string(),
            payload: c.will_payload().unwrap_or_default().to_vec(),
            qos: c.will_qos(),
            retain: c.will_retain(),
            props: Vec::new(),
            delay: 0,
        });
        ConnectInfo {
            version: Version::V3_1_1,
            client_id: c.client_id().to_string(),
            clean_start: c.clean_session(),
            keep_alive: c.keep_alive(),
            username: c.user_name().map(str::to_string),
            password: c.password().map(<[u8]>::to_vec),
            will,
            session_expiry: if c.clean_session() { 0 } else { u32::MAX },
            request_problem_info: true,
            maximum_packet_size: u32::MAX,
        }
    }

    pub fn v5(c: &v5_0::Connect) -> Self {
        let will = c.will_topic().map(|t| {
            let delay = c
                .will_props()
                .iter()
                .find_map(|p| match p {
                    Property::WillDelayInterval(d) => Some(d.val()),
                    _ => None,
                })
                .unwrap_or(0);
            WillSpec {
                topic: t.to_string(),
                payload: c.will_payload().unwrap_or_default().to_vec(),
                qos: c.will_qos(),
                retain: c.will_retain(),
                props: c.will_props().clone(),
                delay,
            }
        });
        let mut session_expiry = 0;
        let mut request_problem_info = true;
        let mut maximum_packet_size = u32::MAX;
        for p in c.props() {
            match p {
                Property::SessionExpiryInterval(v) => session_expiry = v.val(),
                Property::RequestProblemInformation(v) => request_problem_info = v.val() != 0,
                Property::MaximumPacketSize(v) => maximum_packet_size = v.val(),
                _ => {}
            }
        }
        ConnectInfo {
            version: Version::V5_0,
            client_id: c.client_id().to_string(),
            clean_start: c.clean_start(),
            keep_alive: c.keep_alive(),
            username: c.user_name().map(str::to_string),
            password: c.password().map(<[u8]>::to_vec),
            will,
            session_expiry,
            request_problem_info,
            maximum_packet_size,
        }
    }
}

/// Why a CONNECT is refused, mapped to each version's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadCredentials,
    NotAuthorized,
    IdentifierRejected,
    QosNotSupported,
    RetainNotSupported,
    TopicNameInvalid,
    Busy,
    /// `maxSessionsPerAuthenticationName` reached.
    QuotaExceeded,
}

impl Refusal {
    /// The denial metric's reason code of an identity refusal.
    fn denial_code(self) -> DenialCode {
        match self {
            Refusal::BadCredentials => DenialCode::BadCredentials,
            _ => DenialCode::NotAuthorized,
        }
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) async fn on_connect(&mut self, info: ConnectInfo) {
        let policy = self.shared.policy.current();
        let who = info.username.clone().unwrap_or_default();

        // 1. Identity: the TLS client certificate if there is one, else the
        // listener's identity mode.
        let identified = match &self.certificate {
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
                .identify(&*policy, &info)
                .map_err(|r| (Refusal::BadCredentials, r.clone(), r)),
        };
        let client = match identified {
            Ok(c) => c,
            Err((why, logged, told)) => {
                log_denial(&who, &info.client_id, "connect", "", &logged);
                self.shared.stats.denied(Action::Connect, why.denial_code());
                return self.refuse(&info, why, Some(told));
            }
        };
        let auth_name = policy.authentication_name(client).to_string();
        if !policy.is_enabled(client) {
            let reason = "the client is disabled".to_string();
            log_denial(&auth_name, &info.client_id, "connect", "", &reason);
            self.shared
                .stats
                .denied(Action::Connect, DenialCode::NotAuthorized);
            return self.refuse(&info, Refusal::NotAuthorized, Some(reason));
        }

        // 2. The will: supported, well-formed, and authorized now.
        if let Some(w) = &info.will {
            if qos_u8(w.qos) > self.shared.config.max_qos {
                return self.refuse(&info, Refusal::QosNotSupported, None);
            }
            if w.retain && !self.shared.config.retain_available {
                return self.refuse(&info, Refusal::RetainNotSupported, None);
            }
            if topic::validate_name(&w.topic).is_err() {
                return self.refuse(&info, Refusal::TopicNameInvalid, None);
            }
            if let Err(e) = self.shared.config.topic_limits().check(&w.topic) {
                let reason = format!("will topic: {e}");
                return self.refuse(&info, Refusal::TopicNameInvalid, Some(reason));
            }
            // The policy also refuses `$` topics.
            let verdict = policy.may_publish(client, &w.topic);
            if !verdict.allowed {
                let reason = format!(
                    "will topic `{}` is not allowed: {}",
                    w.topic, verdict.reason
                );
                log_denial(
                    &auth_name,
                    &info.client_id,
                    "will",
                    &w.topic,
                    &verdict.reason,
                );
                self.shared
                    .stats
                    .denied(Action::Will, DenialCode::NotAuthorized);
                return self.refuse(&info, Refusal::NotAuthorized, Some(reason));
            }
        }

        // 3. Client ID: an empty one is assigned with the session (step 4).
        if info.client_id.is_empty() && info.version == Version::V3_1_1 && !info.clean_start {
            return self.refuse(&info, Refusal::IdentifierRejected, None);
        }
        let requested = (!info.client_id.is_empty()).then_some(info.client_id.as_str());

        // 4. The session: only the same authentication name may take it over.
        let mut attempts = 0;
        let claim = loop {
            match self.shared.sessions.claim(
                &self.shared,
                requested,
                &auth_name,
                info.clean_start,
                self.conn_id,
            ) {
                Claim::Wait(held) => {
                    attempts += 1;
                    let _ = tokio::time::timeout(Duration::from_secs(5), held.detached()).await;
                    if attempts > 3 {
                        // The old connection did not let go (e.g. stuck writing).
                        let reason = "the session is still held by another connection".to_string();
                        return self.refuse(&info, Refusal::Busy, Some(reason));
                    }
                }
                other => break other,
            }
        };
        let (session, present) = match claim {
            Claim::Attached { session, present } => (session, present),
            Claim::WrongOwner | Claim::Wait(_) => {
                let reason = "the client ID is in use by another authentication name".to_string();
                log_denial(&auth_name, &info.client_id, "connect", "", &reason);
                self.shared
                    .stats
                    .denied(Action::Connect, DenialCode::NotAuthorized);
                return self.refuse(&info, Refusal::NotAuthorized, Some(reason));
            }
            Claim::TooManySessions { limit } => {
                let reason = format!(
                    "the client already holds {limit} sessions (maxSessionsPerAuthenticationName)"
                );
                log_denial(&auth_name, &info.client_id, "connect", "", &reason);
                return self.refuse(&info, Refusal::QuotaExceeded, Some(reason));
            }
            Claim::NoIdentifier => {
                let reason = "no client identifier could be assigned".to_string();
                return self.refuse(&info, Refusal::Busy, Some(reason));
            }
        };
        let client_id = session.client_id.clone();
        let assigned = requested.is_none().then(|| client_id.clone());
        let will = info.will.as_ref().map(|w| {
            // The will's Message Expiry Interval starts when it is published, not now.
            let (props, _) = Message::from_props(&w.props);
            let expiry = w.props.iter().find_map(|p| match p {
                Property::MessageExpiryInterval(m) => Some(m.val()),
                _ => None,
            });
            Will {
                msg: Message {
                    topic: w.topic.clone(),
                    payload: Arc::from(w.payload.as_slice()),
                    qos: w.qos,
                    retain: w.retain,
                    props,
                    expires_at: None,
                    origin: Arc::from(client_id.as_str()),
                },
                expiry,
                delay: w.delay.min(self.shared.config.max_will_delay),
                auth_name: auth_name.clone(),
            }
        });
        let granted_expiry = info
            .session_expiry
            .min(self.shared.config.max_session_expiry);
        let expiry = if info.session_expiry == u32::MAX && info.version == Version::V3_1_1 {
            self.shared.config.max_session_expiry
        } else {
            granted_expiry
        };
        session.set_expiry(expiry);
        session.set_protocol(if info.version == Version::V5_0 { 5 } else { 4 });
        // Attached at once, before anything that could fail or panic: from here
        // the connection's end (even by a panic) releases the claim (`Conn::drop`).
        self.attach(
            client_id.clone(),
            auth_name.clone(),
            session.clone(),
            will,
            info.request_problem_info,
        );

        // 5. Restore unacknowledged QoS 1/2 state of a resumed session.
        if present {
            if let Some(inflight) = session.take_inflight(info.version) {
                self.inflight_out = inflight.packets.len();
                self.stored_out = inflight.stored;
                self.qos2_open = inflight.qos2_handled.iter().copied().collect();
                self.mqtt.restore_packets(inflight.packets);
                self.mqtt
                    .restore_qos2_publish_handled(inflight.qos2_handled);
            }
        }

        // A persistent session is in the store before CONNACK says so; a new
        // one replaces whatever the store held under its client ID.
        if let Some(written) = durable::connected(&self.shared, &session, present) {
            if let Err(e) = written.wait().await {
                warn!(client_id = %client_id, error = %e, "session not stored: the store could not be written");
            }
        }

        // 6. CONNACK.
        match info.version {
            Version::V5_0 => {
                let cfg = &self.shared.config;
                // What the client must know: our limits (explicit, so that the size
                // below is the size sent), its assigned ID, what we changed.
                let mut required: Vec<Property> = Vec::new();
                let push = |to: &mut Vec<Property>, p: Result<Property, MqttError>| {
                    if let Ok(p) = p {
                        to.push(p);
                    }
                };
                push(
                    &mut required,
                    MaximumPacketSize::new(cfg.max_packet_size).map(Into::into),
                );
                push(
                    &mut required,
                    ReceiveMaximum::new(cfg.receive_maximum).map(Into::into),
                );
                if let Some(id) = &assigned {
                    push(
                        &mut required,
                        AssignedClientIdentifier::new(id.as_str()).map(Into::into),
                    );
                }
                if cfg.max_keep_alive > 0
                    && (info.keep_alive == 0 || info.keep_alive > cfg.max_keep_alive)
                {
                    push(
                        &mut required,
                        ServerKeepAlive::new(cfg.max_keep_alive).map(Into::into),
                    );
                }
                if cfg.max_qos < 2 {
                    push(&mut required, MaximumQos::new(cfg.max_qos).map(Into::into));
                }
                if !cfg.retain_available {
                    push(&mut required, RetainAvailable::new(0).map(Into::into));
                }
                if granted_expiry != info.session_expiry {
                    push(
                        &mut required,
                        SessionExpiryInterval::new(granted_expiry).map(Into::into),
                    );
                }
                // What may be left out, last first: the three "available" flags say
                // what their absence says; without Topic Alias Maximum the client
                // sends no aliases (MQTT 5 §3.2.2.3.8).
                let mut optional: Vec<Property> = Vec::new();
                push(
                    &mut optional,
                    TopicAliasMaximum::new(cfg.topic_alias_maximum).map(Into::into),
                );
                push(
                    &mut optional,
                    WildcardSubscriptionAvailable::new(1).map(Into::into),
                );
                push(
                    &mut optional,
                    SharedSubscriptionAvailable::new(1).map(Into::into),
                );
                push(
                    &mut optional,
                    SubscriptionIdentifierAvailable::new(1).map(Into::into),
                );
                let connack = fitting_connack(
                    ConnectReasonCode::Success,
                    present,
                    required,
                    optional,
                    info.maximum_packet_size,
                );
                self.send_connack(connack);
            }
            _ => {
                let connack = v3_1_1::Connack::builder()
                    .session_present(present)
                    .return_code(ConnectReturnCode::Accepted)
                    .build();
                self.send_built("CONNACK", connack);
            }
        }
        info!(
            client = %auth_name, client_id = %client_id, version = ?info.version,
            clean_start = info.clean_start, session_present = present, peer = %self.peer,
            "client connected"
        );
        self.shared.events.connected(&auth_name, &client_id);
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

    /// Sends the refusing CONNACK (or closes, for what 3.1.1 cannot say) and ends.
    fn refuse(&mut self, info: &ConnectInfo, why: Refusal, reason: Option<String>) {
        self.shared.stats.connections_refused.inc();
        match info.version {
            Version::V5_0 => {
                let code = match why {
                    Refusal::BadCredentials => ConnectReasonCode::BadUserNameOrPassword,
                    Refusal::NotAuthorized => ConnectReasonCode::NotAuthorized,
                    Refusal::IdentifierRejected => ConnectReasonCode::ClientIdentifierNotValid,
                    Refusal::QosNotSupported => ConnectReasonCode::QosNotSupported,
                    Refusal::RetainNotSupported => ConnectReasonCode::RetainNotSupported,
                    Refusal::TopicNameInvalid => ConnectReasonCode::TopicNameInvalid,
                    Refusal::Busy => ConnectReasonCode::ServerBusy,
                    Refusal::QuotaExceeded => ConnectReasonCode::QuotaExceeded,
                };
                // The reason string is left out if it does not fit (§3.2.2.3.9).
                let optional = reason
                    .and_then(|r| ReasonString::new(r).ok())
                    .map(Into::into)
                    .into_iter()
                    .collect();
                let connack =
                    fitting_connack(code, false, Vec::new(), optional, info.maximum_packet_size);
                self.send_connack(connack);
            }
            _ => {
                let code = match why {
                    Refusal::BadCredentials => Some(ConnectReturnCode::BadUserNameOrPassword),
                    // 3.1.1 has no quota code: the identity may not have one more session.
                    Refusal::NotAuthorized | Refusal::QuotaExceeded => {
                        Some(ConnectReturnCode::NotAuthorized)
                    }
                    Refusal::IdentifierRejected => Some(ConnectReturnCode::IdentifierRejected),
                    Refusal::Busy => Some(ConnectReturnCode::ServerUnavailable),
                    // 3.1.1 has no code for these: close the connection.
                    _ => None,
                };
                if let Some(code) = code {
                    let c = v3_1_1::Connack::builder()
                        .session_present(false)
                        .return_code(code)
                        .build();
                    self.send_built("CONNACK", c);
                }
            }
        }
        self.end.get_or_insert(End::Abnormal);
    }

    /// Sends a CONNACK from [`fitting_connack`], or closes when even its
    /// required properties exceed the client's Maximum Packet Size (nothing
    /// else could tell the client what it must know).
    fn send_connack(&mut self, connack: Result<v5_0::Connack, MqttError>) {
        if let Err(MqttError::PacketTooLarge) = connack {
            info!(peer = %self.peer, "the client's Maximum Packet Size is too small for our CONNACK: closing");
            self.end.get_or_insert(End::Abnormal);
            return;
        }
        self.send_built("CONNACK", connack);
    }
}

/// An MQTT 5 CONNACK within the client's Maximum Packet Size `limit`: the
/// `optional` properties are left out, last first, until it fits (MQTT 5
/// §3.1.2.11.4 and §3.2.2.3: what would exceed it is not sent);
/// `Err(PacketTooLarge)` when the `required` ones alone do not fit.
fn fitting_connack(
    code: ConnectReasonCode,
    present: bool,
    required: Vec<Property>,
    mut optional: Vec<Property>,
    limit: u32,
) -> Result<v5_0::Connack, MqttError> {
    loop {
        let props: Vec<Property> = required.iter().chain(&optional).cloned().collect();
        let mut b = v5_0::Connack::builder()
            .session_present(present)
            .reason_code(code);
        if !props.is_empty() {
            b = b.props(props);
        }
        let connack = b.build()?;
        if connack.size() <= limit as usize {
            return Ok(connack);
        }
        if optional.pop().is_none() {
            return Err(MqttError::PacketTooLarge);
        }
    }
}
