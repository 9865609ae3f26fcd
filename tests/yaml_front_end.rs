//! The YAML front end: exact positions for every value, all errors at once,
//! duplicate keys refused, hostile documents bounded. These pin the properties we
//! chose serde-saphyr for (docs/decisions/0002-yaml-front-end.md).

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use topicgate::diag::span::SourceFile;
use topicgate::diag::Code;
use topicgate::pipeline::compile_text;
use topicgate::source::yaml::parse_policy;

const DOC: &str = "clients:\n  sensor1:\n    attributes: { type: sensor }\n  sensor2:\n    attributes:\n      type: sensor\n    will: { topic: clients/sensor1/status, qos: 1 }\n";

#[test]
fn values_keep_line_column_and_byte_span() {
    let (doc, diags) = parse_policy(DOC);
    assert!(diags.is_empty(), "{diags:#?}");
    let doc = doc.unwrap();
    let file = SourceFile::new("p.yaml", DOC);
    let will = doc.clients[1].will.as_ref().unwrap();
    assert_eq!(file.slice(will.topic.span), "clients/sensor1/status");
    assert_eq!(file.line_col(will.topic.span.start as usize), (7, 20));
    let name = &doc.clients[1].name;
    assert_eq!(file.slice(name.span), "sensor2");
    assert_eq!(file.line_col(name.span.start as usize), (4, 3));
    let (k, v) = &doc.clients[0].attributes[0];
    assert_eq!(file.slice(k.span), "type");
    assert_eq!(file.slice(v.span), "sensor");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "clients:\n  a:\n    atributes: {}\n    will: { topic: x, qos: high }\n  b:\n    state: Maybe\npermissionBindings:\n  bnd-1: { clientGroup: g, permision: publisher }\nfoo: 1\n";
    let c = compile_text("p.yaml", text, None);
    let codes: Vec<Code> = c.diagnostics.iter().map(|d| d.code).collect();
    for expected in [
        Code::UnknownKey,
        Code::WrongType,
        Code::InvalidValue,
        Code::MissingField,
    ] {
        assert!(
            codes.contains(&expected),
            "{expected:?} missing from {codes:?}"
        );
    }
    assert!(c.diagnostics.len() >= 6, "{:#?}", c.diagnostics);
    // `topicSpace` is missing; the misspelt `permision` is reported once, as TG002
    // with its correction, and read as `permission` (no "missing field" after it).
    let missing: Vec<&str> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::MissingField)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(missing, ["permission binding `bnd-1` has no `topicSpace`"]);
    let unknown_top = c
        .diagnostics
        .iter()
        .find(|d| d.message.contains("`foo`"))
        .unwrap();
    assert_eq!(
        c.file.line_col(unknown_top.span.unwrap().start as usize),
        (9, 1)
    );
}

#[test]
fn duplicate_keys_are_errors_not_last_wins() {
    let (doc, diags) = parse_policy("clients:\n  a: {}\n  a: { state: Disabled }\n");
    assert!(doc.is_none());
    assert_eq!(diags[0].code, Code::Syntax);
    assert!(
        diags[0].message.to_lowercase().contains("duplicate"),
        "{}",
        diags[0].message
    );
}

#[test]
fn yaml_1_2_scalars_keep_their_text() {
    // `on`, `yes`, `no` are strings in YAML 1.2; a client may well be called `on`.
    let (doc, diags) = parse_policy("clients:\n  on: {}\n  no: { attributes: { flag: yes } }\n");
    assert!(diags.is_empty(), "{diags:#?}");
    let doc = doc.unwrap();
    assert_eq!(doc.clients[0].name.value, "on");
    assert_eq!(doc.clients[1].name.value, "no");
}

#[test]
fn empty_and_comment_only_files_are_empty_policies() {
    for text in ["", "# nothing yet\n", "   \n"] {
        let (doc, diags) = parse_policy(text);
        assert!(diags.is_empty() && doc.is_some(), "{text:?}");
    }
    // A list is YAML, but not a policy: the command cannot run (exit 2).
    let (doc, diags) = parse_policy("- a\n- b\n");
    assert!(doc.is_none());
    assert_eq!(diags[0].code, Code::NotAPolicy);
}

#[test]
fn query_and_template_errors_point_inside_the_string() {
    let text = "clientGroups:\n  grp: { query: \"attributes.a = 1 AND\" }\ntopicSpaces:\n  tsp: { topicTemplates: [ 'a/b+/c' ] }\n";
    let c = compile_text("p.yaml", text, None);
    let q = c
        .diagnostics
        .iter()
        .find(|d| d.code == Code::QuerySyntax)
        .unwrap();
    assert_eq!(
        c.file.line_col(q.span.unwrap().start as usize),
        (2, 38),
        "just after `AND`, where a comparison is missing"
    );
    let t = c
        .diagnostics
        .iter()
        .find(|d| d.code == Code::TemplateSyntax)
        .unwrap();
    assert_eq!(c.file.slice(t.span.unwrap()), "+");
}
