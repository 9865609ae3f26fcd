//! `topicgate policy check FILE... [--format human|json|sarif|github] [--deny-warnings] [--target local|eventgrid]`

use super::{exit, output};
use crate::analysis::{self, docs, Target};
use crate::diag::report::{self, FileReport};
use crate::diag::{render, Severity};
use crate::pipeline::{compile_file_with, Compilation};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Reports with the source snippet, labels and help.
    Human,
    /// `{"diagnostics": [...], "errors": N, "warnings": N}`.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// GitHub Actions annotations (`::error file=...`).
    Github,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files (YAML, or the DSL: `*.policy`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// The broker the policy is for: Event Grid's limits are errors with `eventgrid`.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
}

pub fn run(args: CheckArgs) -> u8 {
    let options = analysis::Options {
        target: args.target,
        ..Default::default()
    };
    let mut compilations: Vec<Compilation> = Vec::new();
    // A file that cannot be read, or is not a policy at all (YAML syntax, another
    // kind of file), means the check could not do its job: exit 2, not 1.
    let mut unreadable = false;
    for path in &args.files {
        match compile_file_with(path, options) {
            Ok(c) => {
                unreadable |= c.is_unreadable();
                compilations.push(c);
            }
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
            }
        }
    }
    let reports: Vec<FileReport> = compilations
        .iter()
        .map(|c| FileReport {
            file: &c.file,
            diagnostics: &c.diagnostics,
        })
        .collect();
    let errors = report::count(&reports, Severity::Error);
    let warnings = report::count(&reports, Severity::Warning);
    let printed = match args.format {
        Format::Human => {
            let mut out = String::new();
            for r in &reports {
                if !r.diagnostics.is_empty() {
                    out.push_str(&render::human_all(
                        r.diagnostics,
                        r.file,
                        output::color_stdout(),
                    ));
                    out.push('\n');
                }
            }
            // Only files that were read count; none read, no summary.
            if !reports.is_empty() {
                out.push_str(&summary(reports.len(), errors, warnings));
            }
            Ok(out)
        }
        Format::Json => {
            serde_json::to_string_pretty(&report::json_report(&reports)).map(|s| s + "\n")
        }
        Format::Sarif => {
            serde_json::to_string_pretty(&report::sarif(&reports, docs::documentation))
                .map(|s| s + "\n")
        }
        Format::Github => Ok(report::github(&reports)),
    };
    match printed {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    }
    drop(reports);
    // The process exits next: freeing 100,000 clients' structures one by one would
    // cost a tenth of the check, and the OS reclaims them at once.
    std::mem::forget(compilations);
    if unreadable {
        exit::ERROR
    } else if errors > 0 || (args.deny_warnings && warnings > 0) {
        exit::FINDING
    } else {
        exit::OK
    }
}

fn summary(files: usize, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "checked {}: {}, {}\n",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}
