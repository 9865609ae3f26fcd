//! ## What it does
//! Reports names Azure Event Grid does not accept that topicgate itself does not
//! restrict: the namespace name and CA certificate names must be 3-50 characters of
//! letters, digits and `-`. (Client, group, topic space and binding names follow
//! Event Grid's rules everywhere: TG008.) A warning for the local broker, an error
//! with `--target eventgrid`.
//!
//! ## Why is this bad?
//! The deployment of the namespace or of the CA certificate fails, and with the CA
//! every client that relies on it for a `*MatchesAuthenticationName` scheme.
//!
//! ## Example
//! ```yaml
//! namespace: factory_ns          # `_` is not allowed
//! caCertificates:
//!   ca: { file: certs/ca.pem }   # too short: 3-50 characters
//! ```

use super::super::Context;
use crate::compiler::resolve::valid_resource_name;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    let policy = cx.resolved();
    let rule = "3-50 characters of letters, digits and `-`";
    if let Some(ns) = policy.namespace.as_ref().filter(|n| !valid_resource_name(&n.value)) {
        out.push(
            Diagnostic::new(Code::EventGridName, format!("namespace name `{}` is not valid in Event Grid", ns.value))
                .severity(cx.compatibility_severity())
                .at(ns.span)
                .label("not a valid namespace name")
                .help(format!("namespace names are {rule}")),
        );
    }
    for ca in policy.ca_certificates.iter().filter(|c| !valid_resource_name(&c.name.value)) {
        out.push(
            Diagnostic::new(Code::EventGridName, format!("CA certificate name `{}` is not valid in Event Grid", ca.name.value))
                .severity(cx.compatibility_severity())
                .at(ca.name.span)
                .label("not a valid CA certificate name")
                .help(format!("CA certificate names are {rule}")),
        );
    }
}
