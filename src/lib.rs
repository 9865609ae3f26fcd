//! topicgate: a declarative MQTT access policy, compiled into an indexed decision
//! structure, verified, and served by an enforcing MQTT broker.
//!
//! The modules follow the pipeline: [`topic`] (topic names, filters, templates,
//! matching and the subset algebra; it imports nothing else of the crate) ->
//! [`source`] (text to a spanned document) -> [`compiler`] (resolution, typing, the
//! index, the artifact) -> [`decisions`] (connect, publish, subscribe, explain) ->
//! [`analysis`] (the verifier and the exact analyses) -> `broker` (the MQTT server)
//! -> `cli`. [`diag`] is shared by all stages. [`eventgrid`] imports and exports
//! Event Grid namespaces, [`export`] other brokers' ACLs; [`bench`] is a load
//! generator for any MQTT broker, used to measure ours against others.
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
pub mod source;
pub mod topic;
