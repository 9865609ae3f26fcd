//! CONNACK: the accepting one with what the client must know of our limits,
//! and the refusing one with each version's code; both within the client's
//! Maximum Packet Size.

use super::info::ConnectInfo;
use crate::broker::connection::{Conn, End};
use crate::broker::stats::DenialCode;
use mqtt_protocol_core::mqtt::packet::{
    v3_1_1, v5_0, AssignedClientIdentifier, MaximumPacketSize, MaximumQos, Property, ReasonString,
    ReceiveMaximum, RetainAvailable, ServerKeepAlive, SessionExpiryInterval,
    SharedSubscriptionAvailable, SubscriptionIdentifierAvailable, TopicAliasMaximum,
    WildcardSubscriptionAvailable,
};
use mqtt_protocol_core::mqtt::result_code::{ConnectReasonCode, ConnectReturnCode, MqttError};
use mqtt_protocol_core::mqtt::Version;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

/// Why a CONNECT is refused, mapped to each version's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    BadCredentials,
    NotAuthorized,
    IdentifierRejected,
    QosNotSupported,
    RetainNotSupported,
    TopicNameInvalid,
    Busy,
    /// `maxSessionsPerAuthenticationName` reached.
    QuotaExceeded,
    /// The broker cannot serve the CONNECT now (its store failed).
    Unavailable,
}

impl Refusal {
    /// The denial metric's reason code of an identity refusal.
    pub(super) fn denial_code(self) -> DenialCode {
        match self {
            Refusal::BadCredentials => DenialCode::BadCredentials,
            _ => DenialCode::NotAuthorized,
        }
    }
}

/// What an accepting CONNACK tells the client besides success.
pub(super) struct Accepted<'a> {
    pub present: bool,
    /// The identifier the broker assigned, when the client sent none.
    pub assigned: Option<&'a str>,
    /// The session expiry granted, when it differs from the one asked for.
    pub granted_expiry: Option<u32>,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Sends the accepting CONNACK.
    pub(super) fn accept(&mut self, info: &ConnectInfo, accepted: &Accepted<'_>) {
        if info.version != Version::V5_0 {
            let connack = v3_1_1::Connack::builder()
                .session_present(accepted.present)
                .return_code(ConnectReturnCode::Accepted)
                .build();
            return self.send_built("CONNACK", connack);
        }
        let connack = self
            .limits_told(info, accepted)
            .and_then(|(required, optional)| {
                fitting_connack(
                    ConnectReasonCode::Success,
                    accepted.present,
                    required,
                    optional,
                    info.maximum_packet_size,
                )
            });
        self.send_connack(connack);
    }

    /// MQTT 5: the CONNACK's properties. Required: our limits (explicit, so
    /// that the size checked is the size sent), the assigned identifier,
    /// what we changed. Optional, left out last first when the CONNACK would
    /// not fit: the three "available" flags say what their absence says;
    /// without Topic Alias Maximum the client sends no aliases (MQTT 5
    /// §3.2.2.3.8). A property that cannot be built fails the CONNACK.
    fn limits_told(
        &self,
        info: &ConnectInfo,
        accepted: &Accepted<'_>,
    ) -> Result<(Vec<Property>, Vec<Property>), MqttError> {
        let cfg = &self.shared.config;
        let mut required: Vec<Property> = vec![
            MaximumPacketSize::new(cfg.max_packet_size)?.into(),
            ReceiveMaximum::new(cfg.receive_maximum)?.into(),
        ];
        if let Some(id) = accepted.assigned {
            required.push(AssignedClientIdentifier::new(id)?.into());
        }
        if cfg.max_keep_alive > 0 && (info.keep_alive == 0 || info.keep_alive > cfg.max_keep_alive)
        {
            required.push(ServerKeepAlive::new(cfg.max_keep_alive)?.into());
        }
        if cfg.max_qos < 2 {
            required.push(MaximumQos::new(cfg.max_qos)?.into());
        }
        if !cfg.retain_available {
            required.push(RetainAvailable::new(0)?.into());
        }
        if let Some(granted) = accepted.granted_expiry {
            required.push(SessionExpiryInterval::new(granted)?.into());
        }
        let optional: Vec<Property> = vec![
            TopicAliasMaximum::new(cfg.topic_alias_maximum)?.into(),
            WildcardSubscriptionAvailable::new(1)?.into(),
            SharedSubscriptionAvailable::new(1)?.into(),
            SubscriptionIdentifierAvailable::new(1)?.into(),
        ];
        Ok((required, optional))
    }

    /// Sends the refusing CONNACK (or closes, for what 3.1.1 cannot say) and ends.
    pub(super) fn refuse(&mut self, info: &ConnectInfo, why: Refusal, reason: Option<String>) {
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
                    Refusal::Unavailable => ConnectReasonCode::ServerUnavailable,
                };
                // The reason string is left out if it does not fit (§3.2.2.3.9), or
                // cannot be one (it is only ever explanation).
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
                    Refusal::Busy | Refusal::Unavailable => {
                        Some(ConnectReturnCode::ServerUnavailable)
                    }
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
