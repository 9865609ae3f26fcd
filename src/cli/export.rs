//! `topicgate policy export --to mosquitto POLICY -o DIR`

use super::{exit, output};
use crate::compiler::load;
use crate::diag::render;
use crate::export::mosquitto;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Target {
    /// A Mosquitto acl_file, a mosquitto.conf snippet, and a README of the differences.
    Mosquitto,
}

const AFTER_HELP: &str = "\
Mosquitto: writes DIR/acl (one `user` block per enabled client, with its own topic templates
substituted), DIR/mosquitto.conf (a snippet that loads it), and DIR/README.md (what Mosquitto
enforces differently: it never refuses a SUBSCRIBE, only filters delivered messages).

Example:
  topicgate policy export --to mosquitto policies/lwt.yaml -o /etc/mosquitto/topicgate";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ExportArgs {
    /// The broker format to write.
    #[arg(long, value_enum)]
    pub to: Target,
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    /// The directory to write into (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
}

pub fn run(args: ExportArgs) -> u8 {
    let loaded = match load(&args.policy) {
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
    if let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("error: cannot create `{}`: {e}", args.output.display());
        return exit::ERROR;
    }
    let dir = std::fs::canonicalize(&args.output).unwrap_or_else(|_| args.output.clone());
    match args.to {
        Target::Mosquitto => {
            let acl_path = dir.join("acl");
            let source = args.policy.display().to_string();
            let e = mosquitto::export(&loaded.policy, &source, &acl_path.display().to_string());
            for (name, text) in [
                ("acl", &e.acl),
                ("mosquitto.conf", &e.conf),
                ("README.md", &e.readme),
            ] {
                if let Err(code) = write(&dir, name, text) {
                    return code;
                }
            }
            for (client, why) in &e.skipped {
                eprintln!(
                    "warning: client `{}` not exported: {why}",
                    client.escape_debug()
                );
            }
            eprintln!(
                "exported {} users to {} (acl, mosquitto.conf, README.md)",
                e.users,
                dir.display()
            );
        }
    }
    exit::OK
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), u8> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        exit::ERROR
    })
}
