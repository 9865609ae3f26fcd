//! `docs/rules.md` is generated from the rule registry and the rule files' doc
//! comments; this test fails when it drifts. `UPDATE_RULES_DOC=1` rewrites it.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use topicgate::analysis::docs::{documentation, rules_markdown};
use topicgate::diag::Code;

#[test]
fn docs_rules_md_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md");
    let generated = rules_markdown();
    if std::env::var_os("UPDATE_RULES_DOC").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/rules.md is out of date: run `UPDATE_RULES_DOC=1 cargo test --test rules_doc`"
    );
}

#[test]
fn every_code_is_unique_and_documented() {
    let mut codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    codes.sort();
    let n = codes.len();
    codes.dedup();
    assert_eq!(codes.len(), n, "codes are unique");
    for c in Code::ALL {
        let doc = documentation(*c);
        assert!(doc.trim().len() > 20, "{} has no documentation", c.as_str());
        if topicgate::analysis::rules::rule_for(*c).is_some() {
            for section in ["## What it does", "## Why is this bad?", "## Example"] {
                assert!(doc.contains(section), "{} lacks `{section}`", c.as_str());
            }
        }
    }
}
