//! Issue 11, item 1: a deep topic or filter must not abort the broker. Each test
//! drives a real broker over loopback sockets; the broker runs on tokio worker
//! threads (2 MiB stacks, as in `topicgate serve`), where walking levels by
//! recursion overflowed at a few thousand levels and aborted the whole process.
//!
//! With the default limits, deep topics are refused with their reason codes; with
//! the limits lifted to what MQTT allows, they are served, and the broker lives on.

mod support;

use mqtt_protocol_core::mqtt::packet::{v5_0, Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

/// `a/a/.../a` with `n` levels.
fn deep(n: usize) -> String {
    vec!["a"; n].join("/")
}

/// No limit below MQTT's own (65,535 bytes, so at most 32,768 levels).
fn lifted() -> BrokerConfig {
    BrokerConfig {
        max_topic_levels: 40_000,
        max_topic_length: 65_535,
        ..Default::default()
    }
}

async fn v5_admin(addr: SocketAddr, id: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect(id, Some("admin")).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

/// The SUBACK reason codes of a v5 SUBACK.
fn suback_codes(p: &Packet) -> Vec<u8> {
    match p {
        Packet::V5_0Suback(s) => s.reason_codes().iter().map(|c| *c as u8).collect(),
        other => panic!("expected v5 SUBACK, got {other:?}"),
    }
}

fn unsuback_codes(p: &Packet) -> Vec<u8> {
    match p {
        Packet::V5_0Unsuback(u) => u.reason_codes().iter().map(|c| *c as u8).collect(),
        other => panic!("expected v5 UNSUBACK, got {other:?}"),
    }
}

fn v5_unsub(pid: u16, filter: &str) -> v5_0::Unsubscribe {
    v5_0::Unsubscribe::builder()
        .packet_id(pid)
        .entries(vec![filter])
        .unwrap()
        .build()
        .unwrap()
}

/// A fresh client connects, subscribes, publishes and receives its own message.
async fn healthy_client_is_served(addr: SocketAddr) {
    let mut c = v5_admin(addr, "healthy").await;
    c.send(v5_sub(1, &[("health/check", Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&c.recv(T).await.expect("suback")), [1]);
    c.send(v5_pub("health/check", b"ok", Qos::AtMostOnce, None).into())
        .await;
    let p = c.recv(T).await.expect("own message");
    assert_eq!(publish_parts(&p).0, "health/check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_filter_subscribe_unsubscribe_and_disconnect() {
    let b = start(support::policy::lwt(), lifted()).await;
    let filter = format!("telemetry/f1/{}/#", deep(6_000));
    let mut c = v5_admin(b.addr, "deep-sub").await;
    c.send(v5_sub(1, &[(&filter, Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&c.recv(T).await.expect("suback")), [1]);
    c.send(v5_unsub(2, &filter).into()).await;
    assert_eq!(unsuback_codes(&c.recv(T).await.expect("unsuback")), [0]);
    // Again, then leave without unsubscribing: session clean-up removes it.
    c.send(v5_sub(3, &[(&filter, Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&c.recv(T).await.expect("suback")), [1]);
    c.send(v5_0::Disconnect::builder().build().unwrap().into())
        .await;
    assert!(c.until_closed(T).await.is_ok());
    // And the same with the socket simply dropped.
    let mut d = v5_admin(b.addr, "deep-drop").await;
    d.send(v5_sub(1, &[(&filter, Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&d.recv(T).await.expect("suback")), [1]);
    drop(d);
    // Taking the client ID over with Clean Start discards the old session (once
    // its connection has gone), which removes its deep subscription.
    let mut again = v5_admin(b.addr, "deep-drop").await;
    again
        .send(v5_0::Disconnect::builder().build().unwrap().into())
        .await;
    assert!(again.until_closed(T).await.is_ok());
    healthy_client_is_served(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_subscribe_and_matching_publish() {
    let b = start(support::policy::lwt(), lifted()).await;
    let topic = deep(13_000);
    let mut sub = v5_admin(b.addr, "deep-sub").await;
    sub.send(v5_sub(1, &[(&topic, Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&sub.recv(T).await.expect("suback")), [1]);
    let mut publisher = v5_admin(b.addr, "deep-pub").await;
    publisher
        .send(v5_pub(&topic, b"deep", Qos::AtMostOnce, None).into())
        .await;
    let p = sub.recv(T).await.expect("deep message");
    assert_eq!(publish_parts(&p).0, topic);
    drop(sub);
    drop(publisher);
    healthy_client_is_served(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_on_a_deep_topic_fires_and_the_broker_lives() {
    let b = start(support::policy::lwt(), lifted()).await;
    let topic = deep(13_000);
    let mut sub = v5_admin(b.addr, "deep-sub").await;
    sub.send(v5_sub(1, &[(&topic, Qos::AtLeastOnce)]).into())
        .await;
    assert_eq!(suback_codes(&sub.recv(T).await.expect("suback")), [1]);
    let mut testator = Raw::open(b.addr, Version::V5_0).await;
    let will = Some((topic.as_str(), &b"gone"[..], Qos::AtLeastOnce, false, 0));
    testator
        .send(v5_connect_with("deep-will", Some("admin"), will, Opts::default()).into())
        .await;
    assert_eq!(v5_connack(&testator.recv(T).await.expect("connack")).0, 0);
    drop(testator);
    let p = sub.recv(T).await.expect("the will");
    assert_eq!(
        publish_parts(&p),
        (topic, b"gone".to_vec(), Qos::AtLeastOnce, false)
    );
    healthy_client_is_served(b.addr).await;
}

/// The default limits refuse deep topics, each with its reason code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_refuse_deep_topics_with_reason_codes() {
    let b = start(support::policy::lwt(), BrokerConfig::default()).await;
    let limits = BrokerConfig::default();
    let too_deep = deep(limits.max_topic_levels + 1);
    let at_limit = deep(limits.max_topic_levels);
    let too_long = "a".repeat(limits.max_topic_length + 1);

    // SUBSCRIBE: 0x8F per filter (MQTT 5), 0x80 (3.1.1); a filter at the limit is granted.
    let mut c = v5_admin(b.addr, "limits5").await;
    c.send(
        v5_sub(
            1,
            &[
                (&too_deep, Qos::AtMostOnce),
                (&too_long, Qos::AtMostOnce),
                (&at_limit, Qos::AtMostOnce),
                (&format!("$share/g/{too_deep}"), Qos::AtMostOnce),
            ],
        )
        .into(),
    )
    .await;
    assert_eq!(
        suback_codes(&c.recv(T).await.expect("suback")),
        [0x8F, 0x8F, 0, 0x8F]
    );
    // UNSUBSCRIBE: 0x8F.
    c.send(v5_unsub(2, &too_deep).into()).await;
    assert_eq!(unsuback_codes(&c.recv(T).await.expect("unsuback")), [0x8F]);
    // PUBLISH: DISCONNECT 0x90 Topic Name invalid.
    c.send(v5_pub(&too_deep, b"x", Qos::AtLeastOnce, Some(3)).into())
        .await;
    let seen = c.until_closed(T).await.expect("closed");
    assert_eq!(seen.last().map(disconnect_code), Some(0x90), "{seen:?}");

    let mut c3 = Raw::open(b.addr, Version::V3_1_1).await;
    c3.send(v3_connect("limits3", Some("admin"), None).into())
        .await;
    assert_eq!(v3_connack(&c3.recv(T).await.expect("connack")), 0);
    c3.send(v3_sub(1, &[(&too_long, Qos::AtMostOnce)]).into())
        .await;
    match c3.recv(T).await.expect("suback") {
        Packet::V3_1_1Suback(s) => {
            let codes: Vec<u8> = s.return_codes().iter().map(|c| *c as u8).collect();
            assert_eq!(codes, [0x80]);
        }
        other => panic!("expected 3.1.1 SUBACK, got {other:?}"),
    }
    // 3.1.1 PUBLISH: no code to say it with, the connection is closed.
    c3.send(v3_pub(&too_deep, b"x", Qos::AtMostOnce, None).into())
        .await;
    assert!(c3.until_closed(T).await.is_ok());

    // Will: CONNACK 0x90 with the limit named (MQTT 5); closed without CONNACK (3.1.1).
    let mut w = Raw::open(b.addr, Version::V5_0).await;
    let will = Some((too_deep.as_str(), &b"x"[..], Qos::AtMostOnce, false, 0));
    w.send(v5_connect_with("will5", Some("admin"), will, Opts::default()).into())
        .await;
    let (code, reason) = v5_connack(&w.recv(T).await.expect("connack"));
    assert_eq!(code, 0x90);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("maxTopicLevels")),
        "{reason:?}"
    );
    let mut w3 = Raw::open(b.addr, Version::V3_1_1).await;
    let will3 = Some((too_long.as_str(), &b"x"[..], Qos::AtMostOnce, false));
    w3.send(v3_connect("will3", Some("admin"), will3).into())
        .await;
    let seen = w3.until_closed(T).await.expect("closed");
    assert!(seen.is_empty(), "{seen:?}");

    healthy_client_is_served(b.addr).await;
}
