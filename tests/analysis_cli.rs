//! Snapshots of `policy explain`, `query`, `test`, `diff` and `graph`, human and JSON,
//! run through the real binary on the seed scenario and its broken variants
//! (`tests/fixtures/analysis/`). Each snapshot records the exit status, then stdout.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const SEED: &str = "policies/lwt.yaml";
const WILDCARD_PUB: &str = "tests/fixtures/analysis/lwt-wildcard-pub.yaml";
const SUB_HASH: &str = "tests/fixtures/analysis/lwt-sub-hash.yaml";
const TYPO: &str = "tests/fixtures/analysis/lwt-typo.yaml";
const RENAMED: &str = "tests/fixtures/analysis/lwt-renamed.yaml";
const UNTESTED: &str = "tests/fixtures/analysis/lwt-untested.yaml";
const FACTORY: &str = "policies/factory.yaml";
const TEST_FILE: &str = "tests/fixtures/analysis/lwt-receive.tests.yaml";

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    format!(
        "exit: {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout)
    )
}

macro_rules! snap {
    ($name:expr, $args:expr) => {
        insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/analysis"), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, run($args));
        })
    };
}

#[test]
fn explain_chains() {
    let p = &["policy", "explain", SEED];
    let with = |extra: &[&'static str]| [&p[..], extra].concat();
    snap!(
        "explain_allow_own_status",
        &with(&["--client", "sensor1", "--publish", "clients/sensor1/status"])
    );
    snap!(
        "explain_deny_other_status",
        &with(&["--client", "sensor2", "--publish", "clients/sensor1/status"])
    );
    snap!(
        "explain_deny_other_status_json",
        &with(&[
            "--client",
            "sensor2",
            "--publish",
            "clients/sensor1/status",
            "--format",
            "json"
        ])
    );
    snap!(
        "explain_deny_not_in_group",
        &with(&[
            "--client",
            "actuator1",
            "--publish",
            "clients/actuator1/status"
        ])
    );
    snap!(
        "explain_subscribe_witness",
        &with(&["--client", "actuator1", "--subscribe", "clients/#"])
    );
    snap!(
        "explain_subscribe_witness_json",
        &with(&[
            "--client",
            "actuator1",
            "--subscribe",
            "clients/#",
            "--format",
            "json"
        ])
    );
    snap!(
        "explain_subscribe_allow",
        &with(&[
            "--client",
            "actuator2",
            "--subscribe",
            "$share/g/clients/sensor1/status"
        ])
    );
    snap!(
        "explain_will_denied",
        &with(&[
            "--client",
            "sensor1",
            "--connect",
            "--will-topic",
            "clients/sensor2/status"
        ])
    );
    snap!(
        "explain_will_denied_json",
        &with(&[
            "--client",
            "sensor1",
            "--connect",
            "--will-topic",
            "clients/sensor2/status",
            "--format",
            "json"
        ])
    );
    snap!(
        "explain_unknown_client",
        &with(&["--client", "sensr1", "--connect"])
    );
    snap!(
        "explain_unknown_client_json",
        &with(&["--client", "sensr1", "--connect", "--format", "json"])
    );
    snap!(
        "explain_reserved_topic",
        &with(&["--client", "sensor1", "--publish", "$SYS/x"])
    );
    snap!(
        "explain_typo_not_in_group",
        &[
            "policy",
            "explain",
            TYPO,
            "--client",
            "actuator2",
            "--subscribe",
            "clients/+/status"
        ]
    );
    snap!(
        "explain_disabled",
        &[
            "policy",
            "explain",
            RENAMED,
            "--client",
            "actuator1",
            "--subscribe",
            "clients/+/status"
        ]
    );
}

#[test]
fn explain_chains_on_the_factory() {
    let p = &["policy", "explain", FACTORY];
    let with = |extra: &[&'static str]| [&p[..], extra].concat();
    // A partial-level variable (`f$<client.attributes.floor>`) that differs.
    snap!(
        "factory_explain_other_floor",
        &with(&["--client", "bob", "--subscribe", "telemetry/f1/#"])
    );
    // A query with AND and IN: which condition fails.
    snap!(
        "factory_explain_not_a_device",
        &with(&["--client", "carol", "--publish", "telemetry/f1/l1/carol/x"])
    );
    snap!(
        "factory_explain_not_a_device_json",
        &with(&[
            "--client",
            "carol",
            "--publish",
            "telemetry/f1/l1/carol/x",
            "--format",
            "json"
        ])
    );
    snap!(
        "factory_explain_allowed_by_plant_view",
        &with(&[
            "--client",
            "dashboard",
            "--subscribe",
            "status/f1/l1/plc-f1-l1"
        ])
    );
}

#[test]
fn queries_on_the_factory() {
    snap!(
        "factory_query_client",
        &["policy", "query", FACTORY, "--client", "alice"]
    );
    snap!(
        "factory_query_flow",
        &[
            "policy",
            "query",
            FACTORY,
            "--from",
            "temp-f1-l1-01",
            "--to",
            "alice"
        ]
    );
    snap!(
        "factory_query_receive",
        &[
            "policy",
            "query",
            FACTORY,
            "--receive",
            "status/f2/l3/plc-f2-l3"
        ]
    );
    snap!("factory_test", &["policy", "test", FACTORY]);
    snap!(
        "factory_graph_matrix",
        &["policy", "graph", FACTORY, "--matrix"]
    );
}

#[test]
fn queries() {
    let p = &["policy", "query", SEED];
    let with = |extra: &[&'static str]| [&p[..], extra].concat();
    snap!(
        "query_publish",
        &with(&["--publish", "clients/sensor1/status"])
    );
    snap!(
        "query_publish_json",
        &with(&["--publish", "clients/sensor1/status", "--format", "json"])
    );
    snap!(
        "query_publish_wildcard_variant",
        &[
            "policy",
            "query",
            WILDCARD_PUB,
            "--publish",
            "clients/sensor1/status"
        ]
    );
    snap!(
        "query_subscribe",
        &with(&["--subscribe", "clients/+/status"])
    );
    snap!(
        "query_subscribe_nobody",
        &with(&["--subscribe", "clients/#"])
    );
    snap!(
        "query_receive",
        &with(&["--receive", "clients/sensor2/status"])
    );
    snap!("query_client", &with(&["--client", "sensor1"]));
    snap!(
        "query_client_json",
        &with(&["--client", "actuator1", "--format", "json"])
    );
    snap!(
        "query_flow",
        &with(&["--from", "sensor1", "--to", "actuator2"])
    );
    snap!(
        "query_flow_json",
        &with(&["--from", "sensor1", "--to", "actuator2", "--format", "json"])
    );
    snap!(
        "query_no_flow",
        &with(&["--from", "actuator1", "--to", "sensor1"])
    );
    snap!(
        "query_flow_between_sensors_variant",
        &[
            "policy",
            "query",
            WILDCARD_PUB,
            "--from",
            "sensor1",
            "--to",
            "sensor2"
        ]
    );
}

#[test]
fn tests_and_coverage() {
    snap!("test_seed", &["policy", "test", SEED, TEST_FILE]);
    snap!(
        "test_seed_json",
        &["policy", "test", SEED, "--format", "json"]
    );
    snap!(
        "test_wildcard_variant_fails",
        &["policy", "test", WILDCARD_PUB]
    );
    snap!(
        "test_wildcard_variant_junit",
        &["policy", "test", WILDCARD_PUB, "--format", "junit"]
    );
    snap!("test_untested_coverage", &["policy", "test", UNTESTED]);
    snap!(
        "test_unknown_client_fails",
        &[
            "policy",
            "test",
            SEED,
            "tests/fixtures/analysis/lwt-unknown-client.tests.yaml"
        ]
    );
}

#[test]
fn diffs() {
    snap!(
        "diff_new_publish_access",
        &[
            "policy",
            "diff",
            SEED,
            WILDCARD_PUB,
            "--fail-on",
            "new-access"
        ]
    );
    snap!(
        "diff_new_publish_access_json",
        &["policy", "diff", SEED, WILDCARD_PUB, "--format", "json"]
    );
    snap!(
        "diff_new_subscribe_access",
        &["policy", "diff", SEED, SUB_HASH, "--fail-on", "new-access"]
    );
    snap!(
        "diff_lost_access_only",
        &["policy", "diff", SEED, TYPO, "--fail-on", "new-access"]
    );
    snap!(
        "diff_lost_access_any_change",
        &["policy", "diff", SEED, TYPO, "--fail-on", "any-change"]
    );
    snap!(
        "diff_clients_added_removed",
        &["policy", "diff", SEED, RENAMED]
    );
    snap!(
        "diff_clients_added_removed_json",
        &["policy", "diff", SEED, RENAMED, "--format", "json"]
    );
    snap!(
        "diff_reverse_loses_access",
        &[
            "policy",
            "diff",
            WILDCARD_PUB,
            SEED,
            "--fail-on",
            "new-access"
        ]
    );
    snap!(
        "diff_no_change",
        &["policy", "diff", SEED, SEED, "--fail-on", "any-change"]
    );
}

#[test]
fn graphs() {
    snap!("graph_mermaid", &["policy", "graph", SEED]);
    snap!("graph_dot", &["policy", "graph", SEED, "--format", "dot"]);
    snap!(
        "graph_client",
        &["policy", "graph", SEED, "--client", "sensor2"]
    );
    snap!("graph_matrix", &["policy", "graph", UNTESTED, "--matrix"]);
}

#[test]
fn the_seed_graph_document_is_current() {
    // docs/lwt-graph.md shows the seed scenario's graph; it must match the command's output.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lwt-graph.md"))
        .expect("docs/lwt-graph.md");
    let graph = run(&["policy", "graph", SEED]);
    let graph = graph.strip_prefix("exit: 0\n").expect("graph succeeds");
    assert!(doc.contains(graph), "docs/lwt-graph.md is out of date: regenerate it with `topicgate policy graph policies/lwt.yaml`");
}

#[test]
fn errors_exit_2() {
    for args in [
        &["policy", "query", SEED, "--client", "nobody"][..],
        &[
            "policy",
            "diff",
            SEED,
            "tests/fixtures/analysis/missing.yaml",
        ],
        &["policy", "graph", SEED, "--client", "nobody"],
        &[
            "policy",
            "test",
            SEED,
            "tests/fixtures/analysis/missing.tests.yaml",
        ],
        &["policy", "test", SEED, WILDCARD_PUB],
    ] {
        assert!(run(args).starts_with("exit: 2\n"), "{args:?} should exit 2");
    }
}

/// Exit status and standard error of the binary.
fn status_and_stderr(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn query_about_what_cannot_be_published_is_an_error_or_nobody() {
    // issue 12: `--receive '+'` listed receivers of a topic nobody can publish.
    for (flag, subject) in [
        ("--receive", "+"),
        ("--receive", "clients/#"),
        ("--publish", "clients/+/status"),
        ("--subscribe", "clients/#/status"),
        ("--subscribe", "$share//clients/+/status"),
    ] {
        let (code, err) = status_and_stderr(&["policy", "query", SEED, flag, subject]);
        assert_eq!(code, 2, "{flag} {subject}: {err}");
        assert!(err.contains("error: cannot ask who may"), "{err}");
    }
    // A `$` topic is a topic name, reserved: nobody, with a note saying why.
    let (code, err) = status_and_stderr(&[
        "policy",
        "query",
        SEED,
        "--receive",
        "$share/g/clients/sensor1/status",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reserved for the broker"), "{err}");
    // The well-formed questions still answer.
    let (code, err) = status_and_stderr(&[
        "policy",
        "query",
        SEED,
        "--receive",
        "clients/sensor1/status",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = status_and_stderr(&[
        "policy",
        "query",
        SEED,
        "--subscribe",
        "$share/g/clients/+/status",
    ]);
    assert_eq!(code, 0, "{err}");
}
