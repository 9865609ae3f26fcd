//! `topicgate serve --config FILE`, `TOPICGATE_*` variables and flags:
//! precedence (flags > environment > file > defaults) and `--print-config`,
//! on the real binary.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_topicgate");

/// `topicgate serve ARGS` with exactly the `TOPICGATE_*` variables in `env`.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOPICGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run topicgate")
}

/// The effective configuration `--print-config` prints, as a YAML mapping.
fn effective(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = serve(&all, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().into_owned()
}

#[test]
fn defaults_alone_are_printed_and_nothing_is_served() {
    let c = effective(&["--dev", "some-policy.yaml"], &[]);
    assert_eq!(c["policy"], "some-policy.yaml");
    assert_eq!(c["dev"], true);
    assert_eq!(c["watch"], false);
    assert_eq!(c["logFormat"], "text");
    assert_eq!(c["mqtt"], serde_json::json!([]));
    assert_eq!(c["maxConnections"], 10_000);
    assert_eq!(c["connectTimeout"], 10.0);
}

#[test]
fn flags_win_over_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = write(
        dir.path(),
        "topicgate.yaml",
        "policy: from-file.yaml\n\
         mqtt: [\"127.0.0.1:1001\"]\n\
         metrics: 127.0.0.1:9001\n\
         dev: true\n\
         watch: true\n\
         logFormat: json\n\
         eventsFile: events.jsonl\n\
         data: state\n\
         maxConnections: 7\n",
    );
    // The file alone; relative paths are relative to its directory.
    let c = effective(&["--config", &file], &[]);
    let base = dir.path().to_string_lossy();
    assert_eq!(c["policy"], format!("{base}/from-file.yaml"));
    assert_eq!(c["eventsFile"], format!("{base}/events.jsonl"));
    assert_eq!(c["data"], format!("{base}/state"));
    assert_eq!(c["mqtt"], serde_json::json!(["127.0.0.1:1001"]));
    assert_eq!(c["metrics"], "127.0.0.1:9001");
    assert_eq!(
        (c["dev"].clone(), c["watch"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(c["logFormat"], "json");
    assert_eq!(c["maxConnections"], 7);

    // The environment over the file, a false included.
    let env = [
        ("TOPICGATE_CONFIG", file.as_str()),
        ("TOPICGATE_POLICY", "from-env.yaml"),
        ("TOPICGATE_MQTT", "127.0.0.1:2001,127.0.0.1:2002"),
        ("TOPICGATE_METRICS", "127.0.0.1:9002"),
        ("TOPICGATE_WATCH", "false"),
        ("TOPICGATE_LOG_FORMAT", "text"),
        ("TOPICGATE_DATA", "/var/lib/from-env"),
    ];
    let c = effective(&[], &env);
    assert_eq!(c["policy"], "from-env.yaml");
    assert_eq!(
        c["mqtt"],
        serde_json::json!(["127.0.0.1:2001", "127.0.0.1:2002"])
    );
    assert_eq!(c["metrics"], "127.0.0.1:9002");
    assert_eq!(c["watch"], false);
    assert_eq!(c["dev"], true, "not in the environment: the file's");
    assert_eq!(c["logFormat"], "text");
    assert_eq!(c["data"], "/var/lib/from-env");
    assert_eq!(c["maxConnections"], 7);

    // Flags over both.
    let c = effective(
        &[
            "--mqtt",
            "127.0.0.1:3001",
            "--metrics",
            "127.0.0.1:9003",
            "--watch",
            "--dev=false",
            "--log-format",
            "json",
            "--data",
            "/srv/from-flag",
            "from-flag.yaml",
        ],
        &env,
    );
    assert_eq!(c["policy"], "from-flag.yaml");
    assert_eq!(c["mqtt"], serde_json::json!(["127.0.0.1:3001"]));
    assert_eq!(c["metrics"], "127.0.0.1:9003");
    assert_eq!(c["watch"], true);
    assert_eq!(c["dev"], false);
    assert_eq!(c["logFormat"], "json");
    assert_eq!(c["data"], "/srv/from-flag");
}

#[test]
fn the_printed_configuration_reads_back_as_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = serve(
        &[
            "--print-config",
            "--dev",
            "--mqtt",
            "127.0.0.1:1883",
            "--metrics",
            "127.0.0.1:9100",
            "/srv/policy.yaml",
        ],
        &[],
    );
    assert_eq!(first.status.code(), Some(0));
    let printed = String::from_utf8(first.stdout).expect("utf-8");
    let file = write(dir.path(), "printed.yaml", &printed);
    let again = serve(&["--print-config", "--config", &file], &[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8(again.stdout).expect("utf-8"), printed);
}

#[test]
fn a_limits_only_file_keeps_working() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = write(
        dir.path(),
        "limits.json",
        r#"{"maxConnections": 3, "connectTimeout": 2.5}"#,
    );
    let c = effective(&["--config", &file, "--dev", "p.yaml"], &[]);
    assert_eq!(c["maxConnections"], 3);
    assert_eq!(c["connectTimeout"], 2.5);
}

#[test]
fn without_a_policy_anywhere_serve_refuses_with_a_clear_error() {
    let out = serve(&["--dev"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no policy"), "{err}");
    assert!(err.contains("TOPICGATE_POLICY"), "{err}");
}

#[test]
fn an_unknown_or_mistyped_key_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    for (text, named) in [
        ("policy: p.yaml\nlisteners: [x]\n", "listeners"),
        ("maxConections: 3\n", "maxConections"),
        ("dev: maybe\n", "dev"),
        ("metrics: not-an-address\n", "metrics"),
        ("- a\n- b\n", "mapping"),
    ] {
        let file = write(dir.path(), "bad.yaml", text);
        let out = serve(&["--print-config", "--config", &file], &[]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{text}: {err}");
    }
}

#[test]
fn a_bad_environment_value_is_refused() {
    let out = serve(
        &["--print-config", "p.yaml"],
        &[("TOPICGATE_DEV", "perhaps")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("perhaps"), "{err}");
}

/// The file's policy and listeners serve for real.
#[test]
fn a_config_file_alone_starts_the_broker() {
    let dir = tempfile::tempdir().expect("tmp");
    let policy = format!("{}/policies/lwt.yaml", env!("CARGO_MANIFEST_DIR"));
    let file = write(
        dir.path(),
        "topicgate.yaml",
        &format!("policy: {policy}\nmqtt: [\"127.0.0.1:0\"]\ndev: true\n"),
    );
    let mut child = Command::new(BIN)
        .args(["serve", "--config", &file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on mqtt://127.0.0.1:"), "{line}");
}
