//! Every citation of the semantics document resolves: a `semantics.md §N` (or
//! `§N-§M`, `§N and §M`, `§N, §M`) in the sources, tests and docs names a numbered
//! section `## N.` of `docs/semantics.md`, and so does every `§N` inside that file.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SEMANTICS: &str = "docs/semantics.md";
/// Where citations live: the code, its tests and benches, and the documentation.
const ROOTS: &[&str] = &[
    "src",
    "tests",
    "benches",
    "examples",
    "fuzz",
    "docs",
    "README.md",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The section numbers of the document: its `## N. Title` headings.
fn sections(text: &str) -> BTreeSet<u32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| h.split_once('.'))
        .filter_map(|(n, _)| n.trim().parse().ok())
        .collect()
}

/// The section numbers right after `at` in `text`: `§4`, `§4-§6` (4, 5, 6),
/// `§4 and §6`, `§4, §6`. Stops at the first text that continues no such list.
fn numbers_from(text: &str, at: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = &text[at..];
    let mut range_from: Option<u32> = None;
    while let Some(r) = rest.strip_prefix('§') {
        let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u32>() else { break };
        match range_from.take() {
            // A range is bounded by the document's own numbering, not by the text.
            Some(from) if from < n && n - from <= 20 => out.extend(from + 1..=n),
            _ => out.push(n),
        }
        rest = &r[digits.len()..];
        let joiners = [
            ("-§", true),
            ("–§", true),
            (", §", false),
            (" and §", false),
        ];
        let Some((joiner, is_range)) = joiners.iter().find(|(j, _)| rest.starts_with(j)) else {
            break;
        };
        if *is_range {
            range_from = Some(n);
        }
        rest = &rest[joiner.len() - '§'.len_utf8()..];
    }
    out
}

/// Every citation `semantics.md §...` or `semantics §...` in `text`, as (line, section).
fn citations(text: &str) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (at, word) in line.match_indices("semantics") {
            let after = &line[at + word.len()..];
            let after = after.strip_prefix(".md").unwrap_or(after);
            let after = after.trim_start_matches(['`', ' ']);
            if after.starts_with('§') {
                let start = line.len() - after.len();
                for n in numbers_from(line, start) {
                    out.push((i + 1, n));
                }
            }
        }
    }
    out
}

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        let wanted = path
            .extension()
            .is_some_and(|e| e == "rs" || e == "md" || e == "pest");
        if wanted {
            out.push(path.to_path_buf());
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // Build output and the fuzzer's corpus are not sources.
        if p.file_name()
            .is_some_and(|n| n == "target" || n == "corpus" || n == "artifacts")
        {
            continue;
        }
        files(&p, out);
    }
}

#[test]
fn every_semantics_citation_names_an_existing_section() {
    let doc = std::fs::read_to_string(root().join(SEMANTICS)).expect("docs/semantics.md exists");
    let known = sections(&doc);
    assert!(
        (1..=6).all(|n| known.contains(&n)),
        "sections 1-6 are cited throughout the code: {known:?}"
    );
    let mut all = Vec::new();
    for r in ROOTS {
        files(&root().join(r), &mut all);
    }
    let mut cited = 0;
    let mut broken = Vec::new();
    // This file's own examples cite sections on purpose.
    let this_file = root().join(file!());
    for path in all.iter().filter(|p| **p != this_file) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (line, n) in citations(&text) {
            cited += 1;
            if !known.contains(&n) {
                let shown = path.strip_prefix(root()).unwrap_or(path);
                broken.push(format!("{}:{line}: semantics.md §{n}", shown.display()));
            }
        }
    }
    assert!(
        cited > 30,
        "expected the code to cite semantics.md, found {cited} citations"
    );
    assert!(
        broken.is_empty(),
        "citations of sections {SEMANTICS} does not have:\n{}",
        broken.join("\n")
    );
}

#[test]
fn cross_references_inside_the_document_resolve() {
    let doc = std::fs::read_to_string(root().join(SEMANTICS)).expect("docs/semantics.md exists");
    let known = sections(&doc);
    let mut broken = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            // `§N-§M` is read once, from its first number.
            if line[..at].ends_with('-') {
                continue;
            }
            for n in numbers_from(line, at) {
                if !known.contains(&n) {
                    broken.push(format!("line {}: §{n}", i + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_citation_reader_finds_every_form() {
    assert_eq!(citations("see semantics.md §3."), [(1, 3)]);
    assert_eq!(citations("(semantics.md §4-§6)"), [(1, 4), (1, 5), (1, 6)]);
    assert_eq!(citations("semantics.md §5 and §6"), [(1, 5), (1, 6)]);
    assert_eq!(citations("(semantics.md §4, §6): x"), [(1, 4), (1, 6)]);
    assert_eq!(citations("as `semantics.md` §2 says"), [(1, 2)]);
    assert_eq!(citations("exactly as semantics §5 says"), [(1, 5)]);
    assert_eq!(citations("a\n docs/semantics.md §99"), [(2, 99)]);
    assert_eq!(citations("MQTT 5 §3.1.4, semantics.md"), []);
    let known = sections("# t\n## 1. A\ntext\n## 2. B\n### 2.1 C\n");
    assert_eq!(known, BTreeSet::from([1, 2]));
}
