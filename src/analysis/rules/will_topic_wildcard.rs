//! ## What it does
//! Reports a will topic that is not a valid topic name: one with the wildcards `+`
//! or `#`, an empty one, or one with U+0000.
//!
//! ## Why is this bad?
//! A will is published to its topic like any message, and a topic name cannot hold
//! wildcards: the broker refuses the CONNECT that carries it (MQTT 3.1.1 §3.1.2.5,
//! MQTT 5 §3.1.3.3), so the client can never connect with this will.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1:
//!     will: { topic: clients/+/status }
//! ```
//! Use instead: `clients/sensor1/status`.

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::topic::validate_name;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    for c in &cx.resolved().clients {
        let Some(will) = &c.will else { continue };
        if let Err(e) = validate_name(&will.topic.value) {
            out.push(
                Diagnostic::new(Code::WillTopicWildcard, format!("will topic `{}` of client `{}` is not a topic name: {}", will.topic.value, c.name.value, e.message))
                    .at(cx.inner(will.topic.span, &will.topic.value, (e.at.0, e.at.1.max(e.at.0 + 1))))
                    .label("the broker would refuse CONNECT")
                    .help("a will topic is one topic name, such as `clients/sensor1/status`; wildcards belong in subscriptions"),
            );
        }
    }
}
