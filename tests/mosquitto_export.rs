//! `topicgate policy export --to mosquitto`, checked against a real Mosquitto: the
//! exported ACL allows what the policy allows and denies what it denies on the
//! publish side, and Mosquitto's documented differences (README.md) hold.
//!
//! Needs the mosquitto broker; `harness = false` so that the summary shows these
//! tests as ignored when it is missing (see `support::peers`).

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rumqttc::mqttbytes::v4::{LastWill, Packet, Publish};
use rumqttc::mqttbytes::QoS;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::mosquitto::{self, Mosquitto};
use support::peers::{Interop, Peer};
use topicgate::bench::client::{Conn, ConnectSpec};

const POLICY: &str = r#"
namespace: export-test
clients:
  sensor1: { attributes: { type: sensor, floor: 3 } }
  sensor2: { attributes: { type: sensor, floor: 4 } }
  actuator1: { attributes: { type: actuator } }
  retired: { attributes: { type: sensor, floor: 3 }, state: Disabled }
clientGroups:
  sensors: { query: "attributes.type = 'sensor'" }
  actuators: { query: "attributes.type = 'actuator'" }
topicSpaces:
  own-status: { topicTemplates: [ "clients/$<client.authenticationName>/status", "floors/$<client.attributes.floor>/temp" ] }
  all-status: { topicTemplates: [ "clients/+/status", "floors/+/temp" ] }
permissionBindings:
  sensors-pub: { clientGroup: sensors, topicSpace: own-status, permission: publisher }
  actuators-sub: { clientGroup: actuators, topicSpace: all-status, permission: subscriber }
"#;

fn spec(user: &str, id: &str) -> ConnectSpec {
    ConnectSpec {
        client_id: id.into(),
        username: Some(user.into()),
        password: None,
        keep_alive_secs: 30,
        will: None,
        persistent: false,
    }
}

async fn publish(addr: SocketAddr, user: &str, topic: &str, payload: &str) {
    let mut c = Conn::connect(addr, &spec(user, &format!("{user}-pub")))
        .await
        .expect("connect publisher");
    let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.as_bytes().to_vec());
    p.pkid = 1;
    c.send(&Packet::Publish(p)).await.expect("publish");
    // Mosquitto acknowledges a denied QoS 1 PUBLISH from an MQTT 3.1.1 client too.
    let ack = tokio::time::timeout(Duration::from_secs(5), c.read_packet())
        .await
        .expect("PUBACK in time")
        .expect("read");
    assert!(matches!(ack, Some(Packet::PubAck(_))), "{ack:?}");
    c.disconnect().await;
}

/// Everything the subscriber receives until `marker` arrives (or 5 s pass).
async fn received_until(sub: &mut Conn, marker: &str) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(Some(p))) = tokio::time::timeout_at(until, sub.read_packet()).await {
        if let Packet::Publish(p) = p {
            let payload = String::from_utf8_lossy(&p.payload).to_string();
            let done = payload == marker;
            got.push((p.topic, payload));
            if done {
                break;
            }
        }
    }
    got
}

fn export(dir: &Path) -> std::path::PathBuf {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let out = dir.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(["policy", "export", "--to", "mosquitto"])
        .arg(&policy)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run topicgate");
    assert!(status.success());
    for f in ["acl", "mosquitto.conf", "README.md"] {
        assert!(out.join(f).is_file(), "{f} was not written");
    }
    out
}

fn main() -> std::process::ExitCode {
    support::peers::main(&[
        Interop {
            name: "exported_acl_enforces_the_publish_side_in_mosquitto",
            needs: &[Peer::Mosquitto],
            run: || block_on(exported_acl_enforces_the_publish_side_in_mosquitto()),
        },
        Interop {
            name: "documented_differences_hold",
            needs: &[Peer::Mosquitto],
            run: || block_on(documented_differences_hold()),
        },
    ])
}

fn block_on(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(test)
}

async fn exported_acl_enforces_the_publish_side_in_mosquitto() {
    let bin = mosquitto::binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = export(dir.path());
    let acl = out.join("acl");
    // Usernames without passwords, as topicgate's --dev mode: identity is the username.
    let broker = Mosquitto::start(
        &bin,
        dir.path(),
        &format!("allow_anonymous true\nacl_file {}", acl.display()),
    );
    let addr = broker.addr;

    let mut sub = Conn::connect(addr, &spec("actuator1", "act1"))
        .await
        .expect("connect actuator");
    sub.subscribe("clients/+/status", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    sub.subscribe("floors/+/temp", QoS::AtLeastOnce)
        .await
        .expect("subscribe");

    publish(addr, "sensor1", "clients/sensor1/status", "own status").await;
    publish(addr, "sensor1", "floors/3/temp", "own floor").await;
    // Denied: another client's status topic, another floor, a disabled client, an unknown user.
    publish(addr, "sensor2", "clients/sensor1/status", "forged status").await;
    publish(addr, "sensor1", "floors/4/temp", "wrong floor").await;
    publish(addr, "retired", "clients/retired/status", "disabled client").await;
    publish(addr, "stranger", "clients/stranger/status", "unknown user").await;
    publish(addr, "sensor2", "clients/sensor2/status", "marker").await;

    let got = received_until(&mut sub, "marker").await;
    let payloads: Vec<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(payloads, ["own status", "own floor", "marker"], "{got:?}");
}

async fn documented_differences_hold() {
    let bin = mosquitto::binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = export(dir.path());
    let readme = std::fs::read_to_string(out.join("README.md")).expect("README");
    assert!(readme.contains("SUBSCRIBE is never refused"));
    assert!(readme.contains("Wills at CONNECT"));
    let broker = Mosquitto::start(
        &bin,
        dir.path(),
        &format!(
            "allow_anonymous true\nacl_file {}",
            out.join("acl").display()
        ),
    );
    let addr = broker.addr;

    // 1. A SUBSCRIBE topicgate would refuse (`clients/#` is not a subset of `clients/+/status`)
    //    is granted, and the ACL filters what is delivered instead.
    let mut sub = Conn::connect(addr, &spec("actuator1", "act1"))
        .await
        .expect("connect actuator");
    sub.subscribe("clients/#", QoS::AtLeastOnce)
        .await
        .expect("Mosquitto grants every filter");

    // 2. A will whose topic the client may not publish is accepted at CONNECT, and
    //    dropped when it would be published; an allowed will is delivered.
    let will = |topic: &str, payload: &str| {
        Some(LastWill {
            topic: topic.into(),
            message: payload.as_bytes().to_vec().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        })
    };
    let forged = ConnectSpec {
        will: will("clients/sensor2/status", "forged will"),
        ..spec("sensor1", "s1-forged")
    };
    let c = Conn::connect(addr, &forged)
        .await
        .expect("Mosquitto accepts a CONNECT with a will it will not publish");
    drop(c);
    let own = ConnectSpec {
        will: will("clients/sensor1/status", "own will"),
        ..spec("sensor1", "s1-own")
    };
    let c = Conn::connect(addr, &own)
        .await
        .expect("connect with own will");
    drop(c);
    let got = received_until(&mut sub, "own will").await;
    let payloads: Vec<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(payloads, ["own will"], "{got:?}");
}
