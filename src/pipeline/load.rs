//! Loading a policy file or a compiled artifact into a policy ready for decisions.

use super::compile::{compile_text, Compilation};
use super::read::{read_limited, ReadError};
use crate::compiler::artifact::{self, ArtifactError};
use crate::compiler::compiled::CompiledPolicy;
use crate::diag::span::SourceFile;
use crate::diag::Diagnostics;
use std::path::{Path, PathBuf};

/// Why a file could not be loaded as a compiled policy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read (exit 2).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file is neither text nor an artifact (exit 2).
    #[error("`{}` is neither a policy (not UTF-8 text: invalid byte at offset {offset}) nor a topicgate artifact", path.display())]
    NotText { path: PathBuf, offset: usize },
    /// The file is an artifact that cannot be decoded (exit 2).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The policy has errors; they are in the compilation's diagnostics (exit 1, or
    /// 2 when the text is not a readable policy at all).
    #[error("{}", invalid_summary(.0))]
    Invalid(Box<Compilation>),
}

fn invalid_summary(c: &Compilation) -> String {
    let n = c.diagnostics.iter().filter(|d| d.is_error()).count();
    format!(
        "policy `{}` has {n} error{}",
        c.file.name,
        if n == 1 { "" } else { "s" }
    )
}

/// A policy ready for decisions, and where it came from.
pub struct Loaded {
    pub policy: CompiledPolicy,
    /// The source, when loaded from a policy file (not an artifact).
    pub file: Option<SourceFile>,
    /// Warnings found while compiling.
    pub diagnostics: Diagnostics,
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

/// Loads a policy file or an artifact into a compiled policy.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with(path, Strictness::Deploy)
}

/// [`load`] with a choice of [`Strictness`].
pub fn load_with(path: &Path, strictness: Strictness) -> Result<Loaded, LoadError> {
    let bytes = read_limited(path)?;
    if artifact::is_artifact(&bytes) {
        let (resolved, hash) = artifact::decode(&bytes)?;
        return Ok(Loaded {
            policy: CompiledPolicy::build(resolved, hash),
            file: None,
            diagnostics: Vec::new(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| LoadError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let c = compile_text(&path.display().to_string(), &text, path.parent());
    match strictness {
        Strictness::Deploy => from_compilation(c),
        Strictness::Diagnose => from_compilation_for_diagnosis(c),
    }
}

/// Takes the decision structure of a compilation whose front end found no error,
/// whatever the verifier found.
pub fn from_compilation_for_diagnosis(c: Compilation) -> Result<Loaded, LoadError> {
    if c.front_end_errors {
        return Err(LoadError::Invalid(Box::new(c)));
    }
    into_loaded(c)
}

/// Takes the decision structure of a compilation without errors.
pub fn from_compilation(c: Compilation) -> Result<Loaded, LoadError> {
    if c.has_errors() {
        return Err(LoadError::Invalid(Box::new(c)));
    }
    into_loaded(c)
}

/// The compilation's decision structure as it is: the verifier ran over it, and a
/// load does not build it again.
fn into_loaded(mut c: Compilation) -> Result<Loaded, LoadError> {
    match c.compiled.take() {
        Some(policy) => Ok(Loaded {
            policy,
            file: Some(c.file),
            diagnostics: c.diagnostics,
        }),
        None => Err(LoadError::Invalid(Box::new(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::compiled::BUILDS;

    const POLICY: &str = "\
clients:
  sensor1: { attributes: { type: sensor } }
clientGroups:
  sensors: { query: \"attributes.type = 'sensor'\" }
topicSpaces:
  status: { topicTemplates: [ 'clients/${client.authenticationName}/status' ] }
permissionBindings:
  pub: { clientGroup: sensors, topicSpace: status, permission: Publisher }
";

    fn builds() -> usize {
        BUILDS.with(|b| b.get())
    }

    /// The verifier and the decisions share one decision structure: a load builds
    /// the index once (it built it twice when the compiler called the verifier).
    #[test]
    fn a_load_builds_the_index_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, POLICY).expect("write");
        for strictness in [Strictness::Deploy, Strictness::Diagnose] {
            let before = builds();
            let loaded = load_with(&path, strictness).expect("loads");
            assert_eq!(builds() - before, 1, "{strictness:?}");
            assert!(
                loaded
                    .policy
                    .decide_publish(0, "clients/sensor1/status")
                    .allowed
            );
            assert!(
                !loaded
                    .policy
                    .decide_publish(0, "clients/other/status")
                    .allowed
            );
        }
    }

    /// A compiled artifact builds it once too, and an invalid policy loads nothing.
    #[test]
    fn an_artifact_builds_the_index_once_and_errors_load_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = compile_text("p.yaml", POLICY, None);
        let loaded = from_compilation(c).expect("compiles");
        let bytes =
            artifact::encode(&loaded.policy.policy, &loaded.policy.source_hash).expect("encode");
        let path = dir.path().join("p.tgc");
        std::fs::write(&path, bytes).expect("write");
        let before = builds();
        load(&path).expect("loads");
        assert_eq!(builds() - before, 1);

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "clients: [").expect("write");
        assert!(matches!(load(&bad), Err(LoadError::Invalid(_))));
    }
}
