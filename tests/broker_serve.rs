//! `topicgate serve`: startup refusals, artifacts, config, graceful stop.

mod support;

use mqtt_protocol_core::mqtt::packet::Qos;
use mqtt_protocol_core::mqtt::Version;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::packets::*;
use support::serve::listening_port;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_topicgate");

fn policy(name: &str) -> String {
    format!("{}/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run_to_end(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), err);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("`topicgate {args:?}` did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `serve` and returns the child and the port it printed.
fn serve(args: &[&str]) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let port = listening_port(&mut child);
    (child, port)
}

fn wait_exit(child: &mut Child) -> i32 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("serve did not stop");
}

#[test]
fn dev_mode_refuses_non_loopback_binds() {
    let (code, err) = run_to_end(&["serve", "--dev", "--mqtt", "0.0.0.0:0", &policy("lwt.yaml")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn plaintext_without_passwords_or_dev_is_refused_with_an_explanation() {
    let (code, err) = run_to_end(&["serve", "--mqtt", "127.0.0.1:0", &policy("lwt.yaml")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("passwordHash") && err.contains("--dev"),
        "{err}"
    );
}

#[test]
fn anonymous_must_name_a_policy_client() {
    let (code, err) = run_to_end(&[
        "serve",
        "--dev",
        "--anonymous",
        "nobody",
        "--mqtt",
        "127.0.0.1:0",
        &policy("lwt.yaml"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn a_policy_with_errors_does_not_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "clients:\n  c1:\n    attributes: { type: x }\nbogus: 1\n",
    )
    .expect("write");
    let (code, err) = run_to_end(&[
        "serve",
        "--dev",
        "--mqtt",
        "127.0.0.1:0",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(!err.is_empty());
}

#[tokio::test]
async fn serves_an_artifact_with_a_config_and_stops_on_sigterm_with_0x8b() {
    let dir = tempfile::tempdir().expect("tmp");
    let artifact = dir.path().join("lwt.tgc");
    let (code, err) = run_to_end(&[
        "policy",
        "compile",
        &policy("lwt.yaml"),
        "-o",
        artifact.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let config = dir.path().join("broker.yaml");
    std::fs::write(&config, "maxConnections: 1\nconnectTimeout: 2\n").expect("write");
    let (mut child, port) = serve(&[
        "--dev",
        "--mqtt",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        artifact.to_str().unwrap(),
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut a = Raw::open(addr, Version::V5_0).await;
    a.send(v5_connect("a", Some("actuator1")).into()).await;
    assert_eq!(v5_connack(&a.recv(T).await.expect("connack")).0, 0);
    // maxConnections: 1 from the config file.
    let mut busy = Raw::open(addr, Version::V5_0).await;
    busy.send(v5_connect("b", Some("actuator2")).into()).await;
    assert_eq!(v5_connack(&busy.recv(T).await.expect("connack")).0, 0x89);
    // SIGTERM: graceful stop, MQTT 5 clients get DISCONNECT 0x8B.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let seen = a.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8B]
    );
    assert_eq!(wait_exit(&mut child), 0);
}

/// Issue 11 item 7: SIGHUP's default action killed the broker and dropped every
/// client. Now it reloads the policy (issue 15): with the file unchanged, every
/// client keeps being served as before.
#[tokio::test]
async fn sighup_reloads_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--mqtt",
            "127.0.0.1:0",
            &policy("lwt.yaml"),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    let port = listening_port(&mut child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut sub = Raw::open(addr, Version::V5_0).await;
    sub.send(v5_connect("sub", Some("actuator1")).into()).await;
    assert_eq!(v5_connack(&sub.recv(T).await.expect("connack")).0, 0);
    sub.send(v5_sub(1, &[("clients/+/status", Qos::AtLeastOnce)]).into())
        .await;
    sub.recv(T).await.expect("suback");

    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());

    // The connected client is still served, and new clients are accepted.
    let mut publisher = Raw::open(addr, Version::V5_0).await;
    publisher
        .send(v5_connect("pub", Some("sensor1")).into())
        .await;
    assert_eq!(v5_connack(&publisher.recv(T).await.expect("connack")).0, 0);
    publisher
        .send(v5_pub("clients/sensor1/status", b"up", Qos::AtMostOnce, None).into())
        .await;
    let got = sub.recv(T).await.expect("the subscriber is still served");
    assert_eq!(publish_parts(&got).1, b"up");
    assert!(child.try_wait().expect("wait").is_none(), "serve exited");
    // The reload runs beside the serving: wait for it (bounded) before stopping.
    eventually(|| std::fs::read_to_string(&log).is_ok_and(|l| l.contains("policy reloaded"))).await;

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(wait_exit(&mut child), 0);
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("SIGHUP"), "{logged}");
    assert!(logged.contains("policy reloaded"), "{logged}");
}
