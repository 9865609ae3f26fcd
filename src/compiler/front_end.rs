//! The stages below the verifier on one source text: the front end (YAML, or the
//! DSL by its `.policy` extension) and resolution. Verification and loading are
//! orchestrated above the analyses, in [`crate::pipeline`]; this is what they start
//! from, and all a test of a lower stage needs.

use super::compiled::CompiledPolicy;
use super::model::ResolvedPolicy;
use super::resolve::{resolve, ResolveContext};
use crate::diag::span::SourceFile;
use crate::diag::{has_errors, Diagnostic, Diagnostics};
use crate::source::model::PolicyDoc;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What the front end and resolution made of one source text, also when they
/// failed: the document and the resolved policy (possibly partial) let the verifier
/// go on past errors.
#[derive(Debug)]
pub struct FrontEnd {
    pub file: SourceFile,
    pub doc: Option<PolicyDoc>,
    pub resolved: Option<ResolvedPolicy>,
    pub diagnostics: Diagnostics,
    /// SHA-256 of the source text.
    pub source_hash: [u8; 32],
}

/// The front end could not produce a policy: syntax, schema or resolution errors.
#[derive(Debug, thiserror::Error)]
#[error("policy `{file}` has {} error(s)", .errors.len())]
pub struct FrontEndError {
    pub file: String,
    pub errors: Vec<Diagnostic>,
}

impl FrontEnd {
    /// Did the front end or resolution report an error?
    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }

    /// The decision structure over a policy that resolved without errors, not
    /// verified: for tests and harnesses of the stages below the verifier.
    pub fn into_compiled(self) -> Result<CompiledPolicy, FrontEndError> {
        match self.resolved {
            Some(resolved) if !has_errors(&self.diagnostics) => {
                Ok(CompiledPolicy::build(resolved, self.source_hash))
            }
            _ => Err(FrontEndError {
                file: self.file.name,
                errors: self
                    .diagnostics
                    .into_iter()
                    .filter(|d| d.is_error())
                    .collect(),
            }),
        }
    }
}

/// Parses and resolves one source text.
pub fn front_end(name: &str, text: &str, base_dir: Option<&Path>) -> FrontEnd {
    let file = SourceFile::new(name, text);
    let source_hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let (doc, mut diagnostics) = crate::source::parse_source(&file);
    let resolved = doc.as_ref().map(|doc| {
        let (resolved, diags) = resolve(
            doc,
            &ResolveContext {
                file: &file,
                base_dir,
            },
        );
        diagnostics.extend(diags);
        resolved
    });
    FrontEnd {
        file,
        doc,
        resolved,
        diagnostics,
        source_hash,
    }
}
