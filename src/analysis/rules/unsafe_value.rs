//! ## What it does
//! Reports a client whose authentication name or attribute value, substituted into a
//! template it is granted, would contain `/`, `+`, `#` or start with `$`. The finding
//! names the client and the value.
//!
//! ## Why is this bad?
//! Such a value would change the template's shape: `clients/$<client.authenticationName>/status`
//! with the name `a/+` would grant `clients/a/+/status`, or with `#` every topic
//! under `clients/`. topicgate never substitutes such a value (the template grants
//! that client nothing, semantics.md §3), so the client is refused at the broker.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { authenticationName: "sensor/1" }
//! topicSpaces:
//!   status: { topicTemplates: [ "clients/$<client.authenticationName>/status" ] }
//! ```

use super::super::Context;
use crate::compiler::compiled::variable_value;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::model::Permission;
use crate::diag::span::Span;
use crate::topic::{is_safe_value, Var};

/// A topic space using a variable: its id, and the span and text of its first template using it.
type TemplateUse = (u32, Span, String);

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    // For each variable used by some template: the first template using it in each space.
    let vars: Vec<(Var, Vec<TemplateUse>)> = cx
        .policy
        .index
        .vars
        .iter()
        .map(|v| {
            let users = policy
                .topic_spaces
                .iter()
                .enumerate()
                .filter_map(|(s, space)| {
                    space.templates.iter().find(|t| t.value.variables().any(|x| x == v)).map(|t| (s as u32, t.span, t.value.to_string()))
                })
                .collect();
            (v.clone(), users)
        })
        .collect();
    for (id, client) in policy.clients.iter().enumerate() {
        let profile = cx.policy.profile_of(id as u32);
        for (var, users) in &vars {
            let Some(value) = variable_value(client, var) else { continue };
            if is_safe_value(&value) {
                continue;
            }
            let granted = users.iter().find(|(s, _, _)| {
                [Permission::Publisher, Permission::Subscriber].iter().any(|p| match p {
                    Permission::Publisher => profile.publish.contains(*s),
                    Permission::Subscriber => profile.subscribe.contains(*s),
                })
            });
            let Some((_, template_span, template)) = granted else { continue };
            let (what, span) = match var {
                Var::AuthenticationName => ("authentication name".to_string(), client.authentication_name.span),
                Var::Attribute(k) => (format!("attribute `{k}`"), client.attributes.get(k).map(|a| a.span).unwrap_or(client.name.span)),
            };
            out.push(
                Diagnostic::new(
                    Code::UnsafeValue,
                    format!("client `{}` has {what} `{value}`, which would change the shape of template `{template}`", client.name.value),
                )
                .at(span)
                .label("contains `/`, `+`, `#` or starts with `$`")
                .related(*template_span, "substituted here")
                .help("values substituted into templates may not contain `/`, `+`, `#` or start with `$`; the template grants this client nothing"),
            );
        }
    }
}
