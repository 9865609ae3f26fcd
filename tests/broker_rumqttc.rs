//! Real clients: rumqttc (3.1.1 and 5) against the broker over loopback.

mod support;

use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as ConnectReturnCode5, LastWillProperties, Packet as Packet5,
    SubscribeReasonCode as SubCode5,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{Event, Incoming, LastWill, MqttOptions, QoS};
use std::time::Duration;
use support::*;
use tokio::sync::mpsc;

fn opts4(id: &str, user: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, "");
    o.set_keep_alive(Duration::from_secs(30));
    o
}

fn opts5(id: &str, user: &str, port: u16) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, "");
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A 3.1.1 subscriber: returns its (topic, payload) stream.
async fn v4_subscriber(
    port: u16,
    id: &str,
    user: &str,
    filter: &str,
) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (client, mut el) = rumqttc::AsyncClient::new(opts4(id, user, port), 16);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subbed_tx, mut subbed_rx) = mpsc::unbounded_channel();
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Incoming::SubAck(_)) => {
                    let _ = subbed_tx.send(());
                }
                Event::Incoming(Incoming::Publish(p)) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(T, subbed_rx.recv())
        .await
        .expect("suback in time");
    rx
}

#[tokio::test]
async fn rumqttc_v5_publisher_will_reaches_v4_subscriber_after_abrupt_close() {
    let b = lwt_broker().await;
    let port = b.addr.port();
    let mut rx = v4_subscriber(port, "act1", "actuator1", "clients/+/status").await;

    let mut o = opts5("sensor1", "sensor1", port);
    let props = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: Some("text/plain".into()),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("k".into(), "v".into())],
    };
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "clients/sensor1/status",
        "offline",
        QoS5::AtLeastOnce,
        false,
        Some(props),
    ));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 16);
    client
        .publish("clients/sensor1/status", QoS5::AtLeastOnce, false, "online")
        .await
        .expect("publish");
    let driver = tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                break;
            }
        }
    });
    let first = tokio::time::timeout(T, rx.recv())
        .await
        .expect("online")
        .expect("open");
    assert_eq!(
        first,
        ("clients/sensor1/status".to_string(), b"online".to_vec())
    );
    // Abrupt end: the event loop (and its socket) vanish without DISCONNECT.
    driver.abort();
    let _ = driver.await;
    drop(client);
    let will = tokio::time::timeout(T, rx.recv())
        .await
        .expect("will")
        .expect("open");
    assert_eq!(
        will,
        ("clients/sensor1/status".to_string(), b"offline".to_vec())
    );
}

#[tokio::test]
async fn rumqttc_v4_graceful_disconnect_discards_the_will() {
    let b = lwt_broker().await;
    let port = b.addr.port();
    let mut rx = v4_subscriber(port, "act1", "actuator1", "clients/+/status").await;
    let mut o = opts4("sensor2", "sensor2", port);
    o.set_last_will(LastWill::new(
        "clients/sensor2/status",
        "offline",
        QoS::AtLeastOnce,
        false,
    ));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 16);
    client
        .publish("clients/sensor2/status", QoS::AtLeastOnce, false, "online")
        .await
        .expect("publish");
    let mut acked = false;
    while let Ok(Ok(ev)) = tokio::time::timeout(T, el.poll()).await {
        match ev {
            Event::Incoming(Incoming::PubAck(_)) if !acked => {
                acked = true;
                client.disconnect().await.expect("disconnect");
            }
            Event::Outgoing(rumqttc::Outgoing::Disconnect) => break,
            _ => {}
        }
    }
    assert!(acked);
    let first = tokio::time::timeout(T, rx.recv())
        .await
        .expect("online")
        .expect("open");
    assert_eq!(first.1, b"online".to_vec());
    // Once the broker has ended sensor2's session, a marker is the next message:
    // no will came before it.
    b.gone("sensor2").await;
    let mut admin = Raw::open(b.addr, mqtt_protocol_core::mqtt::Version::V5_0).await;
    admin
        .send(support::packets::v5_connect("marker", Some("admin")).into())
        .await;
    admin.recv(T).await.expect("connack");
    admin.publish_marker("clients/marker/status").await;
    let next = tokio::time::timeout(T, rx.recv())
        .await
        .expect("the marker")
        .expect("open");
    assert_eq!(
        next,
        ("clients/marker/status".into(), MARKER.to_vec()),
        "no will expected"
    );
}

#[tokio::test]
async fn rumqttc_v5_is_refused_for_another_clients_will_topic() {
    let b = lwt_broker().await;
    let mut o = opts5("sensor1", "sensor1", b.addr.port());
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "clients/sensor2/status",
        "offline",
        QoS5::AtLeastOnce,
        false,
        None,
    ));
    let (_client, mut el) = rumqttc::v5::AsyncClient::new(o, 16);
    match tokio::time::timeout(T, el.poll()).await.expect("in time") {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode5::NotAuthorized)
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn rumqttc_v4_is_refused_for_another_clients_will_topic() {
    let b = lwt_broker().await;
    let mut o = opts4("sensor1", "sensor1", b.addr.port());
    o.set_last_will(LastWill::new(
        "clients/sensor2/status",
        "offline",
        QoS::AtLeastOnce,
        false,
    ));
    let (_client, mut el) = rumqttc::AsyncClient::new(o, 16);
    match tokio::time::timeout(T, el.poll()).await.expect("in time") {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn rumqttc_v5_subscribe_gets_per_filter_codes() {
    let b = lwt_broker().await;
    let (client, mut el) =
        rumqttc::v5::AsyncClient::new(opts5("act1", "actuator1", b.addr.port()), 16);
    client
        .subscribe("clients/#", QoS5::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("clients/+/status", QoS5::AtLeastOnce)
        .await
        .expect("subscribe");
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let ev = tokio::time::timeout(T, el.poll())
            .await
            .expect("in time")
            .expect("event");
        if let rumqttc::v5::Event::Incoming(Packet5::SubAck(s)) = ev {
            codes.extend(s.return_codes);
        }
    }
    assert_eq!(
        codes,
        vec![
            SubCode5::NotAuthorized,
            SubCode5::Success(QoS5::AtLeastOnce)
        ]
    );
}

#[tokio::test]
async fn rumqttc_v4_denied_publish_closes_the_connection() {
    let b = lwt_broker().await;
    let (client, mut el) =
        rumqttc::AsyncClient::new(opts4("sensor1", "sensor1", b.addr.port()), 16);
    client
        .publish("clients/sensor2/status", QoS::AtLeastOnce, false, "forged")
        .await
        .expect("queue");
    let mut closed = false;
    for _ in 0..10 {
        match tokio::time::timeout(T, el.poll()).await.expect("in time") {
            Err(_) => {
                closed = true;
                break;
            }
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                panic!("3.1.1 denial must not be acknowledged")
            }
            Ok(_) => {}
        }
    }
    assert!(closed);
}
