//! Source: policy text (YAML, later the DSL) read into a spanned document, and the
//! grammars of the small languages inside it (group queries, topic templates).
pub mod dsl;
mod events;
pub mod format;
pub mod model;
pub mod node;
pub mod query;
pub mod span;
pub mod synth;
pub mod yaml;
