//! A connection whose client goes quiet drops its codec state and rebuilds it
//! when the next packet comes (decision 0032). These tests hold a client idle
//! past the rest on the paused clock, with state open that a rebuild must not
//! lose: topic aliases, a QoS 2 handshake, an unacknowledged QoS 1 delivery.

// Tests fail by panicking on what they did not expect (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0, Packet, Qos, TopicAlias};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;

/// Holds the clients idle longer than the broker's rest needs (two checks five
/// seconds apart), in steps so that each check runs: the codec of every idle
/// connection here would rest if nothing held it.
async fn idle() {
    for _ in 0..6 {
        tokio::time::advance(Duration::from_secs(6)).await;
    }
}

async fn v5_client(addr: SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect(id, Some(user)).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

async fn v3_client(addr: SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    raw.send(v3_connect(id, Some(user), None).into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    raw
}

/// The next PUBLISH's topic and payload, past acknowledgements.
async fn next_publish(raw: &mut Raw) -> (String, Vec<u8>) {
    loop {
        let p = raw.recv(T).await.expect("a PUBLISH");
        if matches!(p, Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_)) {
            let (topic, payload, _, _) = publish_parts(&p);
            return (topic, payload);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_topic_alias_the_client_mapped_still_resolves_after_it_was_idle() {
    let b = lwt_broker().await;
    let mut s = v5_client(b.addr, "alias-sub", "admin2").await;
    s.send(v5_sub(1, &[("al/#", Qos::AtMostOnce)]).into()).await;
    s.suback().await;
    let mut p = v5_client(b.addr, "alias-pub", "admin").await;
    let publish = |topic: &str, id: u16, payload: &[u8]| -> Packet {
        v5_0::Publish::builder()
            .topic_name(topic)
            .unwrap()
            .qos(Qos::AtLeastOnce)
            .packet_id(id)
            .props(vec![TopicAlias::new(1).unwrap().into()])
            .payload(payload.to_vec())
            .build()
            .unwrap()
            .into()
    };
    p.send(publish("al/x", 1, b"1")).await;
    assert!(matches!(
        p.recv(T).await.expect("PUBACK"),
        Packet::V5_0Puback(_)
    ));
    assert_eq!(next_publish(&mut s).await, ("al/x".into(), b"1".to_vec()));
    idle().await;
    // The alias alone: the broker must still know what it stands for.
    p.send(publish("", 2, b"2")).await;
    assert!(matches!(
        p.recv(T).await.expect("PUBACK"),
        Packet::V5_0Puback(_)
    ));
    assert_eq!(next_publish(&mut s).await, ("al/x".into(), b"2".to_vec()));
}

#[tokio::test(start_paused = true)]
async fn a_qos2_publish_open_while_idle_is_not_delivered_twice() {
    let b = lwt_broker().await;
    let mut s = v3_client(b.addr, "q2-sub", "admin2").await;
    s.send(v3_sub(1, &[("q2/#", Qos::AtMostOnce)]).into()).await;
    s.suback().await;
    let mut p = v3_client(b.addr, "q2-pub", "admin").await;
    // The PUBREL is the test's to send.
    p.mqtt.set_auto_pub_response(false);
    let publish = |dup: bool| {
        v3_1_1::Publish::builder()
            .topic_name("q2/a")
            .unwrap()
            .qos(Qos::ExactlyOnce)
            .packet_id(7)
            .dup(dup)
            .payload(b"once".to_vec())
            .build()
            .unwrap()
    };
    p.send(publish(false).into()).await;
    assert!(matches!(
        p.recv(T).await.expect("PUBREC"),
        Packet::V3_1_1Pubrec(_)
    ));
    assert_eq!(
        next_publish(&mut s).await,
        ("q2/a".into(), b"once".to_vec())
    );
    idle().await;
    // The PUBREC was lost (as far as the client knows): it sends the PUBLISH
    // again, which the broker must recognise as the one it already has, and
    // then releases it.
    p.send_raw(&publish(true).to_continuous_buffer()).await;
    let rel = v3_1_1::Pubrel::builder().packet_id(7).build().unwrap();
    p.send_raw(&rel.to_continuous_buffer()).await;
    // No second copy reaches the subscriber before the marker.
    s.expect_marker_first(&mut p, "q2/marker").await;
}

#[tokio::test(start_paused = true)]
async fn a_qos1_delivery_acknowledged_after_an_idle_spell_completes() {
    let b = lwt_broker().await;
    let mut s = v3_client(b.addr, "q1-sub", "admin2").await;
    s.mqtt.set_auto_pub_response(false);
    s.send(v3_sub(1, &[("q1/#", Qos::AtLeastOnce)]).into())
        .await;
    s.suback().await;
    let mut p = v3_client(b.addr, "q1-pub", "admin").await;
    p.send(v3_pub("q1/a", b"held", Qos::AtLeastOnce, Some(1)).into())
        .await;
    let id = match s.recv(T).await.expect("PUBLISH") {
        Packet::V3_1_1Publish(d) => d.packet_id().expect("a QoS 1 packet id"),
        other => panic!("expected the PUBLISH, got {other:?}"),
    };
    idle().await;
    let ack = v3_1_1::Puback::builder().packet_id(id).build().unwrap();
    s.send_raw(&ack.to_continuous_buffer()).await;
    s.mqtt.set_auto_pub_response(true);
    // The connection stayed open and the acknowledged message is not sent again.
    s.expect_marker_first(&mut p, "q1/marker").await;
}
