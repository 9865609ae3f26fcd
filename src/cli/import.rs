//! `topicgate policy import --from eventgrid FILE... [--parameters FILE] -o POLICY.yaml`

use super::{exit, output};
use crate::analysis::{Options, Target};
use crate::diag::span::SourceFile;
use crate::diag::{render, Severity};
use crate::eventgrid::import::{import, origin_at, to_policy, Input, Origin};
use crate::pipeline::{compile_text_with, read_text};
use crate::source::format::to_yaml;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Source {
    /// Azure Event Grid: an ARM deployment template, or REST / `az ... -o json` output.
    #[value(name = "eventgrid")]
    EventGrid,
}

const AFTER_HELP: &str = "\
Reads an Event Grid namespace's MQTT resources (namespace settings, CA certificates, clients,
client groups, topic spaces, permission bindings) from ARM deployment templates (children at the
top level named by `[format('{0}/{1}', parameters('namespaceName'), 'x')]` or `[concat(...)]`,
or nested in the namespace; parameters(), variables(), format() and concat() are evaluated) and
from the JSON of Event Grid's REST API or `az ... show|list -o json` (a resource, an array, or
`{\"value\": [...]}`). Event Grid's defaults are written out: a client without a validation
scheme gets SubjectMatchesAuthenticationName. The policy is then checked for Event Grid; each
finding names the resource and its position in the original file.

Exit status: 0 imported and clean, 1 imported with findings that are errors, 2 not imported.

Examples:
  topicgate policy import --from eventgrid namespace.json --parameters namespace.parameters.json -o policy.yaml
  az eventgrid namespace client list -g RG --namespace-name NS -o json > clients.json
  topicgate policy import --from eventgrid clients.json groups.json spaces.json bindings.json -o policy.yaml";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ImportArgs {
    /// The format to read.
    #[arg(long, value_enum)]
    pub from: Source,
    /// Files to read (JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// An ARM parameter file with values for the templates' parameters.
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<PathBuf>,
    /// The policy file to write (YAML).
    #[arg(short, long, value_name = "POLICY")]
    pub output: PathBuf,
}

fn read(path: &Path) -> Result<Input, u8> {
    let text = read_text(path).map_err(|e| {
        eprintln!("error: {e}");
        exit::ERROR
    })?;
    Ok(Input {
        name: path.display().to_string(),
        text,
    })
}

fn position(inputs: &[Input], file: &str, offset: Option<usize>) -> String {
    let Some(input) = inputs.iter().find(|i| i.name == file) else {
        return file.to_string();
    };
    match offset {
        Some(o) => {
            let (line, col) = SourceFile::new(file, input.text.as_str()).line_col(o);
            format!("{file}:{line}:{col}")
        }
        None => file.to_string(),
    }
}

fn describe(o: &Origin) -> String {
    match o.kind {
        Some(k) => format!("{} `{}`", k.segment(), o.name),
        None => format!("namespace `{}`", o.name),
    }
}

pub fn run(args: ImportArgs) -> u8 {
    let Source::EventGrid = args.from;
    let mut inputs = Vec::new();
    for f in &args.files {
        match read(f) {
            Ok(i) => inputs.push(i),
            Err(code) => return code,
        }
    }
    let parameters = match &args.parameters {
        Some(p) => match read(p) {
            Ok(i) => Some(i),
            Err(code) => return code,
        },
        None => None,
    };
    let imported = import(&inputs, parameters.as_ref());
    let all: Vec<&Input> = inputs.iter().chain(parameters.as_ref()).collect();
    for p in &imported.problems {
        let at = match all.iter().find(|i| i.name == p.file) {
            Some(i) => position(std::slice::from_ref(*i), &p.file, p.offset),
            None => p.file.clone(),
        };
        let kind = if p.error { "error" } else { "warning" };
        eprintln!("{kind}: {at}: {}", p.message);
    }
    if imported.has_errors() {
        eprintln!("error: not imported: fix the errors above");
        return exit::ERROR;
    }
    let sources: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let header = format!(
        "# Imported by `topicgate policy import --from eventgrid` from {}.\n",
        sources.join(", ")
    );
    let yaml = to_yaml(&to_policy(&imported.namespace), &header);
    if let Err(e) = std::fs::write(&args.output, &yaml) {
        eprintln!("error: cannot write `{}`: {e}", args.output.display());
        return exit::ERROR;
    }
    let ns = &imported.namespace;
    eprintln!(
        "imported {} clients, {} client groups, {} topic spaces, {} permission bindings, {} CA certificates to {}",
        ns.clients.len(),
        ns.client_groups.len(),
        ns.topic_spaces.len(),
        ns.permission_bindings.len(),
        ns.ca_certificates.len(),
        args.output.display()
    );
    // What `policy check --target eventgrid` says of the result, traced back to
    // the resource in the file it came from.
    let name = args.output.display().to_string();
    let base = args.output.parent().map(Path::to_path_buf);
    let c = compile_text_with(
        &name,
        &yaml,
        base.as_deref(),
        Options {
            target: Target::EventGrid,
            ..Options::default()
        },
    );
    let mut errors = false;
    for d in &c.diagnostics {
        errors |= d.severity == Severity::Error;
        eprint!(
            "{}",
            render::human_all(std::slice::from_ref(d), &c.file, output::color())
        );
        match d
            .span
            .and_then(|s| origin_at(&yaml, s.start as usize, &imported.origins))
        {
            Some(o) => eprintln!(
                "  = imported from {} at {}\n",
                describe(o),
                position(&inputs, &o.file, o.offset)
            ),
            None => eprintln!(),
        }
    }
    if errors {
        exit::FINDING
    } else {
        exit::OK
    }
}
