//! A CONNECT, independent of protocol version: what the handshake acts on.

use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0, GenericPacket, Packet, Property, Qos};
use mqtt_protocol_core::mqtt::Version;

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

/// What a CONNECT asks for; None for any other packet.
pub fn connect_info(p: &Packet) -> Option<ConnectInfo> {
    match p {
        GenericPacket::V3_1_1Connect(c) => Some(ConnectInfo::v3(c)),
        GenericPacket::V5_0Connect(c) => Some(ConnectInfo::v5(c)),
        _ => None,
    }
}
