//! Swapping the policy while clients are connected: what the new policy no
//! longer allows stops at once (semantics.md §4, "Policy reload", decision 0023).
//!
//! The swap and the revocation of subscriptions happen under the router's
//! write lock, and the router's epoch moves only when both are done. So:
//! - no PUBLISH is routed while the trie still holds a revoked subscription
//!   under the new policy;
//! - a copy routed before the swap carries the old epoch, and the receiving
//!   connection checks it against the session's subscriptions again before
//!   sending it ([`Conn::revoked_since_routed`]);
//! - a SUBSCRIBE decided under the old policy cannot slip into the trie after
//!   the revocation (`Router::subscribe_at` refuses a stale epoch).
//!
//! Connections then re-authorize what only they hold (the client itself and
//! its will) when woken: a client no longer allowed gets DISCONNECT 0x87 with
//! a reason naming the change (3.1.1: the connection is closed).

use super::connection::Conn;
use super::session::Delivery;
use super::state::Shared;
use super::stats::DropReason;
use crate::decisions::access::AccessPolicy;
use crate::topic;
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// What one policy swap revoked at once. Clients disconnected and their wills
/// follow when their connections wake (counted there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revocation {
    /// Subscriptions removed because the new policy no longer grants them.
    pub subscriptions: usize,
    /// Delayed wills of offline sessions discarded because the new policy
    /// no longer allows them.
    pub pending_wills: usize,
    /// Sessions whose client the new policy no longer knows or enables.
    pub clients: usize,
}

/// Puts `policy` in force (counted as a reload) and revokes, in every session, what it no longer
/// grants. Blocks routing for the time of the revocation (a loop over the
/// sessions and their subscriptions, without I/O): call it off the async
/// workers (`spawn_blocking`) when there are many sessions.
pub fn apply(shared: &Shared, policy: Arc<dyn AccessPolicy>) -> Revocation {
    let mut report = Revocation::default();
    let mut trie = shared.router.begin_reload();
    shared.policy.replace(policy);
    let (policy, generation) = shared.policy.current_with_generation();
    let sessions = shared.sessions.all();
    for session in &sessions {
        let client = policy
            .lookup_client(&session.auth_name)
            .filter(|c| policy.is_enabled(*c));
        if client.is_none() {
            report.clients += 1;
        }
        for raw in session.subscription_filters() {
            let Ok(sub) = topic::parse_subscription(&raw) else {
                continue;
            };
            let verdict = client.map(|c| policy.may_subscribe(c, sub.filter));
            if verdict.as_ref().is_some_and(|v| v.allowed) {
                continue;
            }
            let reason = verdict
                .map(|v| v.reason)
                .unwrap_or_else(|| "the client is no longer allowed".into());
            warn!(
                client = %session.auth_name, client_id = %session.client_id, action = "subscribe",
                topic = %raw, reason = %reason, "subscription revoked by the new policy"
            );
            session.remove_subscription(&raw);
            trie.unsubscribe(&session.client_id, &sub);
            report.subscriptions += 1;
        }
        let discarded = session.discard_pending_will_unless(|w| {
            client.is_some_and(|c| policy.may_publish(c, &w.msg.topic).allowed)
        });
        if discarded {
            warn!(
                client = %session.auth_name, client_id = %session.client_id, action = "will",
                "delayed will discarded: the new policy no longer allows it"
            );
            report.pending_wills += 1;
        }
    }
    trie.finish(generation);
    // Outside the lock: the connections re-authorize their client and will.
    for session in &sessions {
        session.policy_changed();
    }
    let stats = &shared.stats;
    stats.policy_reloads_ok.inc();
    stats.subscriptions_revoked.add(report.subscriptions as u64);
    stats.wills_dropped.add(report.pending_wills as u64);
    report
}

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
