//! ## What it does
//! Warns when a topic space lists the same template twice (`${...}` and `$<...>`
//! spell the same variable).
//!
//! ## Why is this bad?
//! The second copy grants nothing more; it is usually a template edited in one place
//! and pasted in another, where the edit was meant.
//!
//! ## Example
//! ```yaml
//! topicSpaces:
//!   status:
//!     topicTemplates:
//!       - clients/$<client.authenticationName>/status
//!       - clients/${client.authenticationName}/status
//! ```

use super::super::Context;
use crate::diag::{Code, Diagnostic, Diagnostics};
use std::collections::HashMap;

pub fn check(cx: &Context, out: &mut Diagnostics) {
    for space in &cx.resolved().topic_spaces {
        let mut seen = HashMap::new();
        for t in &space.templates {
            if let Some(first) = seen.get(&t.value) {
                out.push(
                    Diagnostic::new(Code::DuplicateTemplate, format!("topic space `{}` lists template `{}` twice", space.name.value, t.value))
                        .at(t.span)
                        .label("duplicate")
                        .related(*first, "first listed here")
                        .help("remove one of them"),
                );
            } else {
                seen.insert(&t.value, t.span);
            }
        }
    }
}
