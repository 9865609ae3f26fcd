//! ## What it does
//! Warns when other clients may publish to a client's will topic, and names them.
//!
//! ## Why is this bad?
//! Subscribers take a message on the will topic as the client's last word ("sensor1
//! is gone"). If others may publish there, any of them can forge it, by mistake or on
//! purpose, and make actuators stop for a sensor that is still running.
//!
//! ## Example
//! ```yaml
//! topicSpaces:
//!   status: { topicTemplates: [ "clients/+/status" ] }   # every sensor may publish every status
//! permissionBindings:
//!   sensors-pub: { clientGroup: sensors, topicSpace: status, permission: publisher }
//! ```
//! Use instead: `clients/$<client.authenticationName>/status`.

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

const NAMED: usize = 3;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    for (id, c) in policy.clients.iter().enumerate() {
        let Some(will) = &c.will else { continue };
        if !c.is_enabled() || !cx.policy.decide_connect(id as u32, Some(&will.topic.value)).allowed {
            continue;
        }
        let (others, more) = cx.publishers().who(cx, &will.topic.value, id as u32, NAMED);
        if others.is_empty() {
            continue;
        }
        let total = if more { others.len() + 1 } else { others.len() };
        let names = if more { format!("{} and others", cx.name_list(&others, others.len())) } else { cx.name_list(&others, total) };
        out.push(
            Diagnostic::new(Code::WillForgeable, format!("will topic `{}` of `{}` may also be published by {names}: they can forge its will", will.topic.value, c.name.value))
                .at(will.topic.span)
                .label("others may publish here")
                .help("grant each client only its own status, e.g. with the template `clients/$<client.authenticationName>/status`"),
        );
    }
}
