//! Decisions: the questions a policy answers (connect, publish, subscribe).
pub mod access;
