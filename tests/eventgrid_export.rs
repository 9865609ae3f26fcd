//! `policy export --to eventgrid-*`: every ARM template is valid against Azure's
//! published schema for Microsoft.EventGrid 2025-02-15 (vendored under
//! tests/fixtures/eventgrid) and uses no key the schema does not define; the az
//! script passes `bash -n`; golden files of the seed scenario in the three targets;
//! a meaning-changing export is refused unless `--allow-lossy`.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonschema::{Registry, Validator};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use topicgate::eventgrid::export::{arm_template, export, namespace, Format};
use topicgate::pipeline::compile_text;

const EG_ID: &str =
    "https://schema.management.azure.com/schemas/2025-02-15/Microsoft.EventGrid.json";
const COMMON_ID: &str = "https://schema.management.azure.com/schemas/common/definitions.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/eventgrid").join(name))
        .expect("vendored schema");
    serde_json::from_str(&text).expect("schema JSON")
}

struct Schema {
    eg: Value,
    common: Value,
    registry: Registry<'static>,
}

impl Schema {
    fn load() -> Schema {
        let eg = fixture_json("Microsoft.EventGrid.2025-02-15.json");
        let common = fixture_json("common-definitions.json");
        let registry = Registry::new()
            .add(EG_ID, eg.clone())
            .and_then(|r| r.add(COMMON_ID, common.clone()))
            .and_then(|r| r.prepare())
            .expect("registry");
        Schema {
            eg,
            common,
            registry,
        }
    }

    /// The validator of one resource definition, e.g. `namespaces_clients`.
    fn validator(&self, definition: &str) -> Validator {
        let schema = serde_json::json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "$ref": format!("{EG_ID}#/resourceDefinitions/{definition}")
        });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .with_registry(&self.registry)
            .build(&schema)
            .expect("validator")
    }

    /// Every problem of an ARM template: schema errors of each resource, and keys
    /// the schema does not define.
    fn problems(&self, template: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let top = [
            "$schema",
            "contentVersion",
            "metadata",
            "parameters",
            "variables",
            "resources",
            "outputs",
        ];
        for k in template.as_object().expect("object").keys() {
            if !top.contains(&k.as_str()) {
                out.push(format!("unknown template key `{k}`"));
            }
        }
        for (i, r) in template["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .enumerate()
        {
            let ty = r["type"].as_str().expect("type");
            let definition = ty
                .strip_prefix("Microsoft.EventGrid/")
                .expect("an Event Grid type")
                .replace('/', "_");
            let v = self.validator(&definition);
            for e in v.iter_errors(r) {
                out.push(format!("resource {i} ({ty}): {e} at {}", e.instance_path()));
            }
            let schema = &self.eg["resourceDefinitions"][&definition];
            // `dependsOn` belongs to the deployment template's resource, not the RP's.
            self.unknown_keys(
                schema,
                r,
                &format!("resources[{i}]"),
                &["dependsOn"],
                &mut out,
            );
        }
        out
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/") => self.eg.pointer(&r[1..]).expect("local ref"),
            Some(r) if r.starts_with(COMMON_ID) => {
                let pointer = r.split_once('#').map(|(_, p)| p).unwrap_or("");
                self.common.pointer(pointer).expect("common ref")
            }
            Some(other) => panic!("unexpected $ref {other}"),
            None => schema,
        }
    }

    /// The object schemas an instance may match (through `oneOf` and `$ref`).
    fn object_schemas<'a>(&'a self, schema: &'a Value, out: &mut Vec<&'a Value>) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            for b in branches {
                self.object_schemas(b, out);
            }
        } else if schema.get("properties").is_some() || schema.get("type") == Some(&"object".into())
        {
            out.push(schema);
        }
    }

    fn unknown_keys(
        &self,
        schema: &Value,
        instance: &Value,
        path: &str,
        extra: &[&str],
        out: &mut Vec<String>,
    ) {
        match instance {
            Value::Object(map) => {
                let mut candidates = Vec::new();
                self.object_schemas(schema, &mut candidates);
                let open = candidates.iter().any(|s| {
                    s.get("additionalProperties")
                        .is_some_and(|a| a != &Value::Bool(false))
                });
                for (k, v) in map {
                    let defined = candidates
                        .iter()
                        .find_map(|s| s.get("properties").and_then(|p| p.get(k)));
                    match defined {
                        Some(sub) => self.unknown_keys(sub, v, &format!("{path}.{k}"), &[], out),
                        None if open || extra.contains(&k.as_str()) => {}
                        None => out.push(format!("key `{path}.{k}` is not defined by the schema")),
                    }
                }
            }
            Value::Array(items) => {
                let schema = self.resolve(schema);
                let item_schemas: Vec<&Value> = match schema.get("oneOf").and_then(Value::as_array)
                {
                    Some(branches) => branches
                        .iter()
                        .filter_map(|b| self.resolve(b).get("items"))
                        .collect(),
                    None => schema.get("items").into_iter().collect(),
                };
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = item_schemas.first() {
                        self.unknown_keys(s, item, &format!("{path}[{i}]"), &[], out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn resolved(
    name: &str,
    text: &str,
) -> (
    topicgate::compiler::model::ResolvedPolicy,
    topicgate::diag::span::SourceFile,
) {
    let c = compile_text(name, text, Some(&root().join("policies")));
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    (c.resolved().cloned().expect("resolved"), c.file)
}

fn seed() -> String {
    std::fs::read_to_string(root().join("policies/lwt.yaml")).expect("seed")
}

/// A policy with everything the export writes: settings, a CA, every
/// authentication form, attributes of each type, descriptions, `$all`, and
/// strings ARM, Bicep and the shell would otherwise read as code.
const EVERYTHING: &str = r#"
namespace: factory-ns
topicSpacesConfiguration:
  maximumSessionExpiryInHours: 2
  maximumClientSessionsPerAuthenticationName: 3
clients:
  sensor-01:
    authenticationName: Sensor.01
    description: "[not an expression]"
    attributes: { type: sensor, floor: 3, managed: true, tags: [a, "it's"] }
    authentication: { validationScheme: SubjectMatchesAuthenticationName }
  camera:01:
    state: Disabled
    attributes: { type: camera }
    authentication:
      allowedThumbprints: [ "1111111111111111111111111111111111111111111111111111111111111111" ]
  plc_7:
    attributes: { type: plc }
    authentication: { validationScheme: DnsMatchesAuthenticationName }
clientGroups:
  sensors: { query: "attributes.type = 'sensor' AND attributes.floor >= 3", description: "it's ${x}" }
  cameras: { query: "attributes.type IN ['camera', 'plc']" }
topicSpaces:
  status:
    topicTemplates: [ "clients/$<client.authenticationName>/status", "site/${client.attributes.floor}/+/#" ]
    description: "$all's status"
  commands: { topicTemplates: [ "[cmd]" ] }
permissionBindings:
  sensors-pub: { clientGroup: sensors, topicSpace: status, permission: publisher }
  all-sub: { clientGroup: $all, topicSpace: status, permission: subscriber }
  cameras-cmd: { clientGroup: cameras, topicSpace: commands, permission: subscriber, description: bound }
caCertificates:
  factory-root:
    encodedCertificate: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAAAA\n-----END CERTIFICATE-----\n"
    description: the factory's root
"#;

#[test]
fn every_exported_arm_template_is_valid_against_azures_schema_with_no_unknown_key() {
    let schema = Schema::load();
    for (name, text) in [
        ("lwt.yaml", seed()),
        ("everything.yaml", EVERYTHING.to_string()),
        (
            "factory.yaml",
            std::fs::read_to_string(root().join("policies/factory.yaml")).unwrap(),
        ),
    ] {
        let (policy, file) = resolved(name, &text);
        let (ns, _) = namespace(&policy, &file);
        let template = arm_template(&ns);
        let problems = schema.problems(&template);
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}

#[test]
fn the_schema_check_catches_what_azure_would_refuse() {
    // The checks themselves must fail on a broken template, or they prove nothing.
    let schema = Schema::load();
    let (policy, file) = resolved("lwt.yaml", &seed());
    let mut template = arm_template(&namespace(&policy, &file).0);
    template["resources"][1]["properties"]["clientGroup"] = "sensors".into();
    template["resources"][2]["properties"]["state"] = "Paused".into();
    template["resources"][0]["properties"]["topicSpacesConfiguration"]["maximumSessions"] =
        3.into();
    let problems = schema.problems(&template);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("resources[1].properties.clientGroup")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("resource 2") && p.contains("Paused")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("topicSpacesConfiguration.maximumSessions")),
        "{problems:#?}"
    );
}

#[test]
fn strings_reach_event_grid_unchanged_in_each_target() {
    let (policy, file) = resolved("everything.yaml", EVERYTHING);
    let arm = export(&policy, &file, Format::Arm).text;
    // A string ARM would evaluate is escaped; `${...}` is Event Grid's spelling.
    assert!(
        arm.contains(r#""description": "[[not an expression]""#),
        "{arm}"
    );
    assert!(arm.contains(r#""[[cmd]""#), "{arm}");
    assert!(
        arm.contains(r#""clients/${client.authenticationName}/status""#),
        "{arm}"
    );
    assert!(!arm.contains("$<"), "{arm}");
    let bicep = export(&policy, &file, Format::Bicep).text;
    assert!(
        bicep.contains(r"'clients/\${client.authenticationName}/status'"),
        "{bicep}"
    );
    assert!(bicep.contains(r"description: 'it\'s \${x}'"), "{bicep}");
    assert!(bicep.contains("'[cmd]'"), "{bicep}");
    let az = export(&policy, &file, Format::Az).text;
    assert!(
        az.contains(r#""$NAMESPACE_ID"/permissionBindings/'all-sub'"#),
        "{az}"
    );
    assert!(az.contains(r#""clientGroupName":"$all""#), "{az}");
    assert!(az.contains(r#"'\''"#), "{az}");
}

fn bash_n(script: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.sh");
    std::fs::write(&path, script).expect("write");
    Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash")
}

#[test]
fn the_az_script_passes_bash_n() {
    for text in [seed(), EVERYTHING.to_string()] {
        let (policy, file) = resolved("p.yaml", &text);
        let script = export(&policy, &file, Format::Az).text;
        let out = bash_n(&script);
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check can fail: an unbalanced quote is refused.
    assert!(!bash_n("echo 'unterminated\n").status.success());
}

#[test]
fn golden_exports_of_the_seed_scenario() {
    let (policy, file) = resolved("lwt.yaml", &seed());
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/eventgrid_export"),
        prepend_module_to_snapshot => false,
    }, {
        for (format, name) in [(Format::Arm, "lwt.arm.json"), (Format::Bicep, "lwt.bicep"), (Format::Az, "lwt.az.sh")] {
            let e = export(&policy, &file, format);
            assert!(!e.changes_meaning(), "{:#?}", e.notes);
            insta::assert_snapshot!(name, e.text);
        }
        let notes: Vec<String> = export(&policy, &file, Format::Arm)
            .notes
            .iter()
            .map(|n| format!("{}: {}", n.resource, n.message))
            .collect();
        insta::assert_snapshot!("lwt.notes", notes.join("\n"));
    });
}

fn topicgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .output()
        .expect("run topicgate")
}

#[test]
fn an_export_that_changes_meaning_is_refused_unless_allow_lossy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("deep.yaml");
    std::fs::write(
        &policy,
        "namespace: deep-ns\nclients:\n  c1: { attributes: { on: true } }\nclientGroups:\n  on-group: { query: \"attributes.on = 'true'\" }\ntopicSpaces:\n  deep: { topicTemplates: [ a/b/c/d/e/f/g/h/i ] }\npermissionBindings:\n  deep-pub: { clientGroup: on-group, topicSpace: deep, permission: publisher }\n",
    )
    .unwrap();
    let out_file = dir.path().join("deep.json");
    let (p, o) = (policy.to_str().unwrap(), out_file.to_str().unwrap());
    let refused = topicgate(&["policy", "export", "--to", "eventgrid-arm", p, "-o", o]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(!out_file.exists());
    assert!(stderr.contains("error: TG703"), "{stderr}");
    assert!(
        stderr.contains("error: client group on-group: compares boolean"),
        "{stderr}"
    );
    let lossy = topicgate(&[
        "policy",
        "export",
        "--to",
        "eventgrid-arm",
        p,
        "-o",
        o,
        "--allow-lossy",
    ]);
    let stderr = String::from_utf8_lossy(&lossy.stderr);
    assert!(lossy.status.success(), "{stderr}");
    assert!(stderr.contains("warning: TG703"), "{stderr}");
    assert!(out_file.exists());
    // The seed exports cleanly, its notes on stderr.
    let seed_out = dir.path().join("lwt.bicep");
    let ok = topicgate(&[
        "policy",
        "export",
        "--to",
        "eventgrid-bicep",
        root().join("policies/lwt.yaml").to_str().unwrap(),
        "-o",
        seed_out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: client sensor1: will on `clients/sensor1/status`"),
        "{stderr}"
    );
    assert!(stderr.contains("note: tests: 6 scenario tests"), "{stderr}");
}

// ------------------------------------------------------------------ equivalence

use proptest::prelude::*;
use topicgate::analysis::diff::diff;
use topicgate::compiler::compiled::CompiledPolicy;
use topicgate::compiler::model::Client;
use topicgate::decisions::identity::effective_scheme;
use topicgate::eventgrid::import::{import, to_policy, Input};
use topicgate::source::format::to_yaml;
use topicgate::source::model::ValidationScheme;
use topicgate::source::synth::{generate, SynthSpec};

const TEMPLATE_LEVELS: [&str; 8] = [
    "a",
    "b",
    "+",
    "$<client.authenticationName>",
    "x${client.authenticationName}",
    "$<client.attributes.t>",
    "${client.attributes.n}",
    "c",
];
const SCHEMES: [&str; 4] = [
    "ThumbprintMatch",
    "SubjectMatchesAuthenticationName",
    "DnsMatchesAuthenticationName",
    "EmailMatchesAuthenticationName",
];

/// A small policy in YAML: clients with attributes of each type, some disabled or
/// with their own authentication name; groups by attribute; topic spaces of 1-3
/// templates (literal, `+`, `#`, whole- and partial-level variables); bindings
/// from the groups and `$all`.
fn generated() -> impl Strategy<Value = String> {
    let client = (
        any::<bool>(),
        0i64..3,
        any::<bool>(),
        any::<bool>(),
        0..SCHEMES.len(),
    );
    let template = (
        prop::collection::vec(prop::sample::select(TEMPLATE_LEVELS.to_vec()), 1..=3),
        any::<bool>(),
    )
        .prop_map(|(levels, hash)| {
            let mut t = levels.join("/");
            if hash {
                t.push_str("/#");
            }
            t
        });
    (
        prop::collection::vec(client, 1..=4),
        prop::collection::vec(prop::collection::vec(template, 1..=3), 1..=3),
        prop::collection::vec((0..4usize, 0..3usize, any::<bool>()), 1..=5),
        prop::option::of((1i64..=8, 1i64..=100)),
    )
        .prop_map(|(clients, spaces, bindings, settings)| {
            let mut y = String::from("namespace: gen-ns\n");
            if let Some((h, s)) = settings {
                y.push_str(&format!("topicSpacesConfiguration:\n  maximumSessionExpiryInHours: {h}\n  maximumClientSessionsPerAuthenticationName: {s}\n"));
            }
            y.push_str("clients:\n");
            for (i, (t, n, disabled, own_name, scheme)) in clients.iter().enumerate() {
                y.push_str(&format!("  c{i}:\n    attributes: {{ t: {}, n: {n} }}\n", if *t { "a" } else { "b" }));
                if *disabled {
                    y.push_str("    state: Disabled\n");
                }
                if *own_name {
                    y.push_str(&format!("    authenticationName: dev-{i}\n"));
                }
                let scheme = SCHEMES[*scheme];
                if scheme == "ThumbprintMatch" {
                    y.push_str(&format!("    authentication: {{ validationScheme: ThumbprintMatch, allowedThumbprints: [ \"{}\" ] }}\n", format!("{i:x}").repeat(64).chars().take(64).collect::<String>()));
                } else {
                    y.push_str(&format!("    authentication: {{ validationScheme: {scheme} }}\n"));
                }
            }
            y.push_str("clientGroups:\n  t-a: { query: \"attributes.t = 'a'\" }\n  t-b: { query: \"attributes.t = 'b' OR attributes.n >= 2\" }\n  named: { query: \"authenticationName IN ['c0', 'dev-1']\" }\n");
            y.push_str("topicSpaces:\n");
            for (i, templates) in spaces.iter().enumerate() {
                let list: Vec<String> = templates.iter().map(|t| format!("\"{t}\"")).collect();
                y.push_str(&format!("  space{i}: {{ topicTemplates: [{}] }}\n", list.join(", ")));
            }
            y.push_str("permissionBindings:\n");
            for (i, (g, s, publish)) in bindings.iter().enumerate() {
                let group = ["t-a", "t-b", "named", "$all"][*g];
                let s = s % spaces.len();
                let perm = if *publish { "publisher" } else { "subscriber" };
                y.push_str(&format!("  bind{i}: {{ clientGroup: {group}, topicSpace: space{s}, permission: {perm} }}\n"));
            }
            y
        })
}

fn compiled_policy(name: &str, text: &str) -> CompiledPolicy {
    let c = compile_text(name, text, None);
    assert!(!c.has_errors(), "{text}\n{:#?}", c.diagnostics);
    c.compiled.expect("resolved")
}

/// export to ARM, import back, and the two policies' access, both ways.
fn round_trip(schema: &Schema, text: &str) -> Result<(), TestCaseError> {
    let c = compile_text("p.yaml", text, None);
    prop_assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let resolved = c.resolved().cloned().expect("resolved");
    let e = export(&resolved, &c.file, Format::Arm);
    prop_assert!(!e.changes_meaning(), "{:#?}", e.notes);
    let template: Value = serde_json::from_str(&e.text).expect("JSON");
    let problems = schema.problems(&template);
    prop_assert!(problems.is_empty(), "{problems:#?}\n{}", e.text);
    let imported = import(
        &[Input {
            name: "export.json".into(),
            text: e.text.clone(),
        }],
        None,
    );
    prop_assert!(!imported.has_errors(), "{:#?}", imported.problems);
    let back = to_yaml(&to_policy(&imported.namespace), "");
    let (before, after) = (
        compiled_policy("p.yaml", text),
        compiled_policy("back.yaml", &back),
    );
    for (a, b) in [(&before, &after), (&after, &before)] {
        let d = diff(a, b);
        prop_assert!(
            !d.has_changes(),
            "{d:#?}\noriginal:\n{text}\nimported:\n{back}"
        );
    }
    // What Event Grid stores is kept too: settings and each client's name and state.
    prop_assert_eq!(&before.policy.settings, &after.policy.settings);
    for (x, y) in before.policy.clients.iter().zip(&after.policy.clients) {
        prop_assert_eq!(&x.authentication_name.value, &y.authentication_name.value);
        prop_assert_eq!(x.state, y.state);
        // A client without a scheme gets Event Grid's default on the way back.
        let scheme = |c: &Client| {
            effective_scheme(c).unwrap_or(ValidationScheme::SubjectMatchesAuthenticationName)
        };
        prop_assert_eq!(scheme(x), scheme(y));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn import_of_export_grants_exactly_what_the_policy_grants(text in generated()) {
        round_trip(&Schema::load(), &text)?;
    }
}

#[test]
fn the_seed_and_a_synthetic_fleet_round_trip() {
    let schema = Schema::load();
    round_trip(&schema, &seed()).unwrap();
    let synthetic = generate(SynthSpec {
        clients: 40,
        templates: 12,
        bench_clients: 2,
    });
    round_trip(&schema, &synthetic).unwrap();
}
