//! The command line of `topicgate certs` and the TLS/WebSocket flags of
//! `topicgate serve`: bad input gets a clear error and exit code 2 (1 for a
//! policy with errors), never a panic or a listener nobody asked for.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .output()
        .expect("run topicgate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn seed() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/lwt.yaml")
        .display()
        .to_string()
}

#[test]
fn thumbprint_matches_what_init_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("certs");
    let init = run(&[
        "certs",
        "init",
        &seed(),
        "--out",
        &out.display().to_string(),
        "--server-name",
        "broker.local",
    ]);
    assert!(init.status.success(), "{}", stderr(&init));
    let printed = String::from_utf8_lossy(&init.stdout).into_owned();
    let sensor1 = printed
        .lines()
        .find(|l| l.ends_with("  sensor1"))
        .expect("sensor1 line");
    let file = out.join("clients/sensor1.pem").display().to_string();
    let tp = run(&["certs", "thumbprint", &file]);
    assert!(tp.status.success());
    assert_eq!(
        String::from_utf8_lossy(&tp.stdout),
        format!("{}  {file}\n", sensor1.split_once("  ").expect("line").0)
    );
}

#[test]
fn thumbprint_of_a_missing_or_bad_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem").display().to_string();
    let o = run(&["certs", "thumbprint", &missing]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let o = run(&["certs", "thumbprint", &junk.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no `BEGIN CERTIFICATE` block"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_refuses_a_policy_with_errors_and_a_second_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "clients:\n  sensor1: { state: Sleeping }\n").expect("write");
    let out = dir.path().join("certs").display().to_string();
    let o = run(&["certs", "init", &bad.display().to_string(), "--out", &out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        !dir.path().join("certs").exists(),
        "nothing written for a bad policy"
    );

    assert!(run(&["certs", "init", &seed(), "--out", &out])
        .status
        .success());
    let o = run(&["certs", "init", &seed(), "--out", &out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already exists; use --force"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn serve_opens_no_listener_nobody_asked_for() {
    let o = run(&["serve", &seed()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no listener"), "{}", stderr(&o));
}

#[test]
fn tls_listeners_need_a_certificate_and_key_that_exist() {
    let o = run(&["serve", &seed(), "--mqtts", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--cert"), "{}", stderr(&o));
    let o = run(&["serve", &seed(), "--wss", "127.0.0.1:0", "--key", "k.pem"]);
    assert_eq!(o.status.code(), Some(2));

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("server.pem").display().to_string();
    let o = run(&[
        "serve",
        &seed(),
        "--mqtts",
        "127.0.0.1:0",
        "--cert",
        &missing,
        "--key",
        &missing,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    // A key that is not the certificate's.
    let out = dir.path().join("certs");
    assert!(run(&[
        "certs",
        "init",
        &seed(),
        "--out",
        &out.display().to_string()
    ])
    .status
    .success());
    let cert = out.join("server.pem").display().to_string();
    let other_key = out.join("ca.key").display().to_string();
    let o = run(&[
        "serve",
        &seed(),
        "--mqtts",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &other_key,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("do not form a usable pair"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cert_and_key_without_a_tls_listener_are_an_error() {
    let o = run(&[
        "serve",
        &seed(),
        "--dev",
        "--mqtt",
        "127.0.0.1:0",
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--cert and --key are for TLS listeners"),
        "{}",
        stderr(&o)
    );
}
