//! The options a client chose for one subscription (MQTT 5 §3.8.3.1). A leaf
//! type: the session keeps them per filter and the router per subscriber.

use mqtt_protocol_core::mqtt::packet::{Qos, RetainHandling};

/// Options a client chose for one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    /// Granted QoS.
    pub qos: Qos,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    pub subscription_id: Option<u32>,
}
