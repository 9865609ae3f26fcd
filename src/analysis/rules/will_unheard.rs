//! ## What it does
//! Warns when no other enabled client may subscribe to a client's will topic.
//!
//! ## Why is this bad?
//! The will is published only to subscribers authorized for it (semantics.md §5): if
//! nobody may subscribe, the will announces the client's disappearance to no one, and
//! the clients that should react (actuators, dashboards) never learn of it.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1:
//!     attributes: { type: sensor }
//!     will: { topic: clients/sensor1/status }
//! # ...but no topic space containing `clients/sensor1/status` is bound with
//! # `subscriber` to any group.
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    for (id, c) in policy.clients.iter().enumerate() {
        let Some(will) = &c.will else { continue };
        // Wills that cannot be sent are reported by other rules.
        if !c.is_enabled() || !cx.policy.decide_connect(id as u32, Some(&will.topic.value)).allowed {
            continue;
        }
        let (found, _) = cx.subscribers().who(cx, &will.topic.value, id as u32, 1);
        if found.is_empty() {
            out.push(
                Diagnostic::new(Code::WillUnheard, format!("no other client may subscribe to will topic `{}` of `{}`: nobody hears it", will.topic.value, c.name.value))
                    .at(will.topic.span)
                    .label("no subscriber is authorized")
                    .help("bind a topic space with a template containing this topic (e.g. `clients/+/status`) with `subscriber` to the clients that should be told"),
            );
        }
    }
}
