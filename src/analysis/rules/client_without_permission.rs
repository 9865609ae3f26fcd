//! ## What it does
//! Warns when an enabled client is in no group that any binding grants a topic space.
//!
//! ## Why is this bad?
//! The client may connect but neither publish nor subscribe to anything: every
//! PUBLISH and SUBSCRIBE it sends is refused. Usually its attributes do not match the
//! query of the group it was meant for.
//!
//! ## Example
//! ```yaml
//! clients:
//!   sensor3: { attributes: { type: sensors } }    # the group wants `sensor`
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

pub fn check(cx: &Context, out: &mut Diagnostics) {
    if cx.options.front_end_errors {
        return; // Resources that failed to resolve would make others look unused.
    }
    for (id, c) in cx.resolved().clients.iter().enumerate() {
        let profile = cx.policy.profile_of(id as u32);
        if !c.is_enabled() || !profile.publish.is_empty() || !profile.subscribe.is_empty() {
            continue;
        }
        out.push(
            Diagnostic::new(Code::ClientWithoutPermission, format!("client `{}` may neither publish nor subscribe to anything", c.name.value))
                .at(c.name.span)
                .label("in no bound group")
                .help("check its attributes against the queries of the groups it should be in"),
        );
    }
}
