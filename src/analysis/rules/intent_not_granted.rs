//! ## What it does
//! Checks each client's declared intents: every filter under `publishes` must be
//! covered by a template the client may publish to, and every filter under
//! `subscribes` must be one the client may subscribe to. A denied intent names the
//! bindings that grant it to others, and why not to this client.
//!
//! ## Why is this bad?
//! The intents say what the device will do once deployed. An intent the policy does
//! not grant is a device that will be refused with Not authorized (or disconnected,
//! in MQTT 3.1.1) the first time it tries.
//!
//! ## Example
//! ```yaml
//! clients:
//!   actuator1:
//!     attributes: { type: actuator }
//!     subscribes: [ "clients/#" ]      # only `clients/+/status` is granted
//! ```

use super::super::candidates::{candidates, why_not};
use super::super::Context;
use crate::compiler::compiled::ClientId;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::model::Permission;
use crate::diag::span::Sp;
use crate::topic::{is_reserved, is_shared, parse_subscription, validate_filter};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    for (id, c) in cx.resolved().clients.iter().enumerate() {
        let id = id as ClientId;
        for intent in &c.publishes {
            if let Some(reason) = publish_denied(cx, id, &intent.value) {
                out.push(finding(cx, id, intent, Permission::Publisher, reason));
            }
        }
        for intent in &c.subscribes {
            let d = cx.policy.decide_subscribe(id, &intent.value);
            if !d.allowed {
                out.push(finding(cx, id, intent, Permission::Subscriber, d.reason));
            }
        }
    }
}

/// Why `client` may not publish to every topic `filter` matches, if it may not.
fn publish_denied(cx: &Context, client: ClientId, filter: &str) -> Option<String> {
    let c = cx.policy.client(client);
    if !c.is_enabled() {
        return Some(format!("client `{}` is disabled", c.name.value));
    }
    if is_shared(filter) {
        return Some("`$share/` is for subscriptions".into());
    }
    if let Err(e) = validate_filter(filter) {
        return Some(format!("invalid filter: {}", e.message));
    }
    if is_reserved(filter) {
        return Some("topics starting with `$` are reserved for the broker".into());
    }
    let data = &cx.policy.clients[client as usize];
    let profile = cx.policy.profile_of(client);
    let found = cx.policy.index.find_subscribe(filter, &data.values, &|t| profile.publish.contains(cx.policy.template_ref(t).space));
    found.is_none().then(|| format!("no publisher binding grants every topic of `{filter}` to `{}`", c.authentication_name.value))
}

fn finding(cx: &Context, client: ClientId, intent: &Sp<String>, permission: Permission, reason: String) -> Diagnostic {
    let name = &cx.policy.client(client).name.value;
    let verb = match permission {
        Permission::Publisher => "publishes to",
        Permission::Subscriber => "subscribes to",
    };
    let mut d = Diagnostic::new(Code::IntentNotGranted, format!("client `{name}` {verb} `{}`, which the policy does not grant", intent.value))
        .at(intent.span)
        .label(reason);
    let inner = parse_subscription(&intent.value).map_or(intent.value.as_str(), |s| s.filter);
    let found = candidates(cx, permission, inner, true);
    for cand in &found {
        d = d.related(cx.resolved().bindings[cand.binding as usize].name.span, why_not(cx, client, cand));
    }
    d.help(if found.is_empty() {
        format!("bind a topic space containing `{inner}` with `{}` to a group of `{name}`, or remove the intent", permission.as_str())
    } else {
        "add the client to the group of a binding that grants it, or change the intent".to_string()
    })
}
