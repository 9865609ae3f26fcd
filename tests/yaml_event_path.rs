//! The YAML front end's two paths build the same spanned tree: the event path
//! (built straight from the parser's events, `source/events.rs`) must agree with the
//! serde path (serde-saphyr, decision 0002) node for node and span for span, and must
//! decline whatever it does not handle so that the serde path reads and reports it.
//! See docs/decisions/0013-yaml-front-end-speed.md.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use topicgate::source::synth::{generate, SynthSpec};
use topicgate::source::yaml::{event_tree, parse_tree, serde_tree};

/// The event path reads `text` itself and builds exactly the serde path's tree.
fn assert_same_tree(text: &str) {
    let serde = serde_tree(text).unwrap_or_else(|d| panic!("serde path refused: {d:?}\n{text}"));
    let events = event_tree(text).unwrap_or_else(|| panic!("event path declined:\n{text}"));
    assert_eq!(events, serde, "{text}");
}

#[test]
fn the_repository_policies_read_the_same_on_both_paths() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["policies/lwt.yaml", "policies/factory.yaml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        assert_same_tree(&text);
    }
}

#[test]
fn generated_policies_read_the_same_on_both_paths() {
    for (clients, templates) in [(10, 10), (300, 40)] {
        let text = generate(SynthSpec {
            clients,
            templates,
            bench_clients: 2,
        });
        assert_same_tree(&text);
    }
}

/// Documents the event path must hand to the serde path, which then reads or
/// refuses them exactly as before.
#[test]
fn what_the_event_path_does_not_handle_goes_to_the_serde_path() {
    let declined = [
        // Syntax errors, reported by the serde path with its message and position.
        "clients: [a, b\n",
        "a: b: c\n",
        "clients:\n  c1: {\n",
        // Duplicate keys (an error there), also at the top level and in large maps.
        "a: 1\na: 2\n",
        "clients:\n  c1: {}\n  c1: {}\n",
        // Anchors, aliases, tags and merge keys.
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "base: &b { q: 1 }\nc: { <<: *b }\n",
        "c: { <<: { q: 1 } }\n",
        // Scalars outside the spellings the event path types itself.
        "a: 1.5\n",
        "a: 007\n",
        "a: +1\n",
        "a: 0x1F\n",
        "a: .inf\n",
        "a: -.nan\n",
        "a: 18446744073709551616\n",
        "a: -9223372036854775809\n",
        "a: -x\n",
        // A collection as a key, a `%YAML` directive, two documents, no document.
        "? [a]\n: b\n",
        "%YAML 1.1\n---\na: yes\n",
        "a: 1\n---\nb: 2\n",
        "# only a comment\n",
    ];
    for text in declined {
        assert!(event_tree(text).is_none(), "event path accepted:\n{text}");
        assert_eq!(
            format!("{:?}", parse_tree(text)),
            format!("{:?}", serde_tree(text)),
            "{text}"
        );
    }
    // An empty document is a null on both paths.
    assert_same_tree("---\n");
    let mut big = String::from("m:\n");
    for i in 0..40 {
        big.push_str(&format!("  k{i}: {i}\n"));
    }
    assert_same_tree(&big);
    big.push_str("  k7: again\n");
    assert!(event_tree(&big).is_none(), "duplicate in a large map");
    assert!(serde_tree(&big).is_err());
}

#[test]
fn nesting_beyond_the_limit_is_left_to_the_serde_path() {
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    assert!(event_tree(&deep).is_none());
    let err = parse_tree(&deep).unwrap_err();
    assert_eq!(
        format!("{err:?}"),
        format!("{:?}", serde_tree(&deep).unwrap_err())
    );
}

/// Scalars the event path types itself, in every style, with their YAML meaning.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9/+#._-]{0,10}",
        Just("yes".to_string()),
        Just("on".to_string()),
        Just("No".to_string()),
        Just("true".to_string()),
        Just("FALSE".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("0".to_string()),
        (-100_000i64..100_000).prop_map(|i| i.to_string()),
        Just("9223372036854775807".to_string()),
        Just("9223372036854775808".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("'007'".to_string()),
        Just("\"1.5\"".to_string()),
        Just("\"esc\\taped \\u00e9\"".to_string()),
        Just("'it''s'".to_string()),
        Just("ünïcode ✓".to_string()),
        Just("clients/$<client.authenticationName>/status".to_string()),
        Just("\"attributes.type = 'sensor'\"".to_string()),
        Just("$dollar".to_string()),
        Just("inf".to_string()),
        Just("nan".to_string()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}",
        Just("\"quoted name\"".to_string()),
        Just("'single'".to_string()),
        Just("on".to_string()),
        Just("12".to_string()),
        Just("true".to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(String),
    List(Vec<String>),
    Map(Vec<(String, Value)>),
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => scalar().prop_map(Value::Scalar),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::List),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec((name(), inner), 0..4).prop_map(|entries| {
            // Distinct keys by text: duplicates are the serde path's business.
            let mut seen = std::collections::HashSet::new();
            Value::Map(
                entries
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.trim_matches(['"', '\'']).to_string()))
                    .collect(),
            )
        })
    })
}

/// Writes a value in flow style (`{ a: 1, b: [x] }`).
fn flow(v: &Value, out: &mut String) {
    match v {
        Value::Scalar(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            out.push_str(&items.join(", "));
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                out.push_str(k);
                out.push_str(": ");
                flow(v, out);
            }
            out.push_str(" }");
        }
    }
}

/// Writes `key: value` in block style at `indent`, nested maps and lists in block
/// style too unless `flow_below` says otherwise.
fn block(key: &str, v: &Value, indent: usize, flow_below: bool, nl: &str, out: &mut String) {
    let pad = " ".repeat(indent);
    out.push_str(&pad);
    out.push_str(key);
    out.push(':');
    match v {
        Value::Map(entries) if !flow_below && !entries.is_empty() => {
            out.push_str("  # a comment");
            out.push_str(nl);
            for (k, v) in entries {
                block(k, v, indent + 2, flow_below, nl, out);
            }
        }
        Value::List(items) if !flow_below && !items.is_empty() => {
            out.push_str(nl);
            for item in items {
                out.push_str(&format!("{pad}  - {item}{nl}"));
            }
        }
        _ => {
            out.push(' ');
            flow(v, out);
            out.push_str(nl);
        }
    }
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((name(), value(), any::<bool>()), 0..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(entries, crlf, marker)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut out = String::new();
            if marker {
                out.push_str("# header");
                out.push_str(nl);
                out.push_str("---");
                out.push_str(nl);
            }
            out.push_str("clients:");
            out.push_str(nl);
            let mut seen = std::collections::HashSet::new();
            for (k, v, flow_below) in entries {
                if seen.insert(k.trim_matches(['"', '\'']).to_string()) {
                    block(&k, &v, 2, flow_below, nl, &mut out);
                }
            }
            out.push_str("namespace: ns");
            out.push_str(nl);
            out
        })
}

/// Edits that turn a valid document into a near-valid one: YAML punctuation, the
/// spellings the event path declines, broken quotes and indentation.
fn edit() -> impl Strategy<Value = (prop::sample::Index, &'static str, usize)> {
    (
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            "",
            ":",
            ": ",
            "- ",
            "{",
            "}",
            "[",
            "]",
            ",",
            "'",
            "\"",
            "#",
            "&a ",
            "*a",
            "!!str ",
            "<<: ",
            "? ",
            "\n",
            "\n  ",
            "\t",
            "1.5",
            "0x1F",
            "+1",
            "007",
            ".inf",
            "---\n",
            "|\n  x",
            "%YAML 1.1\n",
            "\u{feff}",
            "é",
        ]),
        0usize..3,
    )
}

/// Applies an edit at a character boundary: inserts `text`, deleting `delete` chars.
fn apply(doc: &str, (at, text, delete): &(prop::sample::Index, &str, usize)) -> String {
    let bounds: Vec<usize> = doc
        .char_indices()
        .map(|(i, _)| i)
        .chain([doc.len()])
        .collect();
    let i = at.index(bounds.len());
    let start = bounds[i];
    let end = bounds[(i + delete).min(bounds.len() - 1)];
    format!("{}{}{}", &doc[..start], text, &doc[end..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// On damaged documents the event path either declines or agrees with the serde
    /// path: it never accepts what the serde path refuses, nor reads it differently.
    #[test]
    fn damaged_documents_are_declined_or_read_the_same(
        text in document(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let text = edits.iter().fold(text, |t, e| apply(&t, e));
        if let Some(events) = event_tree(&text) {
            let serde = serde_tree(&text);
            prop_assert!(serde.is_ok(), "event path accepted what serde refused {:?}:\n{}", serde, text);
            prop_assert_eq!(events, serde.unwrap(), "{}", text);
        }
    }

    #[test]
    fn generated_documents_read_the_same_on_both_paths(text in document()) {
        let serde = serde_tree(&text);
        prop_assert!(serde.is_ok(), "serde path refused {:?}:\n{}", serde, text);
        let events = event_tree(&text);
        prop_assert!(events.is_some(), "event path declined:\n{}", text);
        prop_assert_eq!(events.unwrap(), serde.unwrap(), "{}", text);
    }
}
