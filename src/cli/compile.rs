//! `topicgate policy compile POLICY -o FILE`

use super::{exit, output};
use crate::compiler::artifact;
use crate::diag::render;
use crate::pipeline::{compile_file, from_compilation};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The policy file (YAML).
    pub policy: PathBuf,
    /// Where to write the artifact.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

pub fn run(args: CompileArgs) -> u8 {
    let compilation = match compile_file(&args.policy) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let loaded = match from_compilation(compilation) {
        Ok(l) => l,
        Err(e) => return output::report_load_error(&e),
    };
    if let Some(file) = &loaded.file {
        if !loaded.diagnostics.is_empty() {
            eprint!(
                "{}",
                render::human_all(&loaded.diagnostics, file, output::color())
            );
        }
    }
    let bytes = match artifact::encode(&loaded.policy.policy, &loaded.policy.source_hash) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    if let Err(e) = std::fs::write(&args.output, &bytes) {
        eprintln!("error: cannot write `{}`: {e}", args.output.display());
        return exit::ERROR;
    }
    let p = &loaded.policy;
    eprintln!(
        "compiled {} ({} clients, {} groups, {} topic spaces, {} bindings, {} index nodes) -> {} ({} bytes, policy sha256 {})",
        args.policy.display(),
        p.client_count(),
        p.policy.groups.len() - 1,
        p.policy.topic_spaces.len(),
        p.policy.bindings.len(),
        p.index_node_count(),
        args.output.display(),
        bytes.len(),
        p.source_hash_hex(),
    );
    // The process exits next: freeing a 100,000-client policy node by node would
    // cost about a tenth of the whole compile, and the OS reclaims it at once.
    std::mem::forget(loaded);
    exit::OK
}
