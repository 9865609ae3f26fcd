//! MQTT 3.1.1 QoS 1 without the codec (decision 0035): the broker gives out
//! the packet identifiers of its PUBLISHes to a 3.1.1 client itself and takes
//! their PUBACKs out of the byte stream. Over real sockets, with a raw client
//! that acknowledges only when told: delivery, identifiers reused after the
//! PUBACK, the inflight window, unknown and duplicate PUBACKs, QoS 1 beside
//! QoS 2 on one connection, and a resumed session's resends.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

/// A broker whose inflight window is `window` PUBLISHes.
async fn broker(window: u16) -> TestBroker {
    let config = BrokerConfig {
        receive_maximum: window,
        ..BrokerConfig::default()
    };
    start(policy::lwt(), config).await
}

/// A 3.1.1 client `id` of `admin` or `admin2` (publish and subscribe
/// anything), acknowledging nothing by itself; `resume`: clean session 0.
async fn v3_client(addr: SocketAddr, id: &str, user: &str, resume: bool) -> (Raw, bool) {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    raw.mqtt.set_auto_pub_response(false);
    let o = Opts {
        resume,
        ..Opts::default()
    };
    raw.send(v3_connect_with(id, Some(user), None, o).into())
        .await;
    match raw.recv(T).await.expect("connack") {
        Packet::V3_1_1Connack(c) => {
            assert_eq!(v3_connack(&Packet::V3_1_1Connack(c.clone())), 0);
            (raw, c.session_present())
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn subscribed(addr: SocketAddr, id: &str, filters: &[(&str, Qos)], resume: bool) -> Raw {
    let (mut sub, _) = v3_client(addr, id, "admin2", resume).await;
    sub.send(v3_sub(1, filters).into()).await;
    sub.suback().await;
    sub
}

/// A PUBLISH to the subscriber: (topic, packet identifier, QoS, DUP).
#[derive(Debug, PartialEq, Eq)]
struct Got {
    topic: String,
    id: u16,
    qos: Qos,
    dup: bool,
}

async fn next_publish(sub: &mut Raw) -> Got {
    match sub.recv(T).await.expect("PUBLISH") {
        Packet::V3_1_1Publish(p) => Got {
            topic: p.topic_name().to_string(),
            id: p.packet_id().unwrap_or(0),
            qos: p.qos(),
            dup: p.dup(),
        },
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn got(topic: &str, id: u16, qos: Qos, dup: bool) -> Got {
    Got {
        topic: topic.into(),
        id,
        qos,
        dup,
    }
}

fn puback(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [0x40, 0x02, hi, lo]
}

/// Publishes `topics` at QoS `qos` (identifiers from `first`), one at a time
/// (our Receive Maximum holds for the publisher too), each acknowledged: the
/// broker has routed them all. The publisher answers PUBREC itself.
async fn publish(publisher: &mut Raw, topics: &[&str], qos: Qos, first: u16) {
    publisher.mqtt.set_auto_pub_response(true);
    for (i, t) in topics.iter().enumerate() {
        let id = (qos != Qos::AtMostOnce).then_some(first + i as u16);
        publisher
            .send(v3_pub(t, t.as_bytes(), qos, id).into())
            .await;
        if qos == Qos::AtMostOnce {
            continue;
        }
        loop {
            match publisher.recv(T).await.expect("acknowledgement") {
                Packet::V3_1_1Puback(_) | Packet::V3_1_1Pubcomp(_) => break,
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn identifiers_stay_in_the_window_and_are_reused_after_their_puback() {
    let b = broker(3).await;
    let mut sub = subscribed(b.addr, "w-sub", &[("w/#", Qos::AtLeastOnce)], false).await;
    let (mut publisher, _) = v3_client(b.addr, "w-pub", "admin", false).await;
    publish(
        &mut publisher,
        &["w/1", "w/2", "w/3", "w/4", "w/5"],
        Qos::AtLeastOnce,
        1,
    )
    .await;
    let q1 = Qos::AtLeastOnce;
    for (i, t) in ["w/1", "w/2", "w/3"].iter().enumerate() {
        assert_eq!(
            next_publish(&mut sub).await,
            got(t, i as u16 + 1, q1, false)
        );
    }
    // The window is full: w/4 goes out only once a PUBACK frees an identifier,
    // and under that identifier (had it gone before, it would come next here
    // under identifier 4).
    sub.send_raw(&puback(2)).await;
    assert_eq!(next_publish(&mut sub).await, got("w/4", 2, q1, false));
    // A PUBACK cut across two writes is still ours.
    sub.send_raw(&puback(1)[..3]).await;
    sub.send_raw(&puback(1)[3..]).await;
    assert_eq!(next_publish(&mut sub).await, got("w/5", 1, q1, false));
    for id in [3, 2, 1] {
        sub.send_raw(&puback(id)).await;
    }
    sub.ping().await;
    assert_eq!(b.broker.shared().stats.protocol_errors.get(), 0);
}

#[tokio::test]
async fn a_duplicate_puback_closes_the_connection_as_the_codec_does() {
    let b = broker(8).await;
    let mut sub = subscribed(b.addr, "d-sub", &[("d/#", Qos::AtLeastOnce)], false).await;
    let (mut publisher, _) = v3_client(b.addr, "d-pub", "admin", false).await;
    publish(&mut publisher, &["d/1", "d/2"], Qos::AtLeastOnce, 1).await;
    assert_eq!(next_publish(&mut sub).await.id, 1);
    assert_eq!(next_publish(&mut sub).await.id, 2);
    sub.send_raw(&puback(1)).await;
    // Identifier 1 is no longer in flight (2 still is): a protocol error
    // (MQTT 3.1.1 §4.8), the connection closes.
    sub.send_raw(&puback(1)).await;
    sub.until_closed(T).await.expect("closed");
    b.gone("d-sub").await;
}

#[tokio::test]
async fn a_puback_for_an_identifier_never_sent_closes_the_connection() {
    let b = broker(8).await;
    let mut sub = subscribed(b.addr, "u-sub", &[("u/#", Qos::AtLeastOnce)], false).await;
    let (mut publisher, _) = v3_client(b.addr, "u-pub", "admin", false).await;
    publish(&mut publisher, &["u/1"], Qos::AtLeastOnce, 1).await;
    assert_eq!(next_publish(&mut sub).await.id, 1);
    // One in flight (1), within the window (8) but never given: refused.
    sub.send_raw(&puback(5)).await;
    sub.until_closed(T).await.expect("closed");
    b.gone("u-sub").await;
}

#[tokio::test]
async fn qos1_and_qos2_on_one_connection_never_share_an_identifier() {
    let b = broker(4).await;
    let filters = [("m1/#", Qos::AtLeastOnce), ("m2/#", Qos::ExactlyOnce)];
    let mut sub = subscribed(b.addr, "m-sub", &filters, false).await;
    let (mut publisher, _) = v3_client(b.addr, "m-pub", "admin", false).await;
    for round in 0..3u16 {
        let (a, c) = (format!("m1/{round}a"), format!("m1/{round}c"));
        let (bb, d) = (format!("m2/{round}b"), format!("m2/{round}d"));
        publish(&mut publisher, &[&a], Qos::AtLeastOnce, 10 * round + 1).await;
        publish(&mut publisher, &[&bb], Qos::ExactlyOnce, 10 * round + 2).await;
        publish(&mut publisher, &[&c], Qos::AtLeastOnce, 10 * round + 3).await;
        publish(&mut publisher, &[&d], Qos::ExactlyOnce, 10 * round + 4).await;
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(next_publish(&mut sub).await);
        }
        let topics: Vec<&str> = seen.iter().map(|g| g.topic.as_str()).collect();
        assert_eq!(topics, [a.as_str(), bb.as_str(), c.as_str(), d.as_str()]);
        let mut ids: Vec<u16> = seen.iter().map(|g| g.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            4,
            "identifiers in flight at once collide: {seen:?}"
        );
        // Complete every exchange: PUBACK, or PUBREC -> PUBREL -> PUBCOMP.
        for g in &seen {
            let [hi, lo] = g.id.to_be_bytes();
            if g.qos == Qos::AtLeastOnce {
                sub.send_raw(&puback(g.id)).await;
            } else {
                sub.send_raw(&[0x50, 0x02, hi, lo]).await;
                match sub.recv(T).await.expect("PUBREL") {
                    Packet::V3_1_1Pubrel(r) => assert_eq!(r.packet_id(), g.id),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                sub.send_raw(&[0x70, 0x02, hi, lo]).await;
            }
        }
        sub.ping().await;
    }
    assert_eq!(b.broker.shared().stats.protocol_errors.get(), 0);
}

#[tokio::test]
async fn a_resumed_session_gets_its_unacknowledged_copies_again_in_order_with_dup() {
    let b = broker(8).await;
    let filters = [("r1/#", Qos::AtLeastOnce), ("r2/#", Qos::ExactlyOnce)];
    let mut sub = subscribed(b.addr, "r-sub", &filters, true).await;
    let (mut publisher, _) = v3_client(b.addr, "r-pub", "admin", false).await;
    publish(&mut publisher, &["r1/a"], Qos::AtLeastOnce, 1).await;
    publish(&mut publisher, &["r2/b"], Qos::ExactlyOnce, 2).await;
    publish(&mut publisher, &["r1/c", "r1/d"], Qos::AtLeastOnce, 3).await;
    let (q1, q2) = (Qos::AtLeastOnce, Qos::ExactlyOnce);
    let first = [
        got("r1/a", 1, q1, false),
        got("r2/b", 2, q2, false),
        got("r1/c", 3, q1, false),
        got("r1/d", 4, q1, false),
    ];
    for g in &first {
        assert_eq!(&next_publish(&mut sub).await, g);
    }
    // r1/c is acknowledged; the others are not when the connection drops.
    sub.send_raw(&puback(3)).await;
    sub.ping().await;
    drop(sub);
    b.offline("r-sub").await;
    let (mut sub, present) = v3_client(b.addr, "r-sub", "admin2", true).await;
    assert!(present);
    for g in [
        got("r1/a", 1, q1, true),
        got("r2/b", 2, q2, true),
        got("r1/d", 4, q1, true),
    ] {
        assert_eq!(next_publish(&mut sub).await, g);
    }
    // A new copy while the resent ones are in flight takes a free identifier.
    publish(&mut publisher, &["r1/e"], Qos::AtLeastOnce, 5).await;
    let e = next_publish(&mut sub).await;
    assert_eq!((e.topic.as_str(), e.dup), ("r1/e", false));
    assert!(
        ![1, 2, 4].contains(&e.id),
        "{e:?} reuses an identifier in flight"
    );
    // The resent ones are acknowledged (the codec's) and so is the new one (ours).
    sub.send_raw(&puback(1)).await;
    sub.send_raw(&[0x50, 0x02, 0x00, 0x02]).await;
    match sub.recv(T).await.expect("PUBREL") {
        Packet::V3_1_1Pubrel(r) => assert_eq!(r.packet_id(), 2),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send_raw(&[0x70, 0x02, 0x00, 0x02]).await;
    sub.send_raw(&puback(4)).await;
    sub.send_raw(&puback(e.id)).await;
    sub.ping().await;
    // Nothing is left in flight: a third connection gets nothing again.
    drop(sub);
    b.offline("r-sub").await;
    let (mut sub, present) = v3_client(b.addr, "r-sub", "admin2", true).await;
    assert!(present);
    publish(&mut publisher, &["r1/f"], Qos::AtLeastOnce, 6).await;
    let f = next_publish(&mut sub).await;
    assert_eq!((f.topic.as_str(), f.dup), ("r1/f", false));
    assert_eq!(b.broker.shared().stats.protocol_errors.get(), 0);
}

/// MQTT 5 keeps the codec for all of it: a QoS 1 copy and its PUBACK, and a
/// PUBACK for an identifier not in flight answered with DISCONNECT 0x82.
#[tokio::test]
async fn mqtt5_keeps_the_codec_and_refuses_an_unknown_puback_with_0x82() {
    let b = broker(8).await;
    let mut sub = Raw::open(b.addr, Version::V5_0).await;
    sub.mqtt.set_auto_pub_response(false);
    sub.send(v5_connect("v5-sub", Some("admin2")).into()).await;
    assert_eq!(v5_connack(&sub.recv(T).await.expect("connack")).0, 0);
    sub.send(v5_sub(1, &[("f/#", Qos::AtLeastOnce)]).into())
        .await;
    sub.suback().await;
    let (mut publisher, _) = v3_client(b.addr, "v5-pub", "admin", false).await;
    publish(&mut publisher, &["f/1", "f/2"], Qos::AtLeastOnce, 1).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        match sub.recv(T).await.expect("PUBLISH") {
            Packet::V5_0Publish(p) => ids.push(p.packet_id().expect("identifier")),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    sub.send_raw(&puback(ids[0])).await;
    sub.ping().await;
    sub.send_raw(&puback(ids[0])).await;
    let seen = sub.until_closed(T).await.expect("closed");
    let codes: Vec<u8> = seen
        .iter()
        .filter(|p| matches!(p, Packet::V5_0Disconnect(_)))
        .map(disconnect_code)
        .collect();
    assert_eq!(codes, [0x82]);
}
