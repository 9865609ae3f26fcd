//! `topicgate policy generate --clients N --templates M [--bench-clients K] -o FILE`

use super::exit;
use crate::source::synth::{generate, SynthSpec};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of device clients.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Number of topic templates (spread over topic spaces of 10).
    #[arg(long, default_value_t = 100)]
    pub templates: usize,
    /// Extra clients `bench-0`.. that may publish and subscribe `bench/#` (for load generators).
    #[arg(long, default_value_t = 0)]
    pub bench_clients: usize,
    /// Where to write the policy (stdout when absent).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: GenerateArgs) -> u8 {
    const MAX: usize = 2_000_000;
    if args.clients + args.bench_clients > MAX || args.templates > MAX {
        eprintln!("error: at most {MAX} clients and {MAX} templates");
        return exit::ERROR;
    }
    let yaml = generate(SynthSpec {
        clients: args.clients,
        templates: args.templates,
        bench_clients: args.bench_clients,
    });
    match args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, yaml) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return exit::ERROR;
            }
        }
        None => print!("{yaml}"),
    }
    exit::OK
}
