//! The stage direction, checked (decision 0026): every file under `src/` is read,
//! its imports of other top-level modules (`crate::X`, `use crate::{X, ..}`, and
//! `super::` chains that climb out of its own module) are collected, and each must
//! be an edge of [`ALLOWED`]. A second check keeps topic-level handling (splitting
//! on `/`, comparing with `#` or `+`, testing for `$`) inside `src/topic/`, with the
//! exceptions of [`TOPIC_EXCEPTIONS`] named and explained.
//!
//! Comments, doc comments and string literals are blanked before the import scan,
//! so a doc link such as [`crate::pipeline`] is not an import. The topic scan keeps
//! string literals (they are what it looks for) and skips `#[cfg(test)]` modules,
//! whose test data is full of topics.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the crate and the modules it may import. The stages:
/// topic, diag <- source <- compiler <- decisions <- analysis <- pipeline <- cli.
/// Beside them: certs (certificate files, and development certificates for a
/// policy's clients), eventgrid and export (other formats of a policy), broker
/// (serves a compiled policy), bench (a load generator).
const ALLOWED: &[(&str, &[&str])] = &[
    // The base: topic names, filters, templates and their algebra.
    ("topic", &[]),
    // The base of every report: spans, source files, diagnostics and codes.
    ("diag", &[]),
    ("source", &["topic", "diag"]),
    ("compiler", &["topic", "diag", "source"]),
    // Reads PEM/DER files; `certs init` issues a certificate per client of a
    // resolved policy. The identity decisions use its parsing.
    ("certs", &["diag", "compiler"]),
    (
        "decisions",
        &["topic", "diag", "source", "compiler", "certs"],
    ),
    (
        "analysis",
        &["topic", "diag", "source", "compiler", "decisions"],
    ),
    // Runs the stages in order: read, front end, resolve, build once, verify, load.
    (
        "pipeline",
        &[
            "topic",
            "diag",
            "source",
            "compiler",
            "decisions",
            "analysis",
        ],
    ),
    // Event Grid import/export runs the verifier with Event Grid's limits.
    (
        "eventgrid",
        &[
            "topic",
            "diag",
            "source",
            "compiler",
            "decisions",
            "analysis",
        ],
    ),
    // Other brokers' ACLs, from the compiled policy.
    (
        "export",
        &["topic", "diag", "source", "compiler", "decisions"],
    ),
    // The broker serves a compiled policy it is handed (by `cli serve`): never the
    // front end, the verifier or the pipeline. certs: it reads its own TLS files.
    (
        "broker",
        &["topic", "diag", "compiler", "decisions", "certs"],
    ),
    // The load generator shares the broker's open-file limit raise, nothing else.
    ("bench", &["broker"]),
    // The commands: everything.
    (
        "cli",
        &[
            "topic",
            "diag",
            "source",
            "compiler",
            "certs",
            "decisions",
            "analysis",
            "pipeline",
            "eventgrid",
            "export",
            "broker",
            "bench",
        ],
    ),
];

/// Files outside `src/topic/` that handle topic levels, and why each may. A file
/// not listed here fails the check on its first such line; a listed file may only
/// hold the kinds of match listed for it.
const TOPIC_EXCEPTIONS: &[(&str, &[&str], &str)] = &[
    (
        "decisions/reference.rs",
        &["dollar"],
        "the reference evaluator of the differential tests: its own rules on \
         purpose, so that a bug in src/topic shows up as a disagreement",
    ),
    (
        "eventgrid/import.rs",
        &["split"],
        "splits ARM resource ids (`namespaces/ns/topicSpaces/x`), not topics",
    ),
    (
        "eventgrid/to_policy.rs",
        &["wildcard"],
        "`#` there starts a YAML comment line, not a topic level",
    ),
    (
        "source/format.rs",
        &["wildcard"],
        "`#` there starts a YAML comment line, not a topic level",
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, relative to `src/`, in order. Bounded: the tree is
/// the crate's own.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src()).expect("under src").to_path_buf());
        }
    }
}

/// The source with comments blanked (newlines kept, so byte offsets and line numbers
/// stay), and a copy with string and char literals blanked too.
struct Stripped {
    code: String,
    no_strings: String,
}

fn strip(text: &str) -> Stripped {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut no_strings = b.to_vec();
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut v[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut code, i, end);
            blank(&mut no_strings, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            // Nested block comments, as Rust has them.
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            blank(&mut no_strings, i, j);
            i = j;
        } else if let Some(len) = raw_string_len(rest) {
            blank(&mut no_strings, i, i + len);
            i += len;
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut no_strings, i, (j + 1).min(b.len()));
            i = j + 1;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a) left as is.
            let len = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(3).position(|&c| c == b'\'').map(|p| p + 4)
            } else {
                let ch = std::str::from_utf8(&rest[1..rest.len().min(5)])
                    .ok()
                    .or_else(|| std::str::from_utf8(&rest[1..]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(ch + 2)
            };
            match len {
                Some(len) => {
                    blank(&mut no_strings, i, i + len);
                    i += len;
                }
                None => i += 1,
            }
        } else if is_ident_byte(rest[0]) {
            // A whole identifier, so that an `r` or `b` inside one starts no literal.
            i += rest.iter().take_while(|&&c| is_ident_byte(c)).count();
        } else {
            i += 1;
        }
    }
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    Stripped {
        code: text(code),
        no_strings: text(no_strings),
    }
}

/// The length of a raw string literal (`r"..."`, `r#"..."#`, `br"..."`) at the
/// start of `s`, if one is there.
fn raw_string_len(s: &[u8]) -> Option<usize> {
    let after_prefix = if s.starts_with(b"br") {
        2
    } else if s.starts_with(b"r") {
        1
    } else {
        return None;
    };
    let hashes = s[after_prefix..].iter().take_while(|&&c| c == b'#').count();
    let open = after_prefix + hashes;
    if s.get(open) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = &s[open + 1..];
    body.windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|p| open + 1 + p + close.len())
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The inline modules (`mod name { .. }`) of a file: byte ranges, their names, and
/// whether a `#[cfg(test)]` stands before them. Found on the comment- and
/// string-free text, by brace depth.
struct InlineMod {
    start: usize,
    end: usize,
    test: bool,
}

fn inline_mods(code: &str) -> Vec<InlineMod> {
    let re = Regex::new(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{").expect("regex");
    let b = code.as_bytes();
    re.find_iter(code)
        .map(|m| {
            let open = m.end() - 1;
            let mut depth = 0usize;
            let mut end = b.len();
            for (j, &c) in b.iter().enumerate().skip(open) {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let before = &code[..m.start()];
            let attrs_start = before.rfind([';', '}', '{']).map_or(0, |p| p + 1);
            let test = before[attrs_start..].contains("cfg(test)");
            InlineMod {
                start: m.start(),
                end,
                test,
            }
        })
        .collect()
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&c| c == b'\n').count() + 1
}

/// The module path of a file: `broker/tls/mod.rs` is `[broker, tls]`.
fn module_path(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// One import of another top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    file: String,
    line: usize,
    target: String,
    text: String,
}

/// The top-level modules `file` imports, with where.
fn imports(file: &Path, text: &str, modules: &BTreeSet<String>) -> Vec<Import> {
    let s = strip(text);
    let code = &s.no_strings;
    let shown = &s.code;
    let path = module_path(file);
    let own = &path[0];
    let mods = inline_mods(code);
    let mut out = Vec::new();
    let mut push = |at: usize, target: &str, text: &str| {
        if target != own && modules.contains(target) {
            out.push(Import {
                file: file.display().to_string(),
                line: line_of(code, at),
                target: target.to_string(),
                text: text.trim().to_string(),
            });
        }
    };
    let crate_path =
        Regex::new(r"(^|[^A-Za-z0-9_$:])crate\s*::\s*(\{|[A-Za-z_][A-Za-z0-9_]*)").expect("regex");
    for c in crate_path.captures_iter(code) {
        let whole = c.get(0).expect("match");
        let head = c.get(2).expect("head");
        if head.as_str() == "{" {
            for name in group_heads(&code[head.start()..]) {
                push(whole.start(), &name, line_text(shown, whole.start()));
            }
        } else {
            push(
                whole.start(),
                head.as_str(),
                line_text(shown, whole.start()),
            );
        }
    }
    // `super::super::x`: resolved from the file's module path plus the inline
    // modules the occurrence sits in.
    let supers = Regex::new(r"(^|[^A-Za-z0-9_:])((?:super\s*::\s*)+)(\{|[A-Za-z_][A-Za-z0-9_]*)")
        .expect("regex");
    for c in supers.captures_iter(code) {
        let at = c.get(2).expect("supers").start();
        let count = c[2].matches("super").count();
        let depth = path.len() + mods.iter().filter(|m| m.start < at && at < m.end).count();
        if count < depth {
            continue; // stays inside its own top-level module
        }
        assert!(
            count == depth,
            "{}:{}: `super::` climbs above the crate root",
            file.display(),
            line_of(code, at)
        );
        let head = c.get(3).expect("head");
        let names = if head.as_str() == "{" {
            group_heads(&code[head.start()..])
        } else {
            vec![head.as_str().to_string()]
        };
        for name in names {
            push(at, &name, line_text(shown, at));
        }
    }
    out.sort();
    out
}

/// The first path segment of each item of a `{a, b::c, d as e}` group.
fn group_heads(group: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut end = group.len();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &group[1..end];
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let item = inner[start..i].trim();
                let head: String = item
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    heads.push(head);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    heads
}

fn line_text(code: &str, at: usize) -> &str {
    let start = code[..at].rfind('\n').map_or(0, |p| p + 1);
    let end = code[at..].find('\n').map_or(code.len(), |p| at + p);
    &code[start..end]
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect()
}

fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let re = Regex::new(r"(?m)^\s*pub\s+mod\s+([a-z_]+)\s*;").expect("regex");
    re.captures_iter(&lib).map(|c| c[1].to_string()).collect()
}

/// The import violations in all of `src/`: `file:line: module imports target: text`.
fn direction_violations() -> Vec<String> {
    let modules = top_level_modules();
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = Vec::new();
    for file in files {
        let path = module_path(&file);
        if path.len() == 1 && (path[0] == "lib" || path[0] == "main") {
            continue; // the crate root declares the modules; main calls cli
        }
        let own = path[0].as_str();
        let text = std::fs::read_to_string(src().join(&file)).expect("read");
        let Some(may) = allowed.get(own) else {
            out.push(format!(
                "{}: module `{own}` is not in tests/architecture.rs ALLOWED: add it with its allowed imports",
                file.display()
            ));
            continue;
        };
        for i in imports(&file, &text, &modules) {
            if !may.contains(i.target.as_str()) {
                out.push(format!(
                    "src/{}:{}: `{own}` may not import `{}` (allowed: {:?}): {}",
                    i.file, i.line, i.target, may, i.text
                ));
            }
        }
    }
    out
}

#[test]
fn imports_follow_the_stage_direction() {
    let v = direction_violations();
    assert!(
        v.is_empty(),
        "imports against the stage direction (decision 0026):\n{}",
        v.join("\n")
    );
}

#[test]
fn every_module_is_in_the_table_and_the_table_has_no_cycle() {
    let modules = top_level_modules();
    let allowed = allowed();
    let listed: BTreeSet<String> = allowed.keys().map(|k| k.to_string()).collect();
    assert_eq!(modules, listed, "lib.rs modules and ALLOWED differ");
    // Kahn's algorithm: every module can be placed after all it imports.
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for _ in 0..allowed.len() {
        let ready: Vec<&str> = allowed
            .iter()
            .filter(|(m, deps)| !placed.contains(*m) && deps.iter().all(|d| placed.contains(d)))
            .map(|(m, _)| *m)
            .collect();
        placed.extend(ready);
    }
    let cyclic: Vec<_> = allowed.keys().filter(|m| !placed.contains(*m)).collect();
    assert!(
        cyclic.is_empty(),
        "allowed imports form a cycle through {cyclic:?}"
    );
}

/// The kinds of topic-level handling the topic check looks for.
fn topic_patterns() -> Vec<(&'static str, Regex)> {
    let lit = r#"(?:'[#+]'|"[#+]")"#;
    vec![
        (
            "split",
            Regex::new(
                r#"\.(?:r?split|r?splitn|r?split_once|split_terminator|split_inclusive)\(\s*(?:\d+\s*,\s*)?(?:'/'|"/")\s*\)"#,
            )
            .expect("regex"),
        ),
        (
            "wildcard",
            Regex::new(&format!(
                r#"(?:==|!=)\s*\*?\s*{lit}|{lit}\s*(?:==|!=)|\.(?:get|contains|find|starts_with|ends_with|strip_prefix|strip_suffix|split)\(\s*&?(?:{lit}|\[\s*{lit}\s*,\s*{lit}\s*\])\s*\)"#
            ))
            .expect("regex"),
        ),
        (
            "dollar",
            Regex::new(r#"\.(?:starts_with|strip_prefix)\(\s*(?:'\$'|"\$[^"]*")\s*\)"#)
                .expect("regex"),
        ),
    ]
}

/// Topic-level handling outside src/topic/ that no exception covers.
fn topic_violations() -> Vec<String> {
    let exceptions: BTreeMap<&str, &[&str]> = TOPIC_EXCEPTIONS
        .iter()
        .map(|(f, kinds, _)| (*f, *kinds))
        .collect();
    let patterns = topic_patterns();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = Vec::new();
    for file in files {
        if file.starts_with("topic") {
            continue;
        }
        let name = file.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(src().join(&file)).expect("read");
        let s = strip(&text);
        let tests = inline_mods(&s.no_strings);
        let in_test = |at: usize| tests.iter().any(|m| m.test && m.start <= at && at < m.end);
        for (kind, re) in &patterns {
            if exceptions
                .get(name.as_str())
                .is_some_and(|k| k.contains(kind))
            {
                continue;
            }
            for m in re.find_iter(&s.code) {
                if !in_test(m.start()) {
                    out.push(format!(
                        "src/{name}:{}: topic handling ({kind}) outside src/topic: {}",
                        line_of(&s.code, m.start()),
                        line_text(&s.code, m.start()).trim()
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn topic_levels_are_handled_only_in_src_topic() {
    let v = topic_violations();
    assert!(
        v.is_empty(),
        "move this into src/topic, or add an exception with its reason to TOPIC_EXCEPTIONS:\n{}",
        v.join("\n")
    );
}

/// An exception that no longer matches anything is stale: remove it, so that the
/// list shows only what is still true.
#[test]
fn every_topic_exception_is_still_needed() {
    let patterns = topic_patterns();
    let mut stale = Vec::new();
    for (file, kinds, _) in TOPIC_EXCEPTIONS {
        let path = src().join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            stale.push(format!("{file}: no such file"));
            continue;
        };
        let s = strip(&text);
        let tests = inline_mods(&s.no_strings);
        for kind in *kinds {
            let re = &patterns.iter().find(|(k, _)| k == kind).expect("kind").1;
            let used = re.find_iter(&s.code).any(|m| {
                !tests
                    .iter()
                    .any(|t| t.test && t.start <= m.start() && m.start() < t.end)
            });
            if !used {
                stale.push(format!("{file}: {kind}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale TOPIC_EXCEPTIONS entries: {stale:?}"
    );
}

/// The checks themselves: they see what they must, on made-up files.
#[test]
fn the_scanner_finds_imports_and_ignores_comments_and_strings() {
    let modules: BTreeSet<String> = ["analysis", "compiler", "topic", "broker", "export"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let text = r#"
//! See [`crate::analysis`] for the rules.
use crate::{topic::Filter, compiler::{model, CompiledPolicy}};
use super::super::analysis::Options;
const S: &str = "crate::broker";
/* crate::broker */
fn f() { let _ = crate::topic::matches("a", "b"); let c = '{'; }
#[cfg(test)]
mod tests {
    use super::super::super::export::x;
}
"#;
    let found: Vec<String> = imports(Path::new("compiler/resolve.rs"), text, &modules)
        .into_iter()
        .map(|i| format!("{}:{}", i.line, i.target))
        .collect();
    // compiler's own imports are not edges; the doc link, the string and the block
    // comment are none; `super::super` from compiler/resolve.rs is the crate root,
    // and one level more inside `mod tests`.
    assert_eq!(found, ["3:topic", "4:analysis", "7:topic", "10:export"]);
}

#[test]
fn the_topic_scan_sees_splits_and_wildcard_comparisons() {
    let patterns = topic_patterns();
    let kinds = |line: &str| -> Vec<&str> {
        patterns
            .iter()
            .filter(|(_, re)| re.is_match(line))
            .map(|(k, _)| *k)
            .collect()
    };
    assert_eq!(kinds("for l in topic.split('/') {"), ["split"]);
    assert_eq!(kinds("let (a, b) = rest.split_once(\"/\")?;"), ["split"]);
    assert_eq!(kinds("if level == \"#\" {"), ["wildcard"]);
    assert_eq!(kinds("if *s == '+' {"), ["wildcard"]);
    assert_eq!(kinds("node.children.get(\"+\")"), ["wildcard"]);
    assert_eq!(kinds("filter.find(['+', '#'])"), ["wildcard"]);
    assert_eq!(kinds("topic.starts_with('$')"), ["dollar"]);
    assert_eq!(kinds("f.starts_with(\"$share/\")"), ["dollar"]);
    // Not topic handling.
    assert!(kinds("path.split(':')").is_empty());
    assert!(kinds("matches!(c, '-' | '+')").is_empty());
    assert!(kinds("out.push('#')").is_empty());
}

/// Errors as types (decision 0026): no public function of the library returns
/// `Result<_, String>`. A caller can match on an error type, and `?` keeps its source.
#[test]
fn no_public_function_returns_a_string_error() {
    let re = Regex::new(
        r"pub\s+(?:async\s+)?fn\s+([A-Za-z0-9_]+)[^{;]*?->\s*Result<[^{;]*,\s*String\s*>\s*(?:where[^{]*)?\{",
    )
    .expect("regex");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(src().join(&file)).expect("read");
        let code = strip(&text).no_strings;
        for c in re.captures_iter(&code) {
            let at = c.get(0).expect("match").start();
            found.push(format!(
                "src/{}:{}: {}",
                file.display(),
                line_of(&code, at),
                &c[1]
            ));
        }
    }
    assert!(
        found.is_empty(),
        "public functions returning Result<_, String>:\n{}",
        found.join("\n")
    );
}
