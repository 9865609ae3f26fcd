//! ## What it does
//! Reports what goes beyond Azure Event Grid's limits (semantics.md §1): more than 10
//! client groups, 10 topic spaces, 10 templates in a topic space, 100 permission
//! bindings or 10 CA certificates in a namespace; client attributes of 4 KB or more; more than 2 allowed
//! thumbprints; and password authentication, which Event Grid does not offer. These
//! are warnings for the local broker and errors with `--target eventgrid`.
//!
//! ## Why is this bad?
//! The local broker goes beyond these limits, but the same policy cannot be deployed
//! to an Event Grid namespace: the deployment fails, or the clients that rely on the
//! feature cannot authenticate.
//!
//! ## Example
//! ```yaml
//! topicSpaces:
//!   telemetry:
//!     topicTemplates: [ t/1, t/2, t/3, t/4, t/5, t/6, t/7, t/8, t/9, t/10, t/11 ]
//! ```

use super::super::{Context, Target};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::model::AttrValue;
use crate::diag::span::Span;

pub const MAX_GROUPS: usize = 10;
pub const MAX_TOPIC_SPACES: usize = 10;
pub const MAX_TEMPLATES: usize = 10;
pub const MAX_BINDINGS: usize = 100;
pub const MAX_ATTRIBUTE_BYTES: usize = 4096;
pub const MAX_THUMBPRINTS: usize = 2;
pub const MAX_CA_CERTIFICATES: usize = 10;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    let mut limit = |span: Span, message: String, help: &str| {
        out.push(Diagnostic::new(Code::EventGridLimit, message).severity(cx.compatibility_severity()).at(span).label("beyond the limit").help(help));
    };
    let groups: Vec<_> = policy.groups.iter().filter(|g| !g.is_builtin()).collect();
    if let Some(g) = groups.get(MAX_GROUPS) {
        limit(g.name.span, format!("{} client groups; Event Grid allows {MAX_GROUPS} per namespace", groups.len()), "merge groups with broader queries");
    }
    if let Some(s) = policy.topic_spaces.get(MAX_TOPIC_SPACES) {
        limit(s.name.span, format!("{} topic spaces; Event Grid allows {MAX_TOPIC_SPACES} per namespace", policy.topic_spaces.len()), "merge topic spaces");
    }
    for s in &policy.topic_spaces {
        if let Some(t) = s.templates.get(MAX_TEMPLATES) {
            limit(t.span, format!("topic space `{}` has {} templates; Event Grid allows {MAX_TEMPLATES}", s.name.value, s.templates.len()), "split the topic space or use wildcards");
        }
    }
    if let Some(b) = policy.bindings.get(MAX_BINDINGS) {
        limit(b.name.span, format!("{} permission bindings; Event Grid allows {MAX_BINDINGS} per namespace", policy.bindings.len()), "bind broader groups");
    }
    if let Some(ca) = policy.ca_certificates.get(MAX_CA_CERTIFICATES) {
        limit(ca.name.span, format!("{} CA certificates; Event Grid allows {MAX_CA_CERTIFICATES} per namespace", policy.ca_certificates.len()), "issue client certificates from fewer CAs");
    }
    for c in &policy.clients {
        let size: usize = c
            .attributes
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match &v.value {
                        AttrValue::Str(s) => s.len(),
                        AttrValue::Int(i) => i.to_string().len(),
                        AttrValue::Bool(b) => b.to_string().len(),
                        AttrValue::Array(items) => items.iter().map(String::len).sum(),
                    }
            })
            .sum();
        if size >= MAX_ATTRIBUTE_BYTES {
            limit(c.name.span, format!("attributes of client `{}` take {size} bytes; Event Grid allows less than {MAX_ATTRIBUTE_BYTES}", c.name.value), "keep only the attributes queries and templates use");
        }
        if let Some(auth) = &c.authentication {
            if let Some(t) = auth.allowed_thumbprints.get(MAX_THUMBPRINTS) {
                limit(t.span, format!("client `{}` has {} allowed thumbprints; Event Grid allows {MAX_THUMBPRINTS}", c.name.value, auth.allowed_thumbprints.len()), "keep the current and the next certificate only");
            }
            if let (Some(hash), Target::EventGrid) = (&auth.password_hash, cx.options.target) {
                limit(hash.span, format!("client `{}` authenticates with a password, which Event Grid does not offer", c.name.value), "use certificate authentication for Event Grid");
            }
        }
    }
}
