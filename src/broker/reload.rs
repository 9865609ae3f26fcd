//! Swapping the policy while clients are connected: what the new policy no
//! longer allows stops at once.

use super::session::Kick;
use super::state::Shared;
use crate::topic;
use tracing::warn;

/// After a policy swap: drops every subscription the policy in force no longer
/// grants, and disconnects (MQTT 5: DISCONNECT 0x87) clients that are gone or
/// Disabled. Publishes and wills are checked per decision anyway.
pub fn revalidate(shared: &Shared) {
    let policy = shared.policy.current();
    for session in shared.sessions.all() {
        let client = policy
            .lookup_client(&session.auth_name)
            .filter(|c| policy.is_enabled(*c));
        let mut revoked = false;
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
            shared.router.unsubscribe(&session.client_id, &sub);
            revoked = true;
        }
        if revoked {
            super::durable::session_changed(shared, &session);
        }
        if client.is_none() {
            session.kick(Kick::NotAuthorized);
        }
    }
}
