//! Source: policy text (YAML or the DSL) read into a spanned document, and the
//! grammars of the small languages inside it (group queries, topic templates).
//! Spans and source files live in [`crate::diag::span`], below this stage.
pub mod dsl;
mod events;
pub mod format;
pub mod model;
pub mod node;
pub mod query;
pub mod schema;
pub mod synth;
pub mod yaml;

use crate::diag::span::SourceFile;
use crate::diag::Diagnostics;
use model::PolicyDoc;
use std::path::Path;

/// Parses a source file with the front end its name calls for: the DSL for
/// `*.policy`, YAML for anything else.
pub fn parse_source(file: &SourceFile) -> (Option<PolicyDoc>, Diagnostics) {
    if is_dsl(&file.name) {
        dsl::parse_policy(&file.text)
    } else {
        yaml::parse_policy(&file.text)
    }
}

/// Is this file name one of the DSL (`*.policy`)?
pub fn is_dsl(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("policy"))
}
