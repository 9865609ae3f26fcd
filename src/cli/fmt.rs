//! `topicgate policy fmt FILE [--to yaml|dsl] [--check] [-o OUT]`: canonical
//! formatting, and conversion between the YAML form and the DSL.

use super::{exit, output};
use crate::diag::span::SourceFile;
use crate::diag::{has_errors, render};
use crate::pipeline::read_text;
use crate::source::format::{header_comment, to_dsl, to_yaml};
use crate::source::{is_dsl, parse_source};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Form {
    Yaml,
    Dsl,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// The policy file (YAML, or the DSL: `*.policy`).
    pub file: PathBuf,
    /// The form to write; the file's own form by default.
    #[arg(long, value_enum)]
    pub to: Option<Form>,
    /// Write nothing; exit 1 when the file (or OUT) is not formatted.
    #[arg(long)]
    pub check: bool,
    /// Where to write. Without it the file is formatted in place, or a conversion is
    /// printed on stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// The canonical text of a policy source in `form`, or the diagnostics that keep it
/// from being formatted (formatting a file with schema errors could drop content).
pub fn format_source(file: &SourceFile, form: Form) -> Result<String, NotFormatted> {
    let (doc, diagnostics) = parse_source(file);
    match doc {
        Some(doc) if !has_errors(&diagnostics) => {
            let header = header_comment(&file.text);
            Ok(match form {
                Form::Yaml => to_yaml(&doc, &header),
                Form::Dsl => to_dsl(&doc, &header),
            })
        }
        doc => Err(NotFormatted {
            readable: doc.is_some(),
            diagnostics,
        }),
    }
}

/// Why a source was not formatted.
#[derive(Debug)]
pub struct NotFormatted {
    /// The text is a policy (with errors); `false` when it is not one at all
    /// (a syntax error, another kind of file).
    pub readable: bool,
    pub diagnostics: crate::diag::Diagnostics,
}

pub fn run(args: FmtArgs) -> u8 {
    let text = match read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let name = args.file.display().to_string();
    let own = if is_dsl(&name) { Form::Dsl } else { Form::Yaml };
    let form = args.to.unwrap_or(own);
    let file = SourceFile::new(name.clone(), text.as_str());
    let formatted = match format_source(&file, form) {
        Ok(f) => f,
        Err(e) => {
            eprint!(
                "{}",
                render::human_all(&e.diagnostics, &file, output::color())
            );
            if !e.readable {
                eprintln!("error: `{name}` is not a readable policy");
                return exit::ERROR;
            }
            eprintln!("error: `{name}` has errors; fix them before formatting");
            return exit::FINDING;
        }
    };
    let target = match (&args.output, form == own) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => Some(args.file.clone()),
        (None, false) => None,
    };
    if args.check {
        let Some(target) = target else {
            eprintln!("error: --check with a conversion needs -o OUT, the file to compare with");
            return exit::ERROR;
        };
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if current == formatted {
            return exit::OK;
        }
        eprintln!(
            "`{}` is not formatted; run `topicgate policy fmt {}`",
            target.display(),
            args.file.display()
        );
        return exit::FINDING;
    }
    match target {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, formatted) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return exit::ERROR;
            }
        }
        None => print!("{formatted}"),
    }
    exit::OK
}
