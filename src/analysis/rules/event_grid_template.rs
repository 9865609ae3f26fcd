//! ## What it does
//! Reports topic templates Azure Event Grid refuses: more than 8 levels (`a/b/c` has
//! 3), or more than 256 bytes of text. A warning for the local broker, which has no
//! such limit; an error with `--target eventgrid`.
//!
//! ## Why is this bad?
//! Event Grid rejects the whole topic space, so every binding to it grants nothing
//! once the policy is deployed there; locally the same template works, and the
//! difference shows only in production.
//!
//! ## Example
//! ```yaml
//! topicSpaces:
//!   deep:
//!     topicTemplates: [ "site/area/line/cell/machine/unit/sensor/${client.authenticationName}/value" ]
//! ```
//! Use instead: fewer levels, e.g. `site/${client.authenticationName}/value`, with the
//! rest in the client's attributes.

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};

/// The most levels Event Grid accepts in a topic template.
pub const MAX_TEMPLATE_LEVELS: usize = 8;
/// The longest topic template Event Grid accepts, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    for space in &cx.resolved().topic_spaces {
        for t in &space.templates {
            let levels = t.value.levels.len();
            // `$<...>` and `${...}` have the same length, so the text as printed
            // measures what Event Grid is sent.
            let bytes = t.value.to_string().len();
            let mut report = |message: String, help: &str| {
                out.push(
                    Diagnostic::new(Code::EventGridTemplate, message)
                        .severity(cx.compatibility_severity())
                        .at(t.span)
                        .label("Event Grid refuses this template")
                        .help(help.to_string()),
                );
            };
            if levels > MAX_TEMPLATE_LEVELS {
                report(
                    format!("a template of topic space `{}` has {levels} levels; Event Grid allows {MAX_TEMPLATE_LEVELS}", space.name.value),
                    "move levels into client attributes, or end the template with `#`",
                );
            }
            if bytes > MAX_TEMPLATE_BYTES {
                report(
                    format!("a template of topic space `{}` is {bytes} bytes long; Event Grid allows {MAX_TEMPLATE_BYTES}", space.name.value),
                    "shorten the levels",
                );
            }
        }
    }
}
