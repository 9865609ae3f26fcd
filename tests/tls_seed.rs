//! The seed scenario end to end over TLS, through the command line as a user runs
//! it: `topicgate certs init policies/lwt.yaml`, the thumbprints pasted into the
//! policy, `topicgate serve --mqtts`, actuators subscribed, sensors connected with
//! wills (rumqttc with rustls, MQTT 3.1.1 and 5), one sensor killed: its will is
//! delivered to both actuators, and the sensor that disconnected normally sends none.

mod support;

use rumqttc::{Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::serve::{announced, port_of, Killer};
use support::tls::{install_provider, T};
use tokio::sync::mpsc;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
}

/// Runs `certs init` and returns each client's thumbprint from its output.
fn certs_init(policy: &Path, out: &Path) -> Vec<(String, String)> {
    let o = bin()
        .args(["certs", "init"])
        .arg(policy)
        .arg("--out")
        .arg(out)
        .output()
        .expect("certs init");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (print, name) = l.split_once("  ").expect("`THUMBPRINT  NAME`");
            (name.to_string(), print.to_string())
        })
        .collect()
}

/// The seed policy with each client's thumbprint pasted in, as the user would.
fn paste_thumbprints(seed: &str, prints: &[(String, String)]) -> String {
    let mut policy = seed.to_string();
    for (name, print) in prints {
        let at = format!("\n  {name}:\n");
        assert!(policy.contains(&at), "client {name} in the seed policy");
        policy = policy.replacen(
            &at,
            &format!("{at}    authentication: {{ validationScheme: ThumbprintMatch, allowedThumbprints: [ \"{print}\" ] }}\n"),
            1,
        );
    }
    policy
}

fn serve(policy: &Path, certs: &Path) -> (Killer, u16) {
    let mut child = bin()
        .arg("serve")
        .arg(policy)
        .args(["--mqtts", "127.0.0.1:0", "--cert"])
        .arg(certs.join("server.pem"))
        .arg("--key")
        .arg(certs.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let line = announced(&mut child, 1).0.remove(0);
    assert!(
        line.starts_with("listening on mqtts://127.0.0.1:"),
        "{line:?}"
    );
    (Killer::one(child), port_of(&line))
}

fn tls(certs: &Path, client: &str) -> Transport {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.join("ca.pem")).expect("ca"))
        .expect("root");
    let dir = certs.join("clients");
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(dir.join(format!("{client}.pem"))).expect("cert")],
            PrivateKeyDer::from_pem_file(dir.join(format!("{client}.key"))).expect("key"),
        )
        .expect("client auth");
    Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config)))
}

fn opts(certs: &Path, client: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client, "localhost", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_transport(tls(certs, client));
    o
}

/// An actuator (3.1.1) subscribed to `clients/+/status`; yields what it receives.
async fn actuator(
    certs: PathBuf,
    name: &str,
    port: u16,
) -> mpsc::UnboundedReceiver<(String, String)> {
    let (client, mut el) = rumqttc::AsyncClient::new(opts(&certs, name, port), 16);
    client
        .subscribe("clients/+/status", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, rx) = mpsc::unbounded_channel();
    let (acked_tx, mut acked) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(s))) => {
                    let _ = acked_tx.send(s.return_codes);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let _ = tx.send((
                        p.topic.clone(),
                        String::from_utf8_lossy(&p.payload).into_owned(),
                    ));
                }
                Ok(_) => {}
                Err(e) => panic!("actuator connection failed: {e}"),
            }
        }
    });
    let codes = tokio::time::timeout(T, acked.recv())
        .await
        .expect("suback in time")
        .expect("suback");
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    rx
}

/// A sensor (MQTT 5) with its will; publishes `online`. Aborting the returned
/// task drops the connection without DISCONNECT.
async fn sensor(
    certs: PathBuf,
    name: &str,
    port: u16,
) -> (rumqttc::v5::AsyncClient, tokio::task::JoinHandle<()>) {
    let mut o = rumqttc::v5::MqttOptions::new(name, "localhost", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_transport(tls(&certs, name));
    let topic = format!("clients/{name}/status");
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        &topic,
        "offline",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        None,
    ));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 16);
    let (up_tx, mut up) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(c))) => {
                    let _ = up_tx.send(c.code);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let code = tokio::time::timeout(T, up.recv())
        .await
        .expect("connack in time")
        .expect("connack");
    assert_eq!(code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success);
    client
        .publish(
            &topic,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "online",
        )
        .await
        .expect("publish");
    (client, task)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("message in time")
        .expect("message")
}

#[tokio::test]
async fn seed_scenario_over_tls_delivers_the_killed_sensors_will() {
    install_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/lwt.yaml");
    let certs = dir.path().join("certs");
    let prints = certs_init(&seed_path, &certs);
    assert_eq!(prints.len(), 4);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        paste_thumbprints(&std::fs::read_to_string(&seed_path).expect("seed"), &prints),
    )
    .expect("write policy");
    let (_server, port) = serve(&policy, &certs);

    let mut a1 = actuator(certs.clone(), "actuator1", port).await;
    let mut a2 = actuator(certs.clone(), "actuator2", port).await;
    let (_s1, s1_task) = sensor(certs.clone(), "sensor1", port).await;
    let (s2, s2_task) = sensor(certs.clone(), "sensor2", port).await;
    for rx in [&mut a1, &mut a2] {
        let mut got = vec![next(rx).await, next(rx).await];
        got.sort();
        assert_eq!(
            got,
            [
                ("clients/sensor1/status".into(), "online".into()),
                ("clients/sensor2/status".into(), "online".into())
            ]
        );
    }

    // sensor2 leaves normally: no will. sensor1 dies: its will reaches both actuators.
    s2.disconnect().await.expect("disconnect");
    tokio::time::timeout(T, s2_task)
        .await
        .expect("sensor2 ends")
        .ok();
    s1_task.abort();
    for rx in [&mut a1, &mut a2] {
        assert_eq!(
            next(rx).await,
            ("clients/sensor1/status".into(), "offline".into())
        );
    }
    // sensor2 comes back and says "online": the broker ended its first connection
    // (and would have published that will) before it accepted the second, so the
    // actuators' next message is that "online" (sensor2's will must not fire).
    let (_s2_again, _) = sensor(certs.clone(), "sensor2", port).await;
    for rx in [&mut a1, &mut a2] {
        assert_eq!(
            next(rx).await,
            ("clients/sensor2/status".into(), "online".into())
        );
    }
}
