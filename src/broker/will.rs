//! Last Will and Testament (semantics.md §5): what a will is, and firing one.

use super::message::Message;
use super::state::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

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

/// Publishes `will` as if its client had published it, after authorizing it
/// again against the policy in force now. A will no longer allowed is dropped.
pub fn fire(shared: &Shared, will: Will) {
    let policy = shared.policy.current();
    let topic = will.msg.topic.as_str();
    // The policy also refuses disabled clients and `$` topics.
    let denied = match policy.lookup_client(&will.auth_name) {
        None => Some("the client is no longer in the policy".to_string()),
        Some(c) => {
            let v = policy.may_publish(c, topic);
            (!v.allowed).then_some(v.reason)
        }
    };
    if let Some(reason) = denied {
        shared.stats.wills_dropped.inc();
        warn!(
            client = %will.auth_name, client_id = %will.msg.origin, action = "will",
            topic, reason = %reason, "will dropped at fire time: no longer authorized"
        );
        return;
    }
    shared.stats.wills_published.inc();
    info!(client = %will.auth_name, client_id = %will.msg.origin, topic, "publishing will");
    let mut msg = will.msg;
    if let Some(secs) = will.expiry {
        msg.expires_at = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
    }
    // Nobody to hold back: a will that finds a full mailbox is dropped. Nobody
    // waits for the store either: the will's copies are written ahead anyway.
    let _written = shared.publish(Arc::new(msg), None);
}
