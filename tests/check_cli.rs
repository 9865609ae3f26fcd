//! `topicgate policy check` end to end: exit codes, the JSON shape issue 3 fixes,
//! SARIF 2.1.0, GitHub annotations, the seed scenario's will finding, and that
//! `policy compile` refuses a policy whose check finds errors.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn topicgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run topicgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The seed scenario with sensor2's will topic changed to sensor1's, which it may not publish.
fn seed_with_bad_will(dir: &Path) -> PathBuf {
    let seed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/lwt.yaml"))
            .unwrap();
    let bad = seed.replace(
        "will: { topic: clients/sensor2/status",
        "will: { topic: clients/sensor1/status",
    );
    assert_ne!(seed, bad, "the seed scenario changed; update this test");
    let path = dir.join("lwt-bad-will.yaml");
    std::fs::write(&path, bad).unwrap();
    path
}

#[test]
fn example_policies_check_clean_without_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "policy"))
        .map(|p| format!("policies/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut args = vec!["policy", "check", "--deny-warnings", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let (code, stdout, stderr) = topicgate(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["diagnostics"], Value::Array(vec![]), "{stdout}");
}

#[test]
fn seed_scenario_with_a_forbidden_will_is_refused_with_the_will_line_and_the_binding() {
    let tmp = tempfile::tempdir().unwrap();
    let path = seed_with_bad_will(tmp.path());
    let (code, stdout, _) = topicgate(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("will: { topic: clients/sensor1/status"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refuse CONNECT with Not authorized"),
        "{stdout}"
    );
    assert!(stdout.contains("binding `sensors-pub`"), "{stdout}");
    let report = stdout.replace(path.to_str().unwrap(), "lwt-bad-will.yaml");
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/check_cli"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("seed_bad_will.human", report);
    });
}

/// The JSON output has exactly the keys and types issue 3 specifies.
fn assert_json_shape(v: &Value) {
    let top = v.as_object().expect("an object");
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["diagnostics", "errors", "warnings"]);
    assert!(v["errors"].is_u64() && v["warnings"].is_u64());
    let diags = v["diagnostics"].as_array().expect("a list");
    let mut errors = 0;
    let mut warnings = 0;
    for d in diags {
        let obj = d.as_object().expect("a diagnostic object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "code",
                "column",
                "endColumn",
                "endLine",
                "file",
                "help",
                "line",
                "message",
                "severity"
            ],
            "{d}"
        );
        let code = d["code"].as_str().unwrap();
        assert!(
            code.len() == 5
                && code.starts_with("TG")
                && code[2..].chars().all(|c| c.is_ascii_digit()),
            "{code}"
        );
        match d["severity"].as_str().unwrap() {
            "error" => errors += 1,
            "warning" => warnings += 1,
            "info" => {}
            other => panic!("severity {other}"),
        }
        assert!(d["message"].is_string() && d["file"].is_string());
        assert!(d["help"].is_string() || d["help"].is_null());
        for k in ["line", "column", "endLine", "endColumn"] {
            assert!(d[k].as_u64().is_some_and(|n| n >= 1), "{k} is 1-based: {d}");
        }
        assert!(
            (d["endLine"].as_u64(), d["endColumn"].as_u64())
                >= (d["line"].as_u64(), d["column"].as_u64())
        );
    }
    assert_eq!(v["errors"].as_u64(), Some(errors));
    assert_eq!(v["warnings"].as_u64(), Some(warnings));
}

#[test]
fn json_output_has_the_specified_shape_and_points_at_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let path = seed_with_bad_will(tmp.path());
    let (code, stdout, _) = topicgate(&[
        "policy",
        "check",
        "--format",
        "json",
        path.to_str().unwrap(),
        "tests/fixtures/rules/TG403-will-unheard.yaml",
    ]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_json_shape(&v);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["warnings"], 1);
    let will = &v["diagnostics"][0];
    assert_eq!(will["code"], "TG401");
    // `clients/sensor1/status` on line 13 of the seed, from column 20 to 42.
    assert_eq!(
        (
            will["line"].as_u64(),
            will["column"].as_u64(),
            will["endColumn"].as_u64()
        ),
        (Some(13), Some(20), Some(42))
    );
}

#[test]
fn sarif_output_is_sarif_2_1_0() {
    let tmp = tempfile::tempdir().unwrap();
    let path = seed_with_bad_will(tmp.path());
    let (code, stdout, _) = topicgate(&[
        "policy",
        "check",
        "--format",
        "sarif",
        path.to_str().unwrap(),
        "tests/fixtures/rules/TG605-redundant-binding.yaml",
    ]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // The required properties of SARIF 2.1.0 (OASIS standard, §3.13-§3.30) and the
    // constraints between them.
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "topicgate");
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "rule ids are unique");
    for r in rules {
        assert!(
            r["shortDescription"]["text"].is_string() && r["fullDescription"]["text"].is_string()
        );
        assert!(["none", "note", "warning", "error"]
            .contains(&r["defaultConfiguration"]["level"].as_str().unwrap()));
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(ids[index], id, "ruleIndex points at ruleId");
        assert!(["none", "note", "warning", "error"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.contains('\\') && !uri.contains(' '), "{uri}");
        let region = &loc["region"];
        for k in ["startLine", "startColumn", "endLine", "endColumn"] {
            assert!(region[k].as_u64().is_some_and(|n| n >= 1), "{k}: {region}");
        }
        for rel in r["relatedLocations"].as_array().into_iter().flatten() {
            assert!(rel["id"].is_u64() && rel["message"]["text"].is_string());
        }
    }
}

#[test]
fn github_output_is_workflow_commands() {
    let (code, stdout, _) = topicgate(&[
        "policy",
        "check",
        "--format",
        "github",
        "tests/fixtures/rules/TG404-will-forgeable.yaml",
    ]);
    assert_eq!(code, 0, "warnings alone pass");
    let line = stdout.lines().next().unwrap();
    assert!(line.starts_with("::warning file=tests/fixtures/rules/TG404-will-forgeable.yaml,line=3,col=59,endLine=3,endColumn=81,title=TG404 "), "{line}");
    assert!(
        line.contains("::will topic `clients/sensor1/status`"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn exit_codes() {
    assert_eq!(topicgate(&["policy", "check", "policies/lwt.yaml"]).0, 0);
    assert_eq!(
        topicgate(&[
            "policy",
            "check",
            "tests/fixtures/rules/TG404-will-forgeable.yaml"
        ])
        .0,
        0
    );
    assert_eq!(
        topicgate(&[
            "policy",
            "check",
            "--deny-warnings",
            "tests/fixtures/rules/TG404-will-forgeable.yaml"
        ])
        .0,
        1
    );
    assert_eq!(
        topicgate(&[
            "policy",
            "check",
            "tests/fixtures/rules/TG401-will-not-permitted.yaml"
        ])
        .0,
        1
    );
    assert_eq!(topicgate(&["policy", "check", "no/such/policy.yaml"]).0, 2);
    assert_eq!(
        topicgate(&["policy", "check", "--format", "xml", "policies/lwt.yaml"]).0,
        2
    );
    // Event Grid's limits are warnings locally and errors for Event Grid.
    let fixture = "tests/fixtures/rules/TG701-event-grid-limit.yaml";
    assert_eq!(topicgate(&["policy", "check", fixture]).0, 0);
    assert_eq!(
        topicgate(&["policy", "check", "--target", "eventgrid", fixture]).0,
        1
    );
}

#[test]
fn compile_refuses_a_policy_whose_check_finds_errors_but_not_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.tgc");
    let bad = seed_with_bad_will(tmp.path());
    let (code, _, stderr) = topicgate(&[
        "policy",
        "compile",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("TG401"), "{stderr}");
    assert!(!out.exists());
    // `explain` still answers on a policy the verifier rejects: that is when one asks.
    let (code, stdout, stderr) = topicgate(&[
        "policy",
        "explain",
        bad.to_str().unwrap(),
        "--client",
        "sensor2",
        "--connect",
        "--will-topic",
        "clients/sensor1/status",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("DENY") && stdout.contains("nearest miss"),
        "{stdout}"
    );
    let warned = "tests/fixtures/rules/TG404-will-forgeable.yaml";
    let (code, _, stderr) = topicgate(&["policy", "compile", warned, "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("TG404"), "warnings are shown: {stderr}");
    assert!(out.exists());
}

#[test]
fn the_dsl_form_is_accepted_by_check_compile_and_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lwt.tgc");
    assert_eq!(
        topicgate(&["policy", "check", "--deny-warnings", "policies/lwt.policy"]).0,
        0
    );
    assert_eq!(
        topicgate(&[
            "policy",
            "compile",
            "policies/lwt.policy",
            "-o",
            out.to_str().unwrap()
        ])
        .0,
        0
    );
    let (code, stdout, _) = topicgate(&[
        "policy",
        "explain",
        "policies/lwt.policy",
        "--client",
        "sensor1",
        "--connect",
        "--will-topic",
        "clients/sensor2/status",
    ]);
    assert_eq!(code, 1, "{stdout}");
    let (code, _, _) = topicgate(&[
        "policy",
        "explain",
        out.to_str().unwrap(),
        "--client",
        "actuator1",
        "--subscribe",
        "clients/+/status",
    ]);
    assert_eq!(code, 0);
}
