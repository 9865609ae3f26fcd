//! ## What it does
//! Reports a client whose will topic it may not publish to, and names the bindings
//! that grant that topic to other clients (and why not to this one).
//!
//! ## Why is this bad?
//! The broker authorizes the will at CONNECT as a publish by the client
//! (semantics.md §4-§5): a will it may not publish makes the broker refuse the
//! connection with Not authorized (CONNACK 0x87 in MQTT 5, 0x05 in MQTT 3.1.1). The
//! device never connects at all.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor2:
//!     attributes: { type: sensor }
//!     will: { topic: clients/sensor1/status }     # sensor1's topic
//! topicSpaces:
//!   lwt-pub: { topicTemplates: [ "clients/$<client.authenticationName>/status" ] }
//! ```
//! Use instead: `clients/sensor2/status`, or grant the topic to the client.

use super::super::candidates::{candidates, own_topic, why_not};
use super::super::Context;
use crate::decisions::DenyKind;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::model::Permission;
use crate::topic::validate_name;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    for (id, c) in policy.clients.iter().enumerate() {
        let Some(will) = &c.will else { continue };
        let topic = &will.topic.value;
        // Disabled clients cannot connect at all; invalid topics have their own rule.
        if !c.is_enabled() || validate_name(topic).is_err() {
            continue;
        }
        let decision = cx.policy.decide_connect(id as u32, Some(topic));
        if decision.allowed {
            continue;
        }
        let why = match decision.deny {
            Some(DenyKind::ReservedTopic) => "topics starting with `$` are reserved for the broker".to_string(),
            _ => format!("no publisher binding grants it to `{}`", c.name.value),
        };
        let mut d = Diagnostic::new(
            Code::WillNotPermitted,
            format!("client `{}` may not publish its will topic `{topic}`: the broker would refuse CONNECT with Not authorized", c.name.value),
        )
        .at(will.topic.span)
        .label(why);
        let found = candidates(cx, Permission::Publisher, topic, false);
        for cand in &found {
            let b = &policy.bindings[cand.binding as usize];
            d = d.related(b.name.span, why_not(cx, id as u32, cand));
        }
        let member = found.iter().find(|cand| cx.policy.is_member(id as u32, policy.bindings[cand.binding as usize].group.value));
        d = d.help(match (member, found.first()) {
            (Some(cand), _) => match own_topic(cx, id as u32, cand) {
                Some(own) => format!("`{}` may publish `{own}`: use its own topic as its will", c.name.value),
                None => format!("`{}` has no value for the variables of the matching template; give it one", c.name.value),
            },
            (None, Some(cand)) => {
                let b = &policy.bindings[cand.binding as usize];
                format!(
                    "binding `{}` grants `{topic}` to group `{}`; put `{}` in that group, or use a will topic the client may publish",
                    b.name.value, policy.groups[b.group.value as usize].name.value, c.name.value
                )
            }
            (None, None) => format!(
                "no binding grants `{topic}` to anyone; add a template matching it to a topic space bound with `publisher` to a group of `{}`",
                c.name.value
            ),
        });
        out.push(d);
    }
}
