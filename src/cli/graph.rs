//! `topicgate policy graph POLICY [--format mermaid|dot] [--client NAME] [--matrix]`

use super::{exit, load};
use crate::analysis::graph::{build, matrix};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid flowchart: renders in GitHub pull requests and READMEs.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Draw the policy: clients (or member counts, for large policies) -> groups ->
/// bindings -> topic spaces -> templates.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Only what concerns this client (authentication name), with its substituted templates.
    #[arg(long, value_name = "NAME", conflicts_with = "matrix")]
    pub client: Option<String>,
    /// Print a markdown access matrix (groups x topic spaces) instead of a graph.
    #[arg(long)]
    pub matrix: bool,
}

pub fn run(args: GraphArgs) -> u8 {
    let loaded = match load::policy(&args.policy) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let policy = &loaded.policy;
    if args.matrix {
        load::emit(&matrix(policy));
        return exit::OK;
    }
    let only = match &args.client {
        None => None,
        Some(name) => match load::client(policy, name) {
            Ok(id) => Some(id),
            Err(code) => return code,
        },
    };
    let g = build(policy, only);
    match args.format {
        GraphFormat::Mermaid => load::emit(&g.to_mermaid()),
        GraphFormat::Dot => load::emit(&g.to_dot()),
    }
    exit::OK
}
