//! ## What it does
//! With `--target eventgrid`, lists the enabled clients that name no certificate
//! validation scheme (no `authentication`, or one with neither `validationScheme` nor
//! `allowedThumbprints`). Event Grid gives such a client its default scheme,
//! `SubjectMatchesAuthenticationName`: it connects with any certificate issued by a
//! CA of the namespace whose subject common name is its authentication name. The
//! local broker accepts no certificate for it (deny by default, decision 0019).
//! Reported only for Event Grid, and only as a warning: the policy is valid there.
//!
//! ## Why is this bad?
//! The same policy lets more certificates in on Event Grid than it does here, so a
//! check that passes locally says nothing about who can connect in production.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor1: { attributes: { type: sensor } }   # no authentication
//! ```
//! Use instead: state the scheme, e.g.
//! `authentication: { validationScheme: SubjectMatchesAuthenticationName }`; both
//! brokers then accept the same certificates.

use super::super::{Context, Target};
use crate::decisions::identity::effective_scheme;
use crate::diag::{Code, Diagnostic, Diagnostics};

/// At most this many client names in the message.
const NAMES_SHOWN: usize = 5;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.target != Target::EventGrid {
        return;
    }
    let ids: Vec<u32> = cx
        .resolved()
        .clients
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_enabled() && effective_scheme(c).is_none())
        .map(|(i, _)| i as u32)
        .collect();
    let Some(first) = ids.first() else { return };
    let shown: Vec<u32> = ids.iter().take(NAMES_SHOWN).copied().collect();
    out.push(
        Diagnostic::new(
            Code::EventGridDefaultScheme,
            format!(
                "{} {} {} no validation scheme: Event Grid lets {} authenticate by SubjectMatchesAuthenticationName, the local broker by no certificate",
                if ids.len() == 1 { "client" } else { "clients" },
                cx.name_list(&shown, ids.len()),
                if ids.len() == 1 { "names" } else { "name" },
                if ids.len() == 1 { "it" } else { "them" }
            ),
        )
        .at(cx.policy.client(*first).name.span)
        .label("no validation scheme")
        .help("write `authentication: { validationScheme: SubjectMatchesAuthenticationName }` to have the same on both brokers"),
    );
}
