//! What the policy model learnt from Event Grid (issue 13, decision 0019): namespace
//! settings, the CA description, boolean attributes, and the ARM key names accepted
//! as aliases. Each survives `policy fmt` in both forms, and each has its denied side.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use topicgate::compiler::compiled::CompiledPolicy;
use topicgate::diag::{has_errors, Code};
use topicgate::pipeline::compile_text;
use topicgate::source::format::{to_dsl, to_yaml};
use topicgate::source::{dsl, yaml};

fn compiled(text: &str) -> CompiledPolicy {
    let c = compile_text("p.yaml", text, None);
    assert!(!c.has_errors(), "{text}\n{:#?}", c.diagnostics);
    c.compiled.expect("resolved")
}

/// The policy as the front end resolved it, errors of the verifier or not.
fn compiled_with_errors(text: &str) -> CompiledPolicy {
    let c = compile_text("p.yaml", text, None);
    c.compiled.expect("resolved")
}

fn codes(text: &str) -> Vec<(Code, String)> {
    compile_text("p.yaml", text, None)
        .diagnostics
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

fn client(p: &CompiledPolicy, name: &str) -> u32 {
    p.policy
        .clients
        .iter()
        .position(|c| c.name.value == name)
        .expect("client") as u32
}

/// YAML -> YAML and YAML -> DSL -> YAML, each read back without errors.
fn both_forms(text: &str) -> (String, String) {
    let (doc, diags) = yaml::parse_policy(text);
    assert!(!has_errors(&diags), "{diags:#?}");
    let yaml1 = to_yaml(&doc.expect("doc"), "");
    let dsl1 = to_dsl(&yaml::parse_policy(&yaml1).0.expect("doc"), "");
    let (back, diags) = dsl::parse_policy(&dsl1);
    assert!(!has_errors(&diags), "{dsl1}\n{diags:#?}");
    let yaml2 = to_yaml(&back.expect("doc"), "");
    assert_eq!(yaml1, yaml2, "DSL:\n{dsl1}");
    (yaml1, dsl1)
}

const ARM_SPELLING: &str = "\
clients:
  sensor1:
    attributes: { type: sensor }
    clientCertificateAuthentication:
      validationScheme: SubjectMatchesAuthenticationName
clientGroups:
  sensors: { query: \"attributes.type = 'sensor'\" }
topicSpaces:
  telemetry: { topicTemplates: [ \"t/${client.authenticationName}\" ] }
permissionBindings:
  sensors-pub:
    clientGroupName: sensors
    topicSpaceName: telemetry
    permission: Publisher
";

#[test]
fn arm_key_names_are_aliases_and_fmt_prints_ours() {
    let arm = compiled(ARM_SPELLING);
    let ours = compiled(
        &ARM_SPELLING
            .replace("clientCertificateAuthentication", "authentication")
            .replace("clientGroupName", "clientGroup")
            .replace("topicSpaceName", "topicSpace"),
    );
    assert_eq!(arm.policy.bindings.len(), 1);
    assert!(arm.policy.clients[0].authentication.is_some());
    for topic in ["t/sensor1", "t/sensor2", "t/+"] {
        assert_eq!(
            arm.decide_publish(0, topic).allowed,
            ours.decide_publish(0, topic).allowed,
            "{topic}"
        );
    }
    assert!(arm.decide_publish(0, "t/sensor1").allowed);
    assert!(!arm.decide_publish(0, "t/sensor2").allowed);
    let (yaml1, _) = both_forms(ARM_SPELLING);
    assert!(yaml1.contains("    clientGroup: sensors\n"), "{yaml1}");
    assert!(yaml1.contains("    authentication:\n"), "{yaml1}");
    assert!(!yaml1.contains("Name: "), "{yaml1}");
}

#[test]
fn an_alias_beside_our_key_is_an_error() {
    let text = ARM_SPELLING.replace(
        "    topicSpaceName: telemetry\n",
        "    topicSpaceName: telemetry\n    topicSpace: other\n",
    );
    let found = codes(&text);
    assert!(
        found
            .iter()
            .any(|(c, m)| *c == Code::InvalidValue
                && m.contains("`topicSpaceName` and `topicSpace`")),
        "{found:#?}"
    );
    // An alias is accepted only where its resource has the field.
    let found = codes("clients:\n  a: { clientGroupName: x }\n");
    assert!(
        found.iter().any(|(c, _)| *c == Code::UnknownKey),
        "{found:#?}"
    );
}

const SETTINGS: &str = "\
namespace: factory-ns
topicSpacesConfiguration:
  maximumSessionExpiryInHours: 8
  maximumClientSessionsPerAuthenticationName: 100
  alternativeAuthenticationNameSources: [ ClientCertificateSubject, clientcertificatedns ]
clients:
  a: {}
";

#[test]
fn namespace_settings_are_read_resolved_and_kept_by_fmt() {
    let p = compiled(SETTINGS);
    assert_eq!(p.policy.settings.maximum_session_expiry_in_hours, Some(8));
    assert_eq!(
        p.policy
            .settings
            .maximum_client_sessions_per_authentication_name,
        Some(100)
    );
    assert_eq!(
        p.policy.settings.alternative_authentication_name_sources,
        ["ClientCertificateSubject", "ClientCertificateDns"]
    );
    let (yaml1, dsl1) = both_forms(SETTINGS);
    assert!(
        yaml1.contains("topicSpacesConfiguration:\n  maximumSessionExpiryInHours: 8\n  maximumClientSessionsPerAuthenticationName: 100\n  alternativeAuthenticationNameSources: [ClientCertificateSubject, ClientCertificateDns]\n"),
        "{yaml1}"
    );
    assert!(
        dsl1.contains("settings { maximumSessionExpiryInHours 8; "),
        "{dsl1}"
    );
}

#[test]
fn namespace_settings_outside_event_grids_ranges_are_errors() {
    for (field, bad) in [
        ("maximumSessionExpiryInHours", "0"),
        ("maximumSessionExpiryInHours", "9"),
        ("maximumClientSessionsPerAuthenticationName", "0"),
        ("maximumClientSessionsPerAuthenticationName", "101"),
    ] {
        let text = format!("topicSpacesConfiguration:\n  {field}: {bad}\n");
        let found = codes(&text);
        assert!(
            found
                .iter()
                .any(|(c, m)| *c == Code::InvalidValue && m.contains(field)),
            "{text}: {found:#?}"
        );
    }
    for bad in ["two", "99999999999999999999999", "[1]"] {
        let found = codes(&format!(
            "topicSpacesConfiguration:\n  maximumSessionExpiryInHours: {bad}\n"
        ));
        assert!(
            found
                .iter()
                .any(|(c, _)| matches!(c, Code::WrongType | Code::InvalidValue)),
            "{bad}: {found:#?}"
        );
    }
    let found = codes(
        "topicSpacesConfiguration:\n  alternativeAuthenticationNameSources: [ ClientCertificateSubjet ]\n",
    );
    assert!(
        found.iter().any(|(c, _)| *c == Code::InvalidValue),
        "{found:#?}"
    );
    let found = codes("topicSpacesConfiguration:\n  maximumSessions: 2\n");
    assert!(
        found.iter().any(|(c, _)| *c == Code::UnknownKey),
        "{found:#?}"
    );
}

#[test]
fn the_ca_description_survives_fmt_in_both_forms() {
    let text = "caCertificates:\n  factory-ca:\n    encodedCertificate: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"\n    description: the factory's root\n";
    let (yaml1, dsl1) = both_forms(text);
    assert!(
        yaml1.contains("    description: \"the factory's root\"\n"),
        "{yaml1}"
    );
    assert!(
        dsl1.contains("description \"the factory's root\""),
        "{dsl1}"
    );
}

const BOOLEANS: &str = "\
clients:
  on1: { attributes: { managed: true, kind: x } }
  off1: { attributes: { managed: false, kind: x } }
  none1: { attributes: { kind: x } }
clientGroups:
  managed: { query: \"attributes.managed = 'true'\" }
  unmanaged: { query: \"attributes.managed != 'TRUE'\" }
  yes-group: { query: \"attributes.managed = 'yes' OR attributes.managed != 'yes'\" }
topicSpaces:
  managed-space: { topicTemplates: [ m/# ] }
  unmanaged-space: { topicTemplates: [ u/# ] }
  yes-space: { topicTemplates: [ y/# ] }
  by-value: { topicTemplates: [ \"v/${client.attributes.managed}\" ] }
permissionBindings:
  managed-pub: { clientGroup: managed, topicSpace: managed-space, permission: publisher }
  unmanaged-pub: { clientGroup: unmanaged, topicSpace: unmanaged-space, permission: publisher }
  yes-pub: { clientGroup: yes-group, topicSpace: yes-space, permission: publisher }
  value-pub: { clientGroup: $all, topicSpace: by-value, permission: publisher }
";

#[test]
fn boolean_attributes_compare_with_true_and_false_literals_only() {
    // `yes-group` compares a boolean with 'yes': TG202, an error, reported below.
    let p = compiled_with_errors(BOOLEANS);
    let (on, off, none) = (client(&p, "on1"), client(&p, "off1"), client(&p, "none1"));
    assert!(p.decide_publish(on, "m/1").allowed);
    assert!(!p.decide_publish(off, "m/1").allowed);
    assert!(!p.decide_publish(none, "m/1").allowed);
    // `!=` holds for the other boolean, never for a client without the attribute.
    assert!(p.decide_publish(off, "u/1").allowed);
    assert!(!p.decide_publish(on, "u/1").allowed);
    assert!(!p.decide_publish(none, "u/1").allowed);
    // Any other literal is a type mismatch: false for `=` and for `!=`.
    for c in [on, off, none] {
        assert!(!p.decide_publish(c, "y/1").allowed);
    }
    // A boolean fills no template variable (as an array does not).
    for (c, v) in [(on, "v/true"), (off, "v/false")] {
        assert!(!p.decide_publish(c, v).allowed, "{v}");
    }
    let found = codes(BOOLEANS);
    let mismatches: Vec<&String> = found
        .iter()
        .filter(|(c, _)| *c == Code::QueryType)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(mismatches.len(), 2, "{found:#?}");
    assert!(
        mismatches.iter().all(|m| m.contains("a boolean")),
        "{mismatches:#?}"
    );
    let (yaml1, dsl1) = both_forms(BOOLEANS);
    assert!(yaml1.contains("managed: true"), "{yaml1}");
    assert!(dsl1.contains("managed = false"), "{dsl1}");
}

/// `policy check --target eventgrid` refuses (exit 1) what the local target only
/// warns about: a 9-level template, an invalid namespace name.
#[test]
fn check_for_event_grid_refuses_a_deep_template_and_a_bad_namespace_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = "namespace: plant-7\nclients:\n  c1: { authentication: { validationScheme: SubjectMatchesAuthenticationName } }\ntopicSpaces:\n  deep: { topicTemplates: [ a/b/c/d/e/f/g/h ] }\npermissionBindings:\n  all-pub: { clientGroup: $all, topicSpace: deep, permission: publisher }\n";
    for (name, text, eventgrid_exit) in [
        ("clean.yaml", clean.to_string(), 0),
        ("deep.yaml", clean.replace("g/h", "g/h/i"), 1),
        ("name.yaml", clean.replace("plant-7", "plant_7"), 1),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let run = |target: &str| {
            std::process::Command::new(env!("CARGO_BIN_EXE_topicgate"))
                .args([
                    "policy",
                    "check",
                    "--target",
                    target,
                    path.to_str().unwrap(),
                ])
                .output()
                .expect("run")
        };
        let eg = run("eventgrid");
        assert_eq!(
            eg.status.code(),
            Some(eventgrid_exit),
            "{name}: {}",
            String::from_utf8_lossy(&eg.stdout)
        );
        assert_eq!(run("local").status.code(), Some(0), "{name}");
    }
}
