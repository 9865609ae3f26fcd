//! One lifecycle event: the change a connection reports (a session connected
//! or disconnected, and why) and its CloudEvents shape. A leaf: the sinks and
//! the connections both use it.

use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::oneshot;

pub const CONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionConnected";
pub const DISCONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionDisconnected";

/// Why a session disconnected: Event Grid's `disconnectionReason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DisconnectionReason {
    ClientAuthenticationError,
    ClientAuthorizationError,
    ClientError,
    ClientInitiatedDisconnect,
    ConnectionLost,
    QuotaExceeded,
    ServerError,
    ServerInitiatedDisconnect,
    SessionOverflow,
    SessionTakenOver,
}

impl DisconnectionReason {
    /// The reason behind a DISCONNECT the broker sends (or would send, to a 3.1.1 client).
    pub fn of_server_code(code: DisconnectReasonCode) -> Self {
        use DisconnectReasonCode as C;
        match code {
            C::SessionTakenOver => Self::SessionTakenOver,
            C::NotAuthorized => Self::ClientAuthorizationError,
            C::ServerShuttingDown
            | C::AdministrativeAction
            | C::ServerBusy
            | C::UseAnotherServer
            | C::ServerMoved => Self::ServerInitiatedDisconnect,
            C::KeepAliveTimeout => Self::ConnectionLost,
            C::QuotaExceeded | C::MessageRateTooHigh | C::ConnectionRateExceeded => {
                Self::QuotaExceeded
            }
            C::UnspecifiedError | C::ImplementationSpecificError => Self::ServerError,
            _ => Self::ClientError,
        }
    }
}

/// One lifecycle change, as a connection reports it (cheap to build).
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub(super) disconnected: Option<DisconnectionReason>,
    pub(super) auth_name: String,
    pub(super) client_id: String,
    pub(super) sequence: u64,
    pub(super) time: OffsetDateTime,
}

/// What a sink puts in every event besides the change.
#[derive(Clone)]
pub(super) struct Shape {
    pub(super) namespace: String,
    pub(super) source: String,
}

/// What a sink's queue carries.
pub(super) enum Msg {
    Change(Change),
    /// Write everything before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// A CloudEvents 1.0 event in structured JSON mode.
#[derive(Serialize)]
pub(super) struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    subject: String,
    datacontenttype: &'static str,
    data: EventData<'a>,
}

/// The `data` of Event Grid's MQTT client session events.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventData<'a> {
    namespace_name: &'a str,
    client_authentication_name: &'a str,
    client_session_name: &'a str,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnection_reason: Option<DisconnectionReason>,
}

pub(super) fn cloud_event<'a>(
    namespace: &'a str,
    source: &'a str,
    c: &'a Change,
) -> CloudEvent<'a> {
    CloudEvent {
        specversion: "1.0",
        id: c.sequence.to_string(),
        time: c.time.format(&Rfc3339).unwrap_or_default(),
        kind: if c.disconnected.is_some() {
            DISCONNECTED
        } else {
            CONNECTED
        },
        source,
        subject: format!("clients/{}/sessions/{}", c.auth_name, c.client_id),
        datacontenttype: "application/json",
        data: EventData {
            namespace_name: namespace,
            client_authentication_name: &c.auth_name,
            client_session_name: &c.client_id,
            sequence_number: c.sequence,
            disconnection_reason: c.disconnected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;

    #[test]
    fn disconnect_codes_map_to_event_grid_reasons() {
        use DisconnectReasonCode as C;
        let r = DisconnectionReason::of_server_code;
        assert_eq!(
            r(C::SessionTakenOver),
            DisconnectionReason::SessionTakenOver
        );
        assert_eq!(
            r(C::NotAuthorized),
            DisconnectionReason::ClientAuthorizationError
        );
        assert_eq!(
            r(C::ServerShuttingDown),
            DisconnectionReason::ServerInitiatedDisconnect
        );
        assert_eq!(r(C::KeepAliveTimeout), DisconnectionReason::ConnectionLost);
        assert_eq!(r(C::ProtocolError), DisconnectionReason::ClientError);
        assert_eq!(r(C::QuotaExceeded), DisconnectionReason::QuotaExceeded);
    }

    #[test]
    fn events_have_event_grid_fields() {
        let c = Change {
            disconnected: Some(DisconnectionReason::ConnectionLost),
            auth_name: "client1".into(),
            client_id: "session1".into(),
            sequence: 7,
            time: OffsetDateTime::UNIX_EPOCH,
        };
        let v = serde_json::to_value(cloud_event("myns", "/namespaces/myns", &c)).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], DISCONNECTED);
        assert_eq!(v["subject"], "clients/client1/sessions/session1");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["namespaceName"], "myns");
        assert_eq!(v["data"]["clientAuthenticationName"], "client1");
        assert_eq!(v["data"]["clientSessionName"], "session1");
        assert_eq!(v["data"]["sequenceNumber"], 7);
        assert_eq!(v["data"]["disconnectionReason"], "ConnectionLost");
    }
}
