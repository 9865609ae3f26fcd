//! Swapping the policy while clients are connected: what the new policy no
//! longer allows stops at once (semantics.md §4, "Policy reload", decision 0023).
//!
//! The swap and the revocation of subscriptions happen under the router's
//! write lock, and the router's epoch moves only when both are done. So:
//! - no PUBLISH is routed while the trie still holds a revoked subscription
//!   under the new policy;
//! - a copy routed before the swap carries the old epoch, and the receiving
//!   connection checks it against the session's subscriptions again before
//!   sending it (`connection::revocation`);
//! - a SUBSCRIBE decided under the old policy cannot slip into the trie after
//!   the revocation (`Router::subscribe_at` refuses a stale epoch).
//!
//! Connections then re-authorize what only they hold (the client itself and
//! its will) when woken (`connection::revocation`): a client no longer allowed
//! gets DISCONNECT 0x87 with a reason naming the change (3.1.1: the connection
//! is closed).

use super::state::Shared;
use crate::decisions::access::AccessPolicy;
use crate::topic;
use std::sync::Arc;
use tracing::warn;

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
