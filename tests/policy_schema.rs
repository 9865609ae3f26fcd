//! `schema/policy.schema.json` (editor support: completion and red squiggles through
//! yaml-language-server) is kept equal to what the YAML reader accepts: every policy
//! in `policies/` and every fixture in `tests/fixtures/` that the reader finds no
//! schema error in validates, and every fixture with a schema error is rejected.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use topicgate::diag::Code;
use topicgate::pipeline::compile_text;

/// The reader's findings that are about the shape of the document: what the schema
/// describes.
const SCHEMA_CODES: &[Code] = &[
    Code::UnknownKey,
    Code::WrongType,
    Code::MissingField,
    Code::InvalidValue,
    Code::InvalidName,
    Code::RedefinedAll,
    Code::NotAPolicy,
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema/policy.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Every YAML policy of the repository (not the test files `*.tests.yaml`).
fn yaml_policies() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("policies"), root().join("tests/fixtures")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".yaml") && !name.ends_with(".tests.yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_schema_accepts_what_the_reader_accepts_and_rejects_its_schema_errors() {
    let validator = validator();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for path in yaml_policies() {
        let name = relative(&path);
        let text = std::fs::read_to_string(&path).expect("read policy");
        // Not YAML at all: nothing for a schema to say.
        let Ok(json) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let compilation = compile_text(&name, &text, path.parent());
        let schema_errors: Vec<&str> = compilation
            .diagnostics
            .iter()
            .filter(|d| d.is_error() && SCHEMA_CODES.contains(&d.code))
            .map(|d| d.message.as_str())
            .collect();
        let reader_accepts = schema_errors.is_empty();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        let schema_accepts = errors.is_empty();
        checked += 1;
        if schema_accepts != reader_accepts {
            mismatches.push(format!(
                "{name}: reader {:?}, schema {:?}",
                schema_errors, errors
            ));
        }
    }
    assert!(checked > 30, "only {checked} policies found");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn example_policies_name_the_schema_for_editors() {
    for path in yaml_policies()
        .into_iter()
        .filter(|p| p.starts_with(root().join("policies")))
    {
        let text = std::fs::read_to_string(&path).expect("read policy");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l
                    .starts_with("# yaml-language-server: $schema=../schema/policy.schema.json")),
            "{} lacks the yaml-language-server modeline on its first line",
            relative(&path)
        );
    }
}
