//! One fixture per rule (`tests/fixtures/rules/TGnnn-*.yaml|policy`): each must report
//! its own code, and its human and JSON reports are pinned by snapshots.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use topicgate::analysis::{Options, Target};
use topicgate::diag::report::{json_report, FileReport};
use topicgate::diag::{render, Code};
use topicgate::pipeline::compile_text_with;

const DIR: &str = "tests/fixtures/rules";

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".policy"))
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).expect("fixture text");
            (n, text)
        })
        .collect();
    out.sort();
    out
}

/// `# target: eventgrid` on the first line checks the fixture for Event Grid.
fn options(text: &str) -> Options {
    let target = if text
        .lines()
        .next()
        .is_some_and(|l| l.contains("target: eventgrid"))
    {
        Target::EventGrid
    } else {
        Target::Local
    };
    Options {
        target,
        ..Default::default()
    }
}

#[test]
fn every_fixture_reports_its_code_and_matches_its_snapshots() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    for (name, text) in fixtures() {
        let code = name.split('-').next().unwrap_or_default();
        let path = format!("{DIR}/{name}");
        let c = compile_text_with(&path, &text, Some(&base), options(&text));
        assert!(
            c.diagnostics.iter().any(|d| d.code.as_str() == code),
            "{name} should report {code}, got {:#?}",
            c.diagnostics
        );
        let human = render::human_all(&c.diagnostics, &c.file, false);
        let json = serde_json::to_string_pretty(&json_report(&[FileReport {
            file: &c.file,
            diagnostics: &c.diagnostics,
        }]))
        .unwrap();
        let stem = name
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or(&name)
            .to_string();
        let ext = name.rsplit('.').next().unwrap_or_default();
        let snap = if ext == "policy" {
            format!("{stem}.dsl")
        } else {
            stem
        };
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/check_rules"),
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("{snap}.human"), human);
            insta::assert_snapshot!(format!("{snap}.json"), json);
        });
    }
}

#[test]
fn every_code_has_a_fixture() {
    let names: Vec<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !names.iter().any(|n| n.starts_with(&format!("{c}-"))))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a fixture in {DIR}: {missing:?}"
    );
}
