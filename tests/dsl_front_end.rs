//! The DSL front end: diagnostics point into `.policy` text as precisely as into
//! YAML, every mistake is reported at once, and hostile input fails cleanly.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use topicgate::diag::{Code, Diagnostic};
use topicgate::pipeline::compile_text;
use topicgate::source::dsl;

fn diags(text: &str) -> (Vec<Diagnostic>, topicgate::diag::span::SourceFile) {
    let c = compile_text("p.policy", text, None);
    (c.diagnostics, c.file)
}

/// (code, line, column, text under the span) of every finding.
fn at(text: &str) -> Vec<(Code, usize, usize, String)> {
    let (d, file) = diags(text);
    d.iter()
        .map(|d| {
            let span = d.span.unwrap_or_default();
            let (line, col) = file.line_col(span.start as usize);
            (d.code, line, col, file.slice(span).to_string())
        })
        .collect()
}

const BASE: &str =
    "client s1 { attributes { type = sensor } }\nclient a1 { attributes { type = actuator } }\n\
group sensors = attributes.type = 'sensor'\ngroup actuators = attributes.type = 'actuator'\n\
topicspace status { template \"clients/$<client.authenticationName>/status\" }\n\
topicspace all-status { template \"clients/+/status\" }\n\
binding sensors-pub { group sensors; permission publisher; topicspace status }\n\
binding actuators-sub { group actuators; permission subscriber; topicspace all-status }\n";

#[test]
fn a_clean_policy_has_no_findings() {
    assert_eq!(at(BASE), vec![]);
}

#[test]
fn errors_inside_templates_and_queries_point_at_their_column() {
    let text = BASE
        .replace("clients/+/status\" }", "clients/a+/status\" }")
        .replace("= 'actuator'", "== 'actuator'");
    let found = at(&text);
    assert!(
        found.contains(&(Code::TemplateSyntax, 6, 44, "+".into())),
        "{found:#?}"
    );
    assert!(
        found.contains(&(Code::QuerySyntax, 4, 36, "=".into())),
        "{found:#?}"
    );
}

#[test]
fn every_mistake_is_reported_at_once_with_suggestions() {
    let text = BASE
        .replace("permission publisher", "permission publish")
        .replace("group actuators;", "group actuator;")
        + "client s1 {}\nclient s2 { subscribe [\"x\"] }\nclientt x {}\n";
    let (d, _) = diags(&text);
    let codes: Vec<Code> = d.iter().map(|d| d.code).collect();
    for c in [
        Code::InvalidValue,
        Code::UnknownGroup,
        Code::DuplicateName,
        Code::UnknownKey,
    ] {
        assert!(codes.contains(&c), "{c:?} missing: {d:#?}");
    }
    let helps: Vec<&str> = d.iter().filter_map(|d| d.help.as_deref()).collect();
    assert!(helps.contains(&"did you mean `publisher`?"), "{helps:?}");
    assert!(helps.contains(&"did you mean `actuators`?"), "{helps:?}");
    assert!(helps.contains(&"did you mean `subscribes`?"), "{helps:?}");
    assert!(helps.contains(&"did you mean `client`?"), "{helps:?}");
}

#[test]
fn values_read_as_the_yaml_form_reads_them() {
    let text = "client \"dev 1\" {\n  authenticationName \"Dev\\\"1\"\n  state Disabled\n  attributes { floor = -3; tags = [\"a\", \"b\"]; on = true }\n  will \"clients/dev/status\" qos 1 retain delay 30\n}\n";
    let (doc, d) = dsl::parse_policy(text);
    let doc = doc.expect("parses");
    let c = &doc.clients[0];
    assert_eq!(c.name.value, "dev 1");
    assert_eq!(c.authentication_name.as_ref().unwrap().value, "Dev\"1");
    let will = c.will.as_ref().unwrap();
    assert_eq!(
        (
            will.qos.as_ref().unwrap().value,
            will.retain.as_ref().unwrap().value,
            will.delay_seconds.as_ref().unwrap().value
        ),
        (1, true, 30)
    );
    // `on = true` is a boolean attribute, as in YAML (decision 0019).
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(
        c.attributes[2].1.value,
        topicgate::source::model::AttrValue::Bool(true)
    );
}

#[test]
fn syntax_errors_and_hostile_input_fail_cleanly() {
    for text in [
        "client a {",
        "client a { will \"x }\n",
        "\"",
        "group g =\n",
        "}}}}",
        "client a { attributes { x = [1, } }",
    ] {
        let (d, _) = diags(text);
        assert!(d.iter().any(|d| d.is_error()), "{text:?}: {d:#?}");
    }
    let deep = "client a ".to_string() + &"{ x ".repeat(100_000) + &"}".repeat(100_000);
    let (d, _) = diags(&deep);
    assert_eq!(d[0].code, Code::Syntax, "{:?}", d[0]);
    let lists = "client a { publishes ".to_string() + &"[".repeat(100_000) + " }";
    assert_eq!(diags(&lists).0[0].code, Code::Syntax);
}
