//! Compiling a policy source: the front end and resolution (the compiler's), the
//! decision structure built once, and the verifier run over that same structure.

use super::read::{read_text, ReadError};
use crate::analysis::{self, analyze_compiled, rules::ABOUT_ACCESS};
use crate::compiler::compiled::CompiledPolicy;
use crate::compiler::front_end::{front_end, FrontEnd};
use crate::compiler::model::ResolvedPolicy;
use crate::diag::span::SourceFile;
use crate::diag::{has_errors, Diagnostics};
use crate::source::model::PolicyDoc;
use std::path::Path;

/// Everything a compilation produced, also when it failed: the front-end document
/// and the compiled policy (possibly partial) let the verifier go on past errors.
#[derive(Debug)]
pub struct Compilation {
    pub file: SourceFile,
    pub doc: Option<PolicyDoc>,
    /// The decision structure the verifier ran over; a load takes it as it is.
    pub compiled: Option<CompiledPolicy>,
    pub diagnostics: Diagnostics,
    pub source_hash: [u8; 32],
    /// The front end or resolution found an error (as opposed to only the verifier).
    pub front_end_errors: bool,
}

impl Compilation {
    /// True when the text could not even be read as a policy (syntax, size).
    pub fn is_unreadable(&self) -> bool {
        self.doc.is_none()
    }
    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }
    /// The resolved policy, when the text was read as one (possibly partial).
    pub fn resolved(&self) -> Option<&ResolvedPolicy> {
        self.compiled.as_ref().map(|c| &c.policy)
    }
    /// The resolved policy, taken out of the compilation.
    pub fn into_resolved(self) -> Option<ResolvedPolicy> {
        self.compiled.map(|c| c.policy)
    }
}

/// The front end, resolution and verification of one source text, for the local
/// broker. A policy whose check finds errors does not load.
pub fn compile_text(name: &str, text: &str, base_dir: Option<&Path>) -> Compilation {
    compile_text_with(name, text, base_dir, analysis::Options::default())
}

/// [`compile_text`] with the verifier's options (e.g. `--target eventgrid`).
pub fn compile_text_with(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
    options: analysis::Options,
) -> Compilation {
    let FrontEnd {
        file,
        doc,
        resolved,
        mut diagnostics,
        source_hash,
    } = front_end(name, text, base_dir);
    let front_end_errors = has_errors(&diagnostics);
    // Built once: the verifier's rules and the decisions of a load share it.
    let compiled = resolved.map(|resolved| CompiledPolicy::build(resolved, source_hash));
    if let Some(compiled) = &compiled {
        let options = analysis::Options {
            front_end_errors,
            ..options
        };
        let found = analyze_compiled(&file, compiled, options);
        // The first cause as printed: syntax and schema errors before the rest.
        let cause = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .min_by_key(|d| (!d.is_schema(), d.span.map_or(0, |s| s.start)))
            .cloned();
        diagnostics.extend(found.into_iter().map(|d| match &cause {
            Some(cause) if ABOUT_ACCESS.contains(&d.code) => d.as_consequence_of(cause),
            _ => d,
        }));
    }
    Compilation {
        file,
        doc,
        compiled,
        diagnostics,
        source_hash,
        front_end_errors,
    }
}

/// Compiles and verifies a policy file. Errors only for files that cannot be read
/// at all; everything about the policy is in the compilation's diagnostics.
pub fn compile_file(path: &Path) -> Result<Compilation, ReadError> {
    compile_file_with(path, analysis::Options::default())
}

/// [`compile_file`] with the verifier's options.
pub fn compile_file_with(
    path: &Path,
    options: analysis::Options,
) -> Result<Compilation, ReadError> {
    let text = read_text(path)?;
    Ok(compile_text_with(
        &path.display().to_string(),
        &text,
        path.parent(),
        options,
    ))
}
