//! Last Will and Testament (semantics.md §5): what a will is. A leaf type:
//! when one is published is the session lifecycle's business
//! (`broker::lifecycle`).

use super::message::Message;

/// A will taken from CONNECT, owned by exactly one network connection.
#[derive(Debug, Clone)]
pub struct Will {
    /// The message, with `origin` set to the client ID and its MQTT 5 properties.
    pub msg: Message,
    /// MQTT 5 Will Delay Interval in seconds (already capped by the config).
    pub delay: u32,
    /// MQTT 5 Message Expiry Interval of the will, counted from when it is published.
    pub expiry: Option<u32>,
    /// The authentication name it was authorized for at CONNECT.
    pub auth_name: String,
}
