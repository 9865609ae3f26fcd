//! Diagnostics lead to the fix: the cause first, follow-on findings not reported as
//! errors of their own (issue 16). The seed policy with one mistake each.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use topicgate::diag::{render, Code, Severity};
use topicgate::pipeline::compile_text;

fn seed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/lwt.yaml"))
        .expect("seed policy")
}

/// The seed with `from` replaced by `to` (which must occur).
fn seed_with(from: &str, to: &str) -> String {
    let seed = seed();
    assert!(seed.contains(from), "the seed changed; update this test");
    seed.replacen(from, to, 1)
}

fn errors(text: &str) -> Vec<Code> {
    compile_text("lwt.yaml", text, None)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

fn human(text: &str) -> String {
    let c = compile_text("lwt.yaml", text, None);
    render::human_all(&c.diagnostics, &c.file, false)
}

fn snap(name: &str, text: String) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/causes"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

/// `topicTemplate` for `topicTemplates` used to give five errors with the real one
/// fourth: a missing field, the binding's "unknown topic space" suggesting another
/// one, and two denied wills. Now the typo alone, with its correction.
#[test]
fn a_misspelt_key_is_the_only_error() {
    let text = seed_with(
        "  lwt-pub:\n    topicTemplates:",
        "  lwt-pub:\n    topicTemplate:",
    );
    assert_eq!(errors(&text), [Code::UnknownKey]);
    let out = human(&text);
    assert!(out.contains("did you mean `topicTemplates`?"), "{out}");
    snap("misspelt_topic_templates", out);
}

/// A topic space that cannot be read leaves the sensors without their binding: the
/// denied wills are printed after the cause, as notes that may follow from it.
#[test]
fn findings_about_access_after_a_schema_error_are_consequences_printed_last() {
    let text = seed_with(
        "  lwt-pub:\n    topicTemplates: [ \"clients/${client.authenticationName}/status\" ]",
        "  lwt-pub: [ \"clients/${client.authenticationName}/status\" ]",
    );
    let c = compile_text("lwt.yaml", &text, None);
    let wills: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::WillNotPermitted)
        .collect();
    assert_eq!(wills.len(), 2, "{:#?}", c.diagnostics);
    for w in wills {
        assert_eq!(w.severity, Severity::Info);
        assert!(
            w.message
                .contains("may follow from the earlier error TG003"),
            "{}",
            w.message
        );
    }
    let out = human(&text);
    let cause = out.find("TG003").expect("the cause is reported");
    let consequence = out.find("TG401").expect("the consequence is reported");
    assert!(cause < consequence, "{out}");
    snap("unreadable_topic_space", out);
}

/// Without an earlier error a denied will is an error, as before.
#[test]
fn a_denied_will_alone_is_an_error() {
    let text = seed_with(
        "will: { topic: clients/sensor2/status",
        "will: { topic: clients/sensor1/status",
    );
    assert_eq!(errors(&text), [Code::WillNotPermitted]);
}

/// Syntax and schema errors come first, whatever their position.
#[test]
fn schema_errors_are_printed_before_later_stages() {
    let text = seed_with(
        "    permission: subscriber",
        "    permission: subscriber\n    colour: red",
    )
    .replacen("clientGroup: sensors", "clientGroup: sensorz", 1);
    let out = human(&text);
    let schema = out.find("TG002").expect("unknown key");
    let reference = out.find("TG101").expect("unknown group");
    assert!(schema < reference, "{out}");
}

/// A client group whose body cannot be read stays declared: the binding naming it is
/// not "unknown client group" with a suggestion of another group.
#[test]
fn an_unreadable_group_is_still_declared() {
    let text = seed_with(
        "  sensors:\n    query: attributes.type = 'sensor'",
        "  sensors: [ attributes.type = 'sensor' ]",
    );
    let c = compile_text("lwt.yaml", &text, None);
    let codes: Vec<Code> = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    assert_eq!(codes, [Code::WrongType], "{:#?}", c.diagnostics);
    // A group without its query is the same cause, reported once.
    let text = seed_with(
        "  sensors:\n    query: attributes.type = 'sensor'",
        "  sensors:\n    description: no query",
    );
    assert_eq!(errors(&text), [Code::MissingField]);
}
