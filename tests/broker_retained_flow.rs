//! Every retained message matching a subscription is delivered, paced by the
//! client's Receive Maximum and the broker's inflight window (MQTT 5 §3.3.1.3,
//! §3.8.4), however many there are: none is lost to the bounded queues
//! (issue 11, item 4). Real clients (rumqttc) and raw packets over loopback.

mod support;

use mqtt_protocol_core::mqtt::packet::{v5_0, Packet, Qos, ReceiveMaximum, SessionExpiryInterval};
use mqtt_protocol_core::mqtt::Version;
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{Event, Incoming, MqttOptions, QoS};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

const RETAINED: usize = 5_000;

/// Retains `n` QoS 1 messages on `r/00000` .. with rumqttc (3.1.1), waiting for
/// every PUBACK, so that they are all in the store before anyone subscribes.
async fn retain_many(addr: SocketAddr, n: usize) {
    let mut o = MqttOptions::new("retainer", "127.0.0.1", addr.port());
    o.set_credentials("admin", "");
    o.set_keep_alive(Duration::from_secs(30));
    // Within any broker's inflight window used here.
    o.set_inflight(10);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            client
                .publish(format!("r/{i:05}"), QoS::AtLeastOnce, true, i.to_string())
                .await
                .expect("queue publish");
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        match tokio::time::timeout(T, el.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("publisher stopped after {acked} PUBACKs: {other:?}"),
        }
    }
    let client = publisher.await.expect("publisher task");
    client.disconnect().await.expect("disconnect");
}

#[tokio::test]
async fn a_v5_subscriber_with_receive_maximum_10_gets_all_5000_retained_messages() {
    let b = start(policy::lwt(), BrokerConfig::default()).await;
    retain_many(b.addr, RETAINED).await;

    let mut o = rumqttc::v5::MqttOptions::new("sub5", "127.0.0.1", b.addr.port());
    o.set_credentials("admin2", "");
    o.set_keep_alive(Duration::from_secs(30));
    o.set_receive_maximum(Some(10));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 16);
    client
        .subscribe("r/#", QoS5::AtLeastOnce)
        .await
        .expect("subscribe");
    let mut topics = BTreeSet::new();
    // Each message must come within T of the previous one; the loop is bounded.
    for _ in 0..RETAINED * 3 {
        if topics.len() == RETAINED {
            break;
        }
        match tokio::time::timeout(T, el.poll()).await {
            Ok(Ok(rumqttc::v5::Event::Incoming(Packet5::Publish(p)))) => {
                assert!(p.retain, "a retained message carries the retain flag");
                assert_eq!(p.qos, QoS5::AtLeastOnce);
                topics.insert(String::from_utf8_lossy(&p.topic).to_string());
            }
            Ok(Ok(_)) => {}
            other => panic!("stopped after {} messages: {other:?}", topics.len()),
        }
    }
    assert_eq!(topics.len(), RETAINED);
    assert_eq!(b.broker.shared().stats.messages_dropped(), 0);
}

#[tokio::test]
async fn a_v311_subscriber_gets_all_5000_retained_messages() {
    let b = start(policy::lwt(), BrokerConfig::default()).await;
    retain_many(b.addr, RETAINED).await;

    let mut o = MqttOptions::new("sub4", "127.0.0.1", b.addr.port());
    o.set_credentials("admin2", "");
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 16);
    client
        .subscribe("r/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let mut topics = BTreeSet::new();
    for _ in 0..RETAINED * 3 {
        if topics.len() == RETAINED {
            break;
        }
        match tokio::time::timeout(T, el.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                assert!(p.retain);
                topics.insert(p.topic.clone());
            }
            Ok(Ok(_)) => {}
            other => panic!("stopped after {} messages: {other:?}", topics.len()),
        }
    }
    assert_eq!(topics.len(), RETAINED);
    assert_eq!(b.broker.shared().stats.messages_dropped(), 0);
}

fn v5_connect_rm(id: &str, resume: bool) -> v5_0::Connect {
    v5_connect_with(
        id,
        Some("admin2"),
        None,
        Opts {
            resume,
            props: vec![
                ReceiveMaximum::new(10).unwrap().into(),
                SessionExpiryInterval::new(600).unwrap().into(),
            ],
            ..Default::default()
        },
    )
}

/// The PUBLISHes that arrive until the broker has nothing more to send. On the
/// paused clock a read times out only when no task can run and no I/O is ready,
/// so this is exact, not a quiet period.
async fn publishes_until_idle(raw: &mut Raw) -> Vec<(u16, String)> {
    support::wait::paused();
    let mut got = Vec::new();
    for _ in 0..10_000 {
        match raw.recv(Duration::from_millis(1)).await {
            Ok(Packet::V5_0Publish(p)) => {
                got.push((p.packet_id().unwrap_or(0), p.topic_name().to_string()))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

#[tokio::test(start_paused = true)]
async fn retained_messages_wait_for_the_clients_receive_maximum() {
    let b = start(policy::lwt(), BrokerConfig::default()).await;
    retain_many(b.addr, 50).await;

    // A client that acknowledges nothing: exactly its Receive Maximum arrives.
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.mqtt.set_auto_pub_response(false);
    raw.send(v5_connect_rm("slow", false).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw.send(v5_sub(1, &[("r/#", Qos::AtLeastOnce)]).into())
        .await;
    let first = publishes_until_idle(&mut raw).await;
    assert_eq!(first.len(), 10, "{first:?}");
    // Acknowledging five lets exactly five more through, the next in topic order.
    for (id, _) in &first[..5] {
        raw.send(
            v5_0::Puback::builder()
                .packet_id(*id)
                .build()
                .unwrap()
                .into(),
        )
        .await;
    }
    let second = publishes_until_idle(&mut raw).await;
    let topics: Vec<&str> = second.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        topics,
        ["r/00010", "r/00011", "r/00012", "r/00013", "r/00014"]
    );
}

#[tokio::test(start_paused = true)]
async fn retained_messages_still_owed_are_sent_after_the_session_resumes() {
    // An inflight window and a queue far smaller than the retained set.
    let cfg = BrokerConfig {
        receive_maximum: 10,
        max_queued_messages: 20,
        ..Default::default()
    };
    let b = start(policy::lwt(), cfg).await;
    const N: usize = 300;
    retain_many(b.addr, N).await;

    let persistent = |id| {
        v3_connect_with(
            id,
            Some("admin2"),
            None,
            Opts {
                resume: true,
                ..Default::default()
            },
        )
    };
    let mut raw = Raw::open(b.addr, Version::V3_1_1).await;
    raw.mqtt.set_auto_pub_response(false);
    raw.send(persistent("owed").into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    raw.send(v3_sub(1, &[("r/#", Qos::AtLeastOnce)]).into())
        .await;
    let mut first = 0;
    for _ in 0..100 {
        match raw.recv(Duration::from_millis(1)).await {
            // until idle (paused clock)
            Ok(Packet::V3_1_1Publish(_)) => first += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(first, 10, "the inflight window");
    drop(raw);
    b.offline("owed").await;

    // Resumed (and now acknowledging): the unacknowledged ten come again, then the rest.
    let mut seen = BTreeSet::new();
    let mut raw = Raw::open(b.addr, Version::V3_1_1).await;
    raw.send(persistent("owed").into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    for _ in 0..N * 3 {
        if seen.len() == N {
            break;
        }
        match raw.recv(T).await {
            Ok(p @ Packet::V3_1_1Publish(_)) => {
                seen.insert(publish_parts(&p).0);
            }
            Ok(_) => {}
            Err(e) => panic!("stopped after {} of {N}: {e:?}", seen.len()),
        }
    }
    assert_eq!(seen.len(), N);
}

#[tokio::test]
async fn a_new_subscribe_to_the_same_filter_sends_the_retained_messages_again() {
    let b = start(policy::lwt(), BrokerConfig::default()).await;
    retain_many(b.addr, 30).await;
    let mut raw = Raw::open(b.addr, Version::V3_1_1).await;
    raw.send(v3_connect("again", Some("admin2"), None).into())
        .await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    for pid in 1..=2 {
        raw.send(v3_sub(pid, &[("r/+", Qos::AtLeastOnce)]).into())
            .await;
        let mut topics = BTreeSet::new();
        for _ in 0..100 {
            if topics.len() == 30 {
                break;
            }
            let p = raw.recv(T).await.expect("packet");
            if matches!(p, Packet::V3_1_1Publish(_)) {
                let (t, _, _, retain) = publish_parts(&p);
                assert!(retain);
                topics.insert(t);
            }
        }
        assert_eq!(topics.len(), 30, "SUBSCRIBE {pid}");
    }
}

#[tokio::test(start_paused = true)]
async fn unsubscribing_forgets_the_retained_messages_still_owed() {
    let b = start(policy::lwt(), BrokerConfig::default()).await;
    retain_many(b.addr, 50).await;
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.mqtt.set_auto_pub_response(false);
    raw.send(v5_connect_rm("quits", false).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw.send(v5_sub(1, &[("r/#", Qos::AtLeastOnce)]).into())
        .await;
    let first = publishes_until_idle(&mut raw).await;
    assert_eq!(first.len(), 10);
    raw.send(
        v5_0::Unsubscribe::builder()
            .packet_id(2)
            .entries(vec!["r/#"])
            .unwrap()
            .build()
            .unwrap()
            .into(),
    )
    .await;
    for (id, _) in &first {
        raw.send(
            v5_0::Puback::builder()
                .packet_id(*id)
                .build()
                .unwrap()
                .into(),
        )
        .await;
    }
    // Nothing owed is sent any more: a marker on another filter comes first.
    raw.send(v5_sub(3, &[("m/#", Qos::AtLeastOnce)]).into())
        .await;
    raw.suback().await; // past the UNSUBACK
    raw.expect_own_marker_first("m/1").await;
}
