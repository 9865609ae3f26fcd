//! `topicgate passwd` end to end: the hash it prints, pasted into a policy, lets the
//! client in through `topicgate serve` with that password (password identity mode,
//! a real rumqttc client over loopback), and keeps a wrong password out.

mod support;
use rumqttc::{ConnectReturnCode, ConnectionError, Event, Incoming, MqttOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
}

/// `topicgate passwd --stdin` with `input`: exit code, stdout, stderr.
fn passwd(input: &str) -> (Option<i32>, String, String) {
    let mut child = bin()
        .args(["passwd", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("passwd output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The hash of the `passwordHash: "..."` line `passwd` prints.
fn hash_of(password: &str) -> String {
    let (code, out, err) = passwd(&format!("{password}\n"));
    assert_eq!(code, Some(0), "{err}");
    out.trim()
        .strip_prefix("passwordHash: \"")
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a passwordHash line: {out:?}"))
        .to_string()
}

/// The CONNACK a 3.1.1 client gets for `user`/`password`.
async fn connack(port: u16, user: &str, password: &str) -> ConnectReturnCode {
    let mut o = MqttOptions::new(format!("{user}-{}", password.len()), "127.0.0.1", port);
    o.set_credentials(user, password);
    let (_client, mut el) = rumqttc::AsyncClient::new(o, 4);
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(c))) => return c.code,
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => return code,
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await;
    polled.expect("CONNACK within 10 s")
}

#[test]
fn a_hash_from_passwd_lets_its_client_in_and_keeps_a_wrong_password_out() {
    let hash = hash_of("correct horse");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let policy = format!(
        r#"clients:
  sensor1:
    attributes: {{ type: sensor }}
    authentication: {{ passwordHash: "{hash}" }}
clientGroups:
  sensors: {{ query: "attributes.type = 'sensor'" }}
topicSpaces:
  own-status: {{ topicTemplates: [ "clients/$<client.authenticationName>/status" ] }}
permissionBindings:
  sensors-pub: {{ clientGroup: sensors, topicSpace: own-status, permission: publisher }}
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("write policy");

    // Plaintext without --dev: password identity mode.
    let mut child = bin()
        .arg("serve")
        .arg(&path)
        .args(["--mqtt", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let port = support::serve::listening_port(&mut child);
    let serve = support::serve::Killer::one(child);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert_eq!(
            connack(port, "sensor1", "correct horse").await,
            ConnectReturnCode::Success
        );
        assert_eq!(
            connack(port, "sensor1", "wrong horse").await,
            ConnectReturnCode::BadUserNamePassword
        );
        // The line end is not part of the password.
        assert_eq!(
            connack(port, "sensor1", "correct horse\n").await,
            ConnectReturnCode::BadUserNamePassword
        );
    });
    drop(serve);
}

#[test]
fn each_hash_has_its_own_salt() {
    assert_ne!(hash_of("same"), hash_of("same"));
}

#[test]
fn an_empty_password_is_refused() {
    let (code, out, err) = passwd("\n");
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn serve_help_shows_how_to_make_a_password_hash() {
    let out = bin()
        .args(["serve", "--help"])
        .output()
        .expect("serve --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("topicgate passwd"), "{help}");
    assert!(help.contains("passwordHash"), "{help}");
    assert!(help.contains("DSL"), "{help}");
}
