//! The verifier behind `topicgate policy check`: rules that run over the compiled
//! policy (its profiles and template index, never every client against every other)
//! and report, with a code and a span, each mistake that would otherwise surface as
//! a device refused at the broker, or a will nobody receives or anybody can forge.
//!
//! One rule per file under [`rules`]; the file's doc comment is the rule's user
//! documentation (`docs/rules.md` is generated from it).
//!
//! Beside it, the exact analyses behind `policy query`, `policy diff` and `policy graph`,
//! built on the filter algebra of [`algebra`].

pub mod access;
pub mod candidates;
pub mod context;
pub mod diff;
pub mod docs;
pub mod flow;
pub mod graph;
pub mod query;
pub mod reach;
pub mod rules;

pub use context::Context;

use crate::compiler::compiled::CompiledPolicy;
use crate::compiler::model::ResolvedPolicy;
use crate::diag::span::SourceFile;
use crate::diag::Diagnostics;

/// Which broker the policy is checked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Target {
    /// topicgate's own broker: Event Grid's limits are warnings.
    #[default]
    Local,
    /// Azure Event Grid: its limits and unsupported will settings are errors.
    #[value(name = "eventgrid")]
    EventGrid,
}

/// What the verifier is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub target: Target,
    /// The front end found errors: parts of the policy are missing from the resolved
    /// policy, so the rules about unused or empty resources would only add noise.
    pub front_end_errors: bool,
}

/// Runs every rule over a resolved policy (possibly partial: parts that failed to
/// resolve are already reported and left out) and returns their findings. Builds
/// the decision structure for it; a caller that has one calls [`analyze_compiled`].
pub fn analyze(file: &SourceFile, resolved: &ResolvedPolicy, options: Options) -> Diagnostics {
    let compiled = CompiledPolicy::build(resolved.clone(), [0; 32]);
    analyze_compiled(file, &compiled, options)
}

/// Runs every rule over an already compiled policy.
pub fn analyze_compiled(
    file: &SourceFile,
    policy: &CompiledPolicy,
    options: Options,
) -> Diagnostics {
    let cx = Context::new(file, policy, options);
    let mut out = Vec::new();
    for rule in rules::RULES {
        (rule.check)(&cx, &mut out);
    }
    out
}
