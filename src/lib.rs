//! topicgate: a declarative MQTT access policy, compiled into an indexed decision
//! structure, verified, and served by an enforcing MQTT broker.
//!
//! The modules are stages, and each imports only the stages below it (decision
//! 0026; `tests/architecture.rs` checks every `crate::` and `super::` import):
//!
//! - [`topic`]: topic names, filters, templates, matching and the subset algebra.
//!   The base: it imports nothing else of the crate.
//! - [`diag`]: spans, source files, diagnostics and their codes. A base too.
//! - [`source`]: text (YAML or the DSL) to a spanned document.
//! - [`compiler`]: resolution, typing, the decision structure (the index), the
//!   artifact. Knows nothing of the verifier.
//! - [`decisions`]: connect, publish, subscribe, explain, on the compiled policy.
//! - [`analysis`]: the verifier's rules and the exact analyses behind `query`,
//!   `diff` and `graph`.
//! - [`pipeline`]: runs the stages on a file: read, parse, resolve, build the
//!   decision structure once, verify it, load it (or an artifact).
//! - `cli`: the commands.
//!
//! Beside the stages: `broker` (the MQTT server; it is handed a compiled policy and
//! imports only topic, diag, compiler, decisions and certs), [`certs`] (certificate
//! files, development certificates), [`eventgrid`] (Event Grid namespaces, in and
//! out), [`export`] (other brokers' ACLs), and [`bench`] (a load generator for any
//! MQTT broker, used to measure ours against others).
pub mod analysis;
pub mod bench;
pub mod broker;
pub mod certs;
pub mod cli;
pub mod compiler;
pub mod decisions;
pub mod diag;
pub mod eventgrid;
pub mod export;
pub mod pipeline;
pub mod source;
pub mod topic;
