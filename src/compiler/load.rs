//! Loading a policy from a file: a policy source (YAML, or the DSL by its `.policy`
//! extension) compiled on the spot, or a compiled artifact (recognised by its magic
//! bytes, whatever its name).

use super::artifact::{self, ArtifactError};
use super::compiled::CompiledPolicy;
use super::model::ResolvedPolicy;
use super::resolve::{resolve, ResolveContext};
use crate::analysis;
use crate::diag::{has_errors, Diagnostics};
use crate::source::model::PolicyDoc;
use crate::source::span::SourceFile;
use crate::source::{dsl, yaml};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

/// Everything a compilation produced, also when it failed: the front-end document
/// and the resolved policy (possibly partial) let the verifier go on past errors.
#[derive(Debug)]
pub struct Compilation {
    pub file: SourceFile,
    pub doc: Option<PolicyDoc>,
    pub resolved: Option<ResolvedPolicy>,
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
    let file = SourceFile::new(name, text);
    let source_hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let (doc, mut diagnostics) = parse_source(&file);
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
    let front_end_errors = has_errors(&diagnostics);
    let resolved = resolved.map(|resolved| {
        let options = analysis::Options {
            front_end_errors,
            ..options
        };
        let (found, resolved) = analysis::analyze_owned(&file, resolved, options);
        // The first cause as printed: syntax and schema errors before the rest.
        let cause = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .min_by_key(|d| (!d.is_schema(), d.span.map_or(0, |s| s.start)))
            .cloned();
        diagnostics.extend(found.into_iter().map(|d| match &cause {
            Some(cause) if analysis::rules::ABOUT_ACCESS.contains(&d.code) => {
                d.as_consequence_of(cause)
            }
            _ => d,
        }));
        resolved
    });
    Compilation {
        file,
        doc,
        resolved,
        diagnostics,
        source_hash,
        front_end_errors,
    }
}

/// Parses a source file with the front end its name calls for: the DSL for
/// `*.policy`, YAML for anything else.
pub fn parse_source(file: &SourceFile) -> (Option<PolicyDoc>, Diagnostics) {
    if is_dsl(&file.name) {
        dsl::parse_policy(&file.text)
    } else {
        yaml::parse_policy(&file.text)
    }
}

/// Is this file name one of the DSL (`*.policy`)?
pub fn is_dsl(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("policy"))
}

/// Why a file could not be loaded as a compiled policy.
#[derive(Debug)]
pub enum LoadError {
    /// The file cannot be read, or is not text (exit 2).
    Io(String),
    /// The file is an artifact that cannot be decoded (exit 2).
    Artifact(ArtifactError),
    /// The policy has errors; they are in the compilation's diagnostics (exit 1, or
    /// 2 when the text is not a readable policy at all).
    Invalid(Box<Compilation>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(e) => f.write_str(e),
            LoadError::Artifact(e) => write!(f, "{e}"),
            LoadError::Invalid(c) => {
                let n = c.diagnostics.iter().filter(|d| d.is_error()).count();
                write!(
                    f,
                    "policy `{}` has {n} error{}",
                    c.file.name,
                    if n == 1 { "" } else { "s" }
                )
            }
        }
    }
}

/// A policy ready for decisions, and where it came from.
pub struct Loaded {
    pub policy: CompiledPolicy,
    /// The source, when loaded from a policy file (not an artifact).
    pub file: Option<SourceFile>,
    /// Warnings found while compiling.
    pub diagnostics: Diagnostics,
}

/// Reads a file whole, with a size limit, as bytes.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!(
            "`{}` is a directory, not a policy file",
            path.display()
        ));
    }
    let limit = yaml::MAX_POLICY_BYTES as u64 * 4;
    if meta.len() > limit {
        return Err(format!(
            "`{}` is {} bytes, more than the limit of {limit} bytes",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// Compiles a policy file, without building the index. Errors only for files that
/// cannot be read at all.
pub fn compile_file(path: &Path) -> Result<Compilation, String> {
    compile_file_with(path, analysis::Options::default())
}

/// [`compile_file`] with the verifier's options.
pub fn compile_file_with(path: &Path, options: analysis::Options) -> Result<Compilation, String> {
    let bytes = read_limited(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{}` is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(compile_text_with(
        &path.display().to_string(),
        &text,
        path.parent(),
        options,
    ))
}

/// Loads a policy file or an artifact into a compiled policy.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with(path, Strictness::Deploy)
}

/// How much of a policy must be right for it to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// For `compile` and `serve`: any error, the verifier's included, refuses the policy.
    Deploy,
    /// For `explain`, `query`, `test`, `diff`, `graph`: the policy must parse and resolve,
    /// but the verifier's findings do not stop it. A will topic the client may not
    /// publish is an error for `check`, and exactly what `explain` is asked about.
    Diagnose,
}

/// [`load`] with a choice of [`Strictness`].
pub fn load_with(path: &Path, strictness: Strictness) -> Result<Loaded, LoadError> {
    let bytes = read_limited(path).map_err(LoadError::Io)?;
    if artifact::is_artifact(&bytes) {
        let (resolved, hash) = artifact::decode(&bytes).map_err(LoadError::Artifact)?;
        return Ok(Loaded {
            policy: CompiledPolicy::build(resolved, hash),
            file: None,
            diagnostics: Vec::new(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError::Io(format!(
            "`{}` is neither a policy (not UTF-8 text: invalid byte at offset {}) nor a topicgate artifact",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let c = compile_text(&path.display().to_string(), &text, path.parent());
    match strictness {
        Strictness::Deploy => from_compilation(c),
        Strictness::Diagnose => from_compilation_for_diagnosis(c),
    }
}

/// Builds the decision structure from a compilation whose front end found no error,
/// whatever the verifier found.
pub fn from_compilation_for_diagnosis(c: Compilation) -> Result<Loaded, LoadError> {
    if c.front_end_errors || c.resolved.is_none() {
        return Err(LoadError::Invalid(Box::new(c)));
    }
    build_loaded(c)
}

/// Builds the decision structure from a compilation without errors.
pub fn from_compilation(c: Compilation) -> Result<Loaded, LoadError> {
    if c.has_errors() || c.resolved.is_none() {
        return Err(LoadError::Invalid(Box::new(c)));
    }
    build_loaded(c)
}

fn build_loaded(c: Compilation) -> Result<Loaded, LoadError> {
    let Compilation {
        file,
        resolved,
        diagnostics,
        source_hash,
        ..
    } = c;
    let resolved = resolved.ok_or_else(|| LoadError::Io("internal: no resolved policy".into()))?;
    Ok(Loaded {
        policy: CompiledPolicy::build(resolved, source_hash),
        file: Some(file),
        diagnostics,
    })
}
