//! After a policy reload (`crate::broker::reload`), what only the connection
//! holds: copies routed before the swap are checked again before they are
//! sent, and the client and its will are re-authorized (semantics.md §4,
//! "Policy reload", decision 0023).

use super::Conn;
use crate::broker::message::Delivery;
use crate::broker::stats::DropReason;
use crate::decisions::access::AccessPolicy;
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A copy routed before the last policy reload finished, for a topic that
    /// no subscription of the session matches any more: dropped (counted as
    /// `revoked`). Costs one atomic load for every other copy.
    pub(super) fn revoked_since_routed(&self, d: &Delivery) -> bool {
        if d.epoch == self.shared.router.epoch() {
            return false;
        }
        let Some(client) = &self.client else {
            return false;
        };
        if client.session.receives(&d.msg.topic) {
            return false;
        }
        self.shared.stats.drop_message(DropReason::Revoked);
        true
    }

    /// After a policy reload (or a CONNECT decided under the policy a reload
    /// replaced): a client the policy in force no longer knows or enables is
    /// disconnected; a will it no longer allows is discarded.
    pub(super) fn recheck_after_reload(&mut self) {
        if self.end.is_some() {
            return;
        }
        let policy = self.shared.policy.current();
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let known = policy.lookup_client(&client.auth_name);
        let Some(c) = known.filter(|c| policy.is_enabled(*c)) else {
            let why = if known.is_some() {
                "is disabled"
            } else {
                "is no longer in the policy"
            };
            self.disconnect_revoked(&*policy, why);
            return;
        };
        let Some(will) = &client.will else { return };
        let verdict = policy.may_publish(c, &will.msg.topic);
        if !verdict.allowed {
            warn!(
                client = %client.auth_name, client_id = %client.client_id, action = "will",
                topic = %will.msg.topic, reason = %verdict.reason,
                "will discarded: the reloaded policy no longer allows it"
            );
            client.will = None;
            crate::broker::durable::will_discarded(&self.shared, &client.client_id);
            self.shared.stats.wills_dropped.inc();
        }
    }

    /// DISCONNECT 0x87 with a reason naming the reload (3.1.1: close).
    fn disconnect_revoked(&mut self, policy: &dyn AccessPolicy, why: &str) {
        let Some(client) = &self.client else { return };
        let hash = policy.policy_hash();
        let short = hash.get(..12).unwrap_or(&hash);
        let reason = format!(
            "policy reloaded (sha256 {short}): client `{}` {why}",
            client.auth_name
        );
        info!(client = %client.auth_name, client_id = %client.client_id, reason = %reason, "disconnecting");
        self.server_disconnect(DisconnectReasonCode::NotAuthorized, Some(&reason));
    }
}
