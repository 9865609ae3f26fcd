//! `policy compile` and `policy explain` as a user runs them, including every kind of
//! bad input: each must give a clear error and the documented exit code, never a
//! panic or a hang.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn topicgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .output()
        .expect("run topicgate")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn compile_seed(dir: &Path) -> String {
    let out = dir.join("lwt.tgc");
    let o = topicgate(&[
        "policy",
        "compile",
        "policies/lwt.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    out.to_str().unwrap().to_string()
}

#[test]
fn compile_then_explain_from_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let art = compile_seed(dir.path());
    let o = topicgate(&[
        "policy",
        "explain",
        &art,
        "--client",
        "sensor1",
        "--publish",
        "clients/sensor1/status",
    ]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ALLOW"));
    let o = topicgate(&[
        "policy",
        "explain",
        &art,
        "--client",
        "sensor2",
        "--publish",
        "clients/sensor1/status",
    ]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("DENY"));
}

#[test]
fn explain_json_has_the_documented_shape() {
    let o = topicgate(&[
        "policy",
        "explain",
        "policies/lwt.yaml",
        "--client",
        "SENSOR1",
        "--publish",
        "clients/sensor1/status",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["client"], "sensor1");
    assert_eq!(v["action"], "publish");
    assert_eq!(v["topic"], "clients/sensor1/status");
    assert_eq!(v["grantedBy"]["binding"], "sensors-pub");
    assert_eq!(v["grantedBy"]["topicSpace"], "lwt-pub");
    assert_eq!(
        v["grantedBy"]["template"],
        "clients/${client.authenticationName}/status"
    );
    assert!(v["reason"].is_string());

    let o = topicgate(&[
        "policy",
        "explain",
        "policies/lwt.yaml",
        "--client",
        "sensor1",
        "--connect",
        "--will-topic",
        "clients/sensor2/status",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["action"], "connect");
    assert!(v["grantedBy"].is_null());
}

#[test]
fn unknown_client_is_an_error_with_a_suggestion_not_a_denial() {
    let o = topicgate(&[
        "policy",
        "explain",
        "policies/lwt.yaml",
        "--client",
        "sensr1",
        "--publish",
        "x",
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `sensor1`"));
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(
        code(&topicgate(&[
            "policy",
            "explain",
            "policies/lwt.yaml",
            "--client",
            "sensor1"
        ])),
        2,
        "no action"
    );
    assert_eq!(
        code(&topicgate(&[
            "policy",
            "explain",
            "policies/lwt.yaml",
            "--client",
            "a",
            "--publish",
            "x",
            "--subscribe",
            "y"
        ])),
        2
    );
    assert_eq!(
        code(&topicgate(&["policy", "compile", "policies/lwt.yaml"])),
        2,
        "missing -o"
    );
    assert_eq!(code(&topicgate(&["policy", "frobnicate"])), 2);
    assert_eq!(code(&topicgate(&["--help"])), 0);
}

fn explain_file(path: &Path) -> Output {
    topicgate(&[
        "policy",
        "explain",
        path.to_str().unwrap(),
        "--client",
        "sensor1",
        "--connect",
    ])
}

#[test]
fn unreadable_inputs_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed.yaml",
            b"clients: [1, 2\n".to_vec(),
            "invalid YAML",
        ),
        (
            "garbage.bin",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            "not UTF-8",
        ),
        (
            "deep.yaml",
            "a: "
                .bytes()
                .chain(std::iter::repeat_n(b'[', 100_000))
                .collect(),
            "recursion limit",
        ),
        (
            "aliases.yaml",
            billion_laughs().into_bytes(),
            "invalid YAML",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = explain_file(&path);
        assert_eq!(code(&o), 2, "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(expect),
            "{name}: expected `{expect}` in {}",
            stderr(&o)
        );
        let o = topicgate(&[
            "policy",
            "compile",
            path.to_str().unwrap(),
            "-o",
            dir.path().join("x.tgc").to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 2, "compile {name}: {}", stderr(&o));
    }
    let o = explain_file(&dir.path().join("missing.yaml"));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot read"));
    let o = explain_file(dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("directory"));
}

fn billion_laughs() -> String {
    let mut s = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='j' {
        s += &format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        );
        prev = c;
    }
    s
}

#[test]
fn a_50_mb_file_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    std::fs::write(&path, line.repeat(50 * 1024 * 1024 / line.len())).unwrap();
    let o = explain_file(&path);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("more than the limit"), "{}", stderr(&o));
}

#[test]
fn a_policy_with_errors_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "clients:\n  s1: { atributes: {} }\npermissionBindings:\n  bnd: { clientGroup: nope, topicSpace: nope, permission: publisher }\n").unwrap();
    let out = dir.path().join("bad.tgc");
    let o = topicgate(&[
        "policy",
        "compile",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("TG002") && err.contains("did you mean `attributes`"),
        "{err}"
    );
    assert!(err.contains("TG101") && err.contains("TG102"), "{err}");
    assert!(
        err.contains("bad.yaml:2:"),
        "diagnostics point at the line: {err}"
    );
    assert!(!out.exists(), "no artifact is written");
}

#[test]
fn damaged_artifacts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let art = compile_seed(dir.path());
    let bytes = std::fs::read(&art).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x55;
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let cases = [
        (
            write("truncated.tgc", &bytes[..bytes.len() / 2]),
            "truncated",
        ),
        (write("header-only.tgc", &bytes[..20]), "truncated"),
        (write("flipped.tgc", &flipped), "corrupted"),
        (write("newer.tgc", &newer), "newer"),
    ];
    for (path, expect) in cases {
        let o = explain_file(&path);
        assert_eq!(code(&o), 2, "{}: {}", path.display(), stderr(&o));
        assert!(
            stderr(&o).contains(expect),
            "{}: {}",
            path.display(),
            stderr(&o)
        );
    }
}

#[test]
fn shell_completions_are_generated() {
    let o = topicgate(&["completions", "bash"]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("topicgate"));
}
