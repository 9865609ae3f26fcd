//! `topicgate policy fmt`: in place, conversion, `--check` for CI, and refusal of
//! files it cannot read without losing content.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn topicgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run topicgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_unformatted_files_and_fmt_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.policy");
    let p = path.to_str().unwrap();
    std::fs::write(&path, "# header\nclient   s1 {attributes {type=sensor}}\ngroup sensors = attributes.type='sensor'\n").unwrap();
    assert_eq!(topicgate(&["policy", "fmt", "--check", p]).0, 1);
    assert_eq!(topicgate(&["policy", "fmt", p]).0, 0);
    assert_eq!(topicgate(&["policy", "fmt", "--check", p]).0, 0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "# header\n\nclient s1 {\n  attributes { type = sensor }\n}\n\ngroup sensors = attributes.type = 'sensor'\n");
}

#[test]
fn converts_between_the_forms() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, dsl, _) = topicgate(&[
        "policy",
        "fmt",
        &format!("{root}/policies/lwt.yaml"),
        "--to",
        "dsl",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        dsl,
        std::fs::read_to_string(format!("{root}/policies/lwt.policy")).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lwt.yaml");
    let o = out.to_str().unwrap();
    assert_eq!(
        topicgate(&[
            "policy",
            "fmt",
            &format!("{root}/policies/lwt.policy"),
            "--to",
            "yaml",
            "-o",
            o
        ])
        .0,
        0
    );
    assert_eq!(
        topicgate(&[
            "policy",
            "fmt",
            &format!("{root}/policies/lwt.policy"),
            "--to",
            "yaml",
            "--check",
            "-o",
            o
        ])
        .0,
        0
    );
    assert_eq!(topicgate(&["policy", "check", "--deny-warnings", o]).0, 0);
}

#[test]
fn refuses_files_with_errors_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "clients:\n  s1: { attributes: { type: sensor }, subscribe: [x] }\n",
    )
    .unwrap();
    let (code, _, stderr) = topicgate(&["policy", "fmt", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("TG002"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "clients:\n  s1: { attributes: { type: sensor }, subscribe: [x] }\n",
        "left untouched"
    );
    assert_eq!(topicgate(&["policy", "fmt", "no/such.yaml"]).0, 2);
}
