//! One exit-code rule for every command (docs/decisions/0010): 0 success, 1 a
//! finding (a policy with errors, a denial, a failed test, new access), 2 the command
//! could not run (missing file, a YAML syntax error, a file that is not a policy, an
//! unknown client in the question). Pinned per command for each case.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const OK: &str = "policies/lwt.yaml";
/// A well-formed policy with an error: sensor2's will topic is not granted (TG401).
const WITH_ERRORS: &str = "tests/fixtures/rules/TG401-will-not-permitted.yaml";
const SYNTAX: &str = "tests/fixtures/rules/TG001-syntax.yaml";
const TOML: &str = "Cargo.toml";
const NOT_POLICY: &str = "tests/fixtures/rules/TG011-not-a-policy.yaml";
const MISSING: &str = "tests/fixtures/no-such-policy.yaml";
/// Every file that is not a readable policy.
const UNREADABLE: [&str; 4] = [SYNTAX, TOML, NOT_POLICY, MISSING];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run topicgate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `args` with `{}` replaced by `file`, asserting the exit code.
fn expect(code: i32, args: &[&str], file: &str) -> Run {
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{}" { file } else { a })
        .collect();
    let r = run(&args);
    assert_eq!(
        r.code,
        code,
        "`topicgate {}` exited {} (want {code})\nstdout: {}\nstderr: {}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    r
}

/// Each file that is not a readable policy makes `args` exit 2.
fn unreadable_exits_2(args: &[&str]) {
    for file in UNREADABLE {
        expect(2, args, file);
    }
}

#[test]
fn check() {
    let args = ["policy", "check", "{}"];
    expect(0, &args, OK);
    expect(1, &args, WITH_ERRORS);
    unreadable_exits_2(&args);
    // A syntax error is reported and counted; a file never read is not counted.
    let r = expect(2, &args, SYNTAX);
    assert!(r.stdout.contains("TG001"), "{}", r.stdout);
    assert!(r.stdout.contains("checked 1 file: 1 error"), "{}", r.stdout);
    let r = expect(2, &args, MISSING);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
    assert!(!r.stdout.contains("checked"), "{}", r.stdout);
    let r = run(&["policy", "check", OK, MISSING]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("checked 1 file: 0 errors"),
        "{}",
        r.stdout
    );
    // The worst case wins: a finding in one file, an unreadable other.
    assert_eq!(run(&["policy", "check", WITH_ERRORS, TOML]).code, 2);
    let r = expect(2, &args, NOT_POLICY);
    assert!(r.stdout.contains("TG011"), "{}", r.stdout);
}

#[test]
fn compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("p.tgc");
    let out = out.to_str().expect("utf-8 path");
    let args = ["policy", "compile", "{}", "-o", out];
    expect(0, &args, OK);
    expect(1, &args, WITH_ERRORS);
    unreadable_exits_2(&args);
}

#[test]
fn explain() {
    let allowed = [
        "policy",
        "explain",
        "{}",
        "--client",
        "sensor1",
        "--publish",
        "clients/sensor1/status",
    ];
    expect(0, &allowed, OK);
    let denied = [
        "policy",
        "explain",
        "{}",
        "--client",
        "sensor2",
        "--publish",
        "clients/sensor1/status",
    ];
    expect(1, &denied, OK);
    unreadable_exits_2(&allowed);
    // A client that does not exist is a mistake in the question, not a denial.
    let r = expect(
        2,
        &["policy", "explain", "{}", "--client", "sensr1", "--connect"],
        OK,
    );
    assert!(r.stderr.contains("unknown client `sensr1`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `sensor1`"), "{}", r.stderr);
    expect(
        2,
        &[
            "policy",
            "explain",
            "{}",
            "--client",
            "nobody",
            "--publish",
            "a",
        ],
        OK,
    );
}

#[test]
fn query() {
    let who = [
        "policy",
        "query",
        "{}",
        "--publish",
        "clients/sensor1/status",
    ];
    expect(0, &who, OK);
    expect(
        1,
        &["policy", "query", "{}", "--publish", "nobody/may/publish"],
        OK,
    );
    unreadable_exits_2(&who);
    expect(2, &["policy", "query", "{}", "--client", "nobody"], OK);
    expect(
        2,
        &[
            "policy", "query", "{}", "--from", "sensor1", "--to", "nobody",
        ],
        OK,
    );
}

#[test]
fn test() {
    let args = ["policy", "test", "{}"];
    expect(0, &args, OK);
    expect(1, &args, "tests/fixtures/analysis/lwt-wildcard-pub.yaml");
    unreadable_exits_2(&args);
    // A test file that is not a readable test file.
    for file in UNREADABLE {
        expect(2, &["policy", "test", OK, "{}"], file);
    }
}

#[test]
fn diff() {
    let args = ["policy", "diff", OK, "{}", "--fail-on", "any-change"];
    expect(0, &args, OK);
    expect(1, &args, "tests/fixtures/analysis/lwt-wildcard-pub.yaml");
    unreadable_exits_2(&args);
    unreadable_exits_2(&["policy", "diff", "{}", OK]);
}

#[test]
fn graph() {
    let args = ["policy", "graph", "{}"];
    expect(0, &args, OK);
    unreadable_exits_2(&args);
    expect(2, &["policy", "graph", "{}", "--client", "nobody"], OK);
}

#[test]
fn fmt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let messy = dir.path().join("messy.yaml");
    std::fs::write(
        &messy,
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(OK))
            .expect("seed")
            .replace("namespace: lwt-demo", "namespace:    lwt-demo"),
    )
    .expect("write");
    let messy = messy.to_str().expect("utf-8 path");
    expect(0, &["policy", "fmt", "{}", "--to", "dsl"], OK);
    // A file that is not formatted, with --check.
    expect(1, &["policy", "fmt", "{}", "--check"], messy);
    // A policy with schema errors is not formatted (it could lose content).
    expect(
        1,
        &["policy", "fmt", "{}", "--to", "dsl"],
        "tests/fixtures/rules/TG002-unknown-key.yaml",
    );
    unreadable_exits_2(&["policy", "fmt", "{}", "--to", "dsl"]);
}

#[test]
fn export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 path");
    let args = ["policy", "export", "--to", "mosquitto", "{}", "-o", out];
    expect(0, &args, OK);
    expect(1, &args, WITH_ERRORS);
    unreadable_exits_2(&args);
}

#[test]
fn serve() {
    // Refused before any listener opens, so nothing keeps running.
    let args = ["serve", "{}", "--dev", "--mqtt", "127.0.0.1:0"];
    expect(1, &args, WITH_ERRORS);
    unreadable_exits_2(&args);
    let r = expect(
        2,
        &[
            "serve",
            "{}",
            "--dev",
            "--anonymous",
            "nobody",
            "--mqtt",
            "127.0.0.1:0",
        ],
        OK,
    );
    assert!(r.stderr.contains("nobody"), "{}", r.stderr);
}

#[test]
fn bad_arguments_exit_2() {
    expect(2, &["policy", "check"], OK);
    expect(2, &["policy", "explain", "{}", "--client", "sensor1"], OK);
    expect(2, &["no-such-command"], OK);
}
