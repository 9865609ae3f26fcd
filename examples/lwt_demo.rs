//! The seed scenario, in one process: `cargo run --example lwt_demo`.
//!
//! Starts the broker on `policies/lwt.yaml` (dev mode, an ephemeral loopback port),
//! connects sensor1 and sensor2 with wills on their own status topics and
//! actuator1 (MQTT 5) and actuator2 (MQTT 3.1.1) subscribed to `clients/+/status`.
//! sensor2 disconnects gracefully (no will); sensor1 vanishes abruptly (both
//! actuators print its will); then sensor1 is refused, Not authorized, when its
//! will topic is sensor2's.

// Examples keep to the point: unwrap, expect and panic stand in for error handling (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, "");
    o
}

/// A CONNACK reason code in the MQTT 5 specification's words (§3.2.2.2).
fn reason(code: rumqttc::v5::mqttbytes::v5::ConnectReturnCode) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    let (words, value) = match code {
        C::NotAuthorized => ("Not authorized", 0x87),
        C::BadUserNamePassword => ("Bad User Name or Password", 0x86),
        C::ClientIdentifierNotValid => ("Client Identifier not valid", 0x85),
        C::ServerUnavailable => ("Server unavailable", 0x88),
        C::ServerBusy => ("Server busy", 0x89),
        C::Banned => ("Banned", 0x8A),
        other => return format!("{other:?}"),
    };
    format!("{words} (0x{value:02X})")
}

fn sensor(id: &str, port: u16, will_topic: &str) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let mut o = options(id, port);
    o.set_last_will(LastWill::new(
        will_topic,
        "offline",
        QoS::AtLeastOnce,
        false,
        None,
    ));
    AsyncClient::new(o, 10)
}

/// Polls until the CONNACK (or a refusal) arrives.
async fn connected(el: &mut rumqttc::v5::EventLoop) -> Result<(), ConnectionError> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = el.poll().await? {
            return Ok(());
        }
    }
}

async fn actuator_v5(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let (client, mut el) = AsyncClient::new(options("actuator1", port), 10);
    client
        .subscribe("clients/+/status", QoS::AtLeastOnce)
        .await?;
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                println!(
                    "actuator1 (MQTT 5)   got {} = {}",
                    String::from_utf8_lossy(&p.topic),
                    String::from_utf8_lossy(&p.payload)
                );
            }
        }
    });
    Ok(())
}

async fn actuator_v311(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let mut o = rumqttc::MqttOptions::new("actuator2", "127.0.0.1", port);
    o.set_credentials("actuator2", "");
    let (client, mut el) = rumqttc::AsyncClient::new(o, 10);
    client
        .subscribe("clients/+/status", rumqttc::QoS::AtLeastOnce)
        .await?;
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = el.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)) = ev {
                println!(
                    "actuator2 (MQTT 3.1.1) got {} = {}",
                    p.topic,
                    String::from_utf8_lossy(&p.payload)
                );
            }
        }
    });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/lwt.yaml");
    let loaded = topicgate::pipeline::load(&path).map_err(|e| format!("{e:?}"))?;
    let broker = Broker::new(
        Arc::new(loaded.policy),
        BrokerConfig::default(),
        IdentityMode::Dev { anonymous: None },
    );
    let (addr, _listener) = broker.listen("127.0.0.1:0".parse()?).await?;
    let port = addr.port();
    println!("broker on mqtt://{addr} serving {}", path.display());

    actuator_v5(port).await?;
    actuator_v311(port).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (s1, mut el1) = sensor("sensor1", port, "clients/sensor1/status");
    connected(&mut el1).await?;
    let (s2, mut el2) = sensor("sensor2", port, "clients/sensor2/status");
    connected(&mut el2).await?;
    println!("sensor1 and sensor2 connected, each with a will on its own status topic");
    s1.publish("clients/sensor1/status", QoS::AtLeastOnce, false, "online")
        .await?;
    s2.publish("clients/sensor2/status", QoS::AtLeastOnce, false, "online")
        .await?;
    let driver1 = tokio::spawn(async move { while el1.poll().await.is_ok() {} });
    let driver2 = tokio::spawn(async move {
        while let Ok(ev) = el2.poll().await {
            if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = ev {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("\nsensor2 disconnects gracefully: its will is discarded");
    s2.disconnect().await?;
    let _ = driver2.await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("\nsensor1 drops off the network (no DISCONNECT): its will is published");
    driver1.abort();
    drop(s1);
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("\nsensor1 tries to connect with sensor2's status topic as its will:");
    let (_s1b, mut el1b) = sensor("sensor1", port, "clients/sensor2/status");
    match connected(&mut el1b).await {
        Err(ConnectionError::ConnectionRefused(code)) => println!("  refused: {}", reason(code)),
        Err(e) => println!("  refused: {e}"),
        Ok(()) => println!("  unexpectedly accepted"),
    }
    broker.shutdown().await;
    Ok(())
}
