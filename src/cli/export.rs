//! `topicgate policy export --to mosquitto POLICY -o DIR` and
//! `--to eventgrid-arm|eventgrid-bicep|eventgrid-az POLICY -o FILE`

use super::{exit, output};
use crate::diag::render;
use crate::diag::span::SourceFile;
use crate::eventgrid::export as eventgrid;
use crate::export::mosquitto;
use crate::pipeline::load;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Target {
    /// A Mosquitto acl_file, a mosquitto.conf snippet, and a README of the differences.
    Mosquitto,
    /// An Azure Event Grid namespace as an ARM deployment template (JSON).
    #[value(name = "eventgrid-arm")]
    EventgridArm,
    /// An Azure Event Grid namespace as a Bicep file.
    #[value(name = "eventgrid-bicep")]
    EventgridBicep,
    /// An Azure Event Grid namespace as a bash script of `az resource create` calls.
    #[value(name = "eventgrid-az")]
    EventgridAz,
}

const AFTER_HELP: &str = "\
Mosquitto: writes DIR/acl (one `user` block per enabled client, with its own topic templates
substituted), DIR/mosquitto.conf (a snippet that loads it), and DIR/README.md (what Mosquitto
enforces differently: it never refuses a SUBSCRIBE, only filters delivered messages).

Event Grid (eventgrid-arm, eventgrid-bicep, eventgrid-az): writes FILE, the namespace with its
topicSpacesConfiguration, CA certificates (inlined), clients, client groups, topic spaces and
permission bindings (API 2025-02-15). What Event Grid cannot express (wills, passwordHash, tests,
intents) is listed on stderr; an export that would grant differently on Event Grid or that
Event Grid would refuse (`policy check --target eventgrid` errors) fails unless --allow-lossy.

Examples:
  topicgate policy export --to mosquitto policies/lwt.yaml -o /etc/mosquitto/topicgate
  topicgate policy export --to eventgrid-bicep policies/lwt.yaml -o lwt.bicep";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ExportArgs {
    /// The broker format to write.
    #[arg(long, value_enum)]
    pub to: Target,
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    /// The directory to write into (mosquitto; created if missing), or the file to
    /// write (eventgrid-*).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Write an Event Grid export even where it would change the policy's meaning.
    #[arg(long)]
    pub allow_lossy: bool,
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
    let format = match args.to {
        Target::Mosquitto => return write_mosquitto(&loaded.policy, &args),
        Target::EventgridArm => eventgrid::Format::Arm,
        Target::EventgridBicep => eventgrid::Format::Bicep,
        Target::EventgridAz => eventgrid::Format::Az,
    };
    // An artifact has no source text: the Event Grid checks then point nowhere.
    let file = loaded
        .file
        .clone()
        .unwrap_or_else(|| SourceFile::new(args.policy.display().to_string(), ""));
    write_event_grid(
        eventgrid::export(&loaded.policy.policy, &file, format),
        &args,
    )
}

fn write_mosquitto(policy: &crate::compiler::compiled::CompiledPolicy, args: &ExportArgs) -> u8 {
    if let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("error: cannot create `{}`: {e}", args.output.display());
        return exit::ERROR;
    }
    let dir = std::fs::canonicalize(&args.output).unwrap_or_else(|_| args.output.clone());
    let acl_path = dir.join("acl");
    let source = args.policy.display().to_string();
    let e = mosquitto::export(policy, &source, &acl_path.display().to_string());
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
    exit::OK
}

/// Lists what does not carry over, refuses a meaning-changing export unless
/// `--allow-lossy`, and writes the file.
fn write_event_grid(e: eventgrid::Export, args: &ExportArgs) -> u8 {
    for n in &e.notes {
        let kind = if !n.changes_meaning {
            "note"
        } else if args.allow_lossy {
            "warning"
        } else {
            "error"
        };
        eprintln!("{kind}: {}: {}", n.resource, n.message);
    }
    if e.changes_meaning() && !args.allow_lossy {
        eprintln!("error: not exported: on Event Grid this policy would not mean what it means here; fix the errors above or pass --allow-lossy");
        return exit::ERROR;
    }
    if let Err(err) = std::fs::write(&args.output, &e.text) {
        eprintln!("error: cannot write `{}`: {err}", args.output.display());
        return exit::ERROR;
    }
    eprintln!("exported to {}", args.output.display());
    exit::OK
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), u8> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        exit::ERROR
    })
}
