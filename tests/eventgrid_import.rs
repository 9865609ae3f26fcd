//! `policy import --from eventgrid`: ARM templates (expression-named and nested
//! children, parameter files), REST / `az` JSON (the REST API specification's
//! published examples), Event Grid's defaults made explicit, removed fields and
//! unsupported expressions reported, and the imported policy's findings traced
//! back to the resource in the original file.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use topicgate::analysis::{Options, Target};
use topicgate::compiler::compiled::CompiledPolicy;
use topicgate::eventgrid::import::{import, to_policy, Imported, Input};
use topicgate::pipeline::compile_text_with;
use topicgate::source::format::to_yaml;
use topicgate::source::model::{AttrValue, ValidationScheme};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eventgrid")
        .join(path)
}

fn input(path: &str) -> Input {
    Input {
        name: path.to_string(),
        text: std::fs::read_to_string(fixture(path)).expect("fixture"),
    }
}

fn text_input(name: &str, text: &str) -> Input {
    Input {
        name: name.into(),
        text: text.into(),
    }
}

/// The imported namespace as a policy, compiled for Event Grid.
fn compiled(imported: &Imported) -> (String, CompiledPolicy) {
    assert!(!imported.has_errors(), "{:#?}", imported.problems);
    let yaml = to_yaml(&to_policy(&imported.namespace), "");
    let c = compile_text_with(
        "imported.yaml",
        &yaml,
        None,
        Options {
            target: Target::EventGrid,
            ..Options::default()
        },
    );
    assert!(!c.has_errors(), "{yaml}\n{:#?}", c.diagnostics);
    (yaml, c.compiled.expect("resolved"))
}

fn id(p: &CompiledPolicy, name: &str) -> u32 {
    p.policy
        .clients
        .iter()
        .position(|c| c.name.value == name)
        .unwrap_or_else(|| panic!("no client {name}")) as u32
}

#[test]
fn an_arm_template_imports_with_event_grids_defaults_and_decisions() {
    let imported = import(
        &[input("arm/factory.json")],
        Some(&input("arm/factory.parameters.json")),
    );
    let ns = &imported.namespace;
    assert_eq!(ns.name.as_deref(), Some("factory-ns"));
    assert_eq!(ns.settings.maximum_session_expiry_in_hours, Some(2));
    assert_eq!(
        ns.settings.maximum_client_sessions_per_authentication_name,
        Some(4)
    );
    let names: Vec<&str> = ns.clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["sensor-01", "sensor-02", "dashboard"]);
    // A nested client that names neither authenticationName, state nor a scheme.
    let s1 = &ns.clients[0];
    assert_eq!(s1.authentication_name, None);
    assert_eq!(s1.state, None);
    assert_eq!(
        s1.certificate_authentication
            .as_ref()
            .and_then(|a| a.validation_scheme),
        Some(ValidationScheme::SubjectMatchesAuthenticationName)
    );
    assert!(s1
        .attributes
        .contains(&("line".into(), AttrValue::Str("line1".into()))));
    assert_eq!(
        ns.clients[1].authentication_name.as_deref(),
        Some("plant7-sensor-2")
    );
    let dashboard = &ns.clients[2];
    assert_eq!(dashboard.description.as_deref(), Some("[control room]"));
    assert!(dashboard
        .attributes
        .contains(&("managed".into(), AttrValue::Bool(true))));
    assert_eq!(
        ns.topic_spaces[0].topic_templates,
        [
            "clients/${client.authenticationName}/status",
            "factory/${client.attributes.line}/#"
        ]
    );
    let (yaml, p) = compiled(&imported);
    assert!(
        yaml.contains("validationScheme: SubjectMatchesAuthenticationName"),
        "{yaml}"
    );
    let (s1, s2, d) = (
        id(&p, "sensor-01"),
        id(&p, "sensor-02"),
        id(&p, "dashboard"),
    );
    assert!(p.decide_publish(s1, "clients/sensor-01/status").allowed);
    assert!(p.decide_publish(s1, "factory/line1/temp").allowed);
    assert!(!p.decide_publish(s1, "factory/line2/temp").allowed);
    assert!(!p.decide_publish(s1, "clients/sensor-02/status").allowed);
    // Templates substitute the authentication name, not the resource name.
    assert!(
        p.decide_publish(s2, "clients/plant7-sensor-2/status")
            .allowed
    );
    assert!(!p.decide_publish(s2, "clients/sensor-02/status").allowed);
    assert!(p.decide_subscribe(d, "clients/+/status").allowed);
    assert!(!p.decide_publish(d, "clients/dashboard/status").allowed);
    assert!(!p.decide_subscribe(s1, "clients/+/status").allowed);
}

#[test]
fn a_template_parameter_without_a_value_is_a_clear_error() {
    let imported = import(&[input("arm/factory.json")], None);
    assert!(imported.has_errors());
    assert!(
        imported
            .problems
            .iter()
            .any(|p| p.message.contains("no parameter `namespaceName`")
                && p.message.contains("--parameters")),
        "{:#?}",
        imported.problems
    );
}

#[test]
fn unsupported_expressions_are_named_not_guessed() {
    let t = r#"{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      "contentVersion": "1.0.0.0",
      "resources": [{"type": "Microsoft.EventGrid/namespaces/clients", "apiVersion": "2025-02-15",
        "name": "ns1/c1", "properties": {"description": "[resourceGroup().name]"}}]}"#;
    let imported = import(&[text_input("t.json", t)], None);
    let p = imported
        .problems
        .iter()
        .find(|p| p.error)
        .expect("an error");
    assert!(
        p.message.contains("`resourceGroup()` is not supported"),
        "{p:?}"
    );
    assert_eq!(p.offset, t.find("ns1/c1"));
}

#[test]
fn the_rest_api_examples_import_and_check() {
    let imported = import(
        &[
            input("rest/Clients_ListByNamespace.json"),
            input("rest/ClientGroups_CreateOrUpdate.json"),
            input("rest/TopicSpaces_CreateOrUpdate.json"),
            input("rest/PermissionBindings_CreateOrUpdate.json"),
        ],
        None,
    );
    let ns = &imported.namespace;
    assert_eq!(ns.name.as_deref(), Some("exampleNamespaceName1"));
    assert_eq!(ns.clients.len(), 1);
    assert_eq!(ns.client_groups[0].query, "attributes.b IN ['a', 'b', 'c']");
    assert_eq!(ns.topic_spaces[0].topic_templates, ["filter1", "filter2"]);
    assert_eq!(
        ns.permission_bindings[0].client_group_name,
        "exampleClientGroupName1"
    );
    // Read-only fields (`provisioningState`, `id`, `nextLink`) are not reported.
    assert!(imported.problems.is_empty(), "{:#?}", imported.problems);
    let (_, p) = compiled(&imported);
    // The group selects on attribute `b`, which the client lacks: no access.
    assert!(!p.decide_publish(0, "filter1").allowed);
}

#[test]
fn fields_event_grid_removed_in_2023_are_errors() {
    let imported = import(&[input("arm/removed-fields.json")], None);
    let messages: Vec<&str> = imported
        .problems
        .iter()
        .filter(|p| p.error)
        .map(|p| p.message.as_str())
        .collect();
    for field in ["certificateThumbprint", "certificateSubject"] {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&format!("`{field}` was removed"))),
            "{messages:#?}"
        );
    }
}

#[test]
fn broken_json_and_foreign_documents_are_refused() {
    let imported = import(&[text_input("bad.json", "{\n  \"value\": [\n")], None);
    assert!(
        imported.problems[0].message.starts_with("invalid JSON"),
        "{:?}",
        imported.problems
    );
    let imported = import(&[text_input("other.json", "{\"hello\": 1}")], None);
    assert!(imported.has_errors());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let imported = import(&[text_input("deep.json", &deep)], None);
    assert!(imported.has_errors());
}

fn topicgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .output()
        .expect("run topicgate")
}

#[test]
fn the_cli_imports_checks_and_traces_findings_to_the_original_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("factory.yaml");
    let ok = topicgate(&[
        "policy",
        "import",
        "--from",
        "eventgrid",
        fixture("arm/factory.json").to_str().unwrap(),
        "--parameters",
        fixture("arm/factory.parameters.json").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("imported 3 clients, 2 client groups, 2 topic spaces, 2 permission bindings"),
        "{stderr}"
    );
    // policy explain on the import gives Event Grid's decision.
    let explain = topicgate(&[
        "policy",
        "explain",
        out.to_str().unwrap(),
        "--client",
        "plant7-sensor-2",
        "--publish",
        "clients/plant7-sensor-2/status",
    ]);
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stdout)
    );
    // A finding of the check is traced back to the resource in the JSON file.
    let template = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "resources": [
    {
      "type": "Microsoft.EventGrid/namespaces/topicSpaces",
      "apiVersion": "2025-02-15",
      "name": "deep-ns/deep",
      "properties": { "topicTemplates": [ "a/b/c/d/e/f/g/h/i" ] }
    }
  ]
}
"#;
    let src = dir.path().join("deep.json");
    std::fs::write(&src, template).unwrap();
    let deep_out = dir.path().join("deep.yaml");
    let found = topicgate(&[
        "policy",
        "import",
        "--from",
        "eventgrid",
        src.to_str().unwrap(),
        "-o",
        deep_out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&found.stderr);
    assert_eq!(found.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TG703"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "= imported from topicSpaces `deep` at {}:8:16",
            src.display()
        )),
        "{stderr}"
    );
    // Findings at a resource's own key are traced too (TG601 and TG604 point there).
    let rest_out = dir.path().join("rest.yaml");
    let rest = topicgate(&[
        "policy",
        "import",
        "--from",
        "eventgrid",
        fixture("rest/Clients_ListByNamespace.json")
            .to_str()
            .unwrap(),
        fixture("rest/ClientGroups_CreateOrUpdate.json")
            .to_str()
            .unwrap(),
        "-o",
        rest_out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&rest.stderr);
    assert!(rest.status.success(), "{stderr}");
    for (code, origin) in [
        ("TG601", "clientGroups `exampleClientGroupName1`"),
        ("TG604", "clients `exampleClientName1`"),
    ] {
        let after = stderr
            .split(code)
            .nth(1)
            .unwrap_or_else(|| panic!("{code} in {stderr}"));
        let next = after.split("\nTG").next().unwrap_or_default();
        assert!(
            next.contains(&format!("= imported from {origin} at ")),
            "{code}: {next}"
        );
    }
    // A file that cannot be imported writes nothing.
    let bad_out = dir.path().join("bad.yaml");
    let bad = topicgate(&[
        "policy",
        "import",
        "--from",
        "eventgrid",
        fixture("arm/removed-fields.json").to_str().unwrap(),
        "-o",
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!bad_out.exists());
}
