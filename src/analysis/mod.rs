//! Analysis: the verifier's rules over a compiled policy, and the exact analyses
//! behind `policy query`, `policy diff` and `policy graph` (built on [`algebra`]).
pub mod access;
pub mod algebra;
pub mod diff;
pub mod flow;
pub mod graph;
pub mod query;
