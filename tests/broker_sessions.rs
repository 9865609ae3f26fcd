//! Sessions and identities (issue 11, items 5 and 6), over real sockets:
//! assigned client identifiers nobody can guess or take first, and the bound
//! on the sessions one authentication name may hold.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Property, SessionExpiryInterval};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

/// Connects with MQTT 5; returns the connection, the CONNACK's reason code and
/// its Assigned Client Identifier.
async fn v5_with(addr: SocketAddr, id: &str, user: &str, o: Opts) -> (Raw, u8, Option<String>) {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect_with(id, Some(user), None, o).into())
        .await;
    match raw.recv(T).await.expect("connack") {
        Packet::V5_0Connack(c) => {
            let assigned = c.props().iter().find_map(|p| match p {
                Property::AssignedClientIdentifier(a) => Some(a.val().to_string()),
                _ => None,
            });
            (raw, c.reason_code() as u8, assigned)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn v5(addr: SocketAddr, id: &str, user: &str) -> (Raw, u8, Option<String>) {
    v5_with(addr, id, user, Opts::default()).await
}

/// Session Expiry Interval `secs`, Clean Start 1.
fn expiring(secs: u32) -> Opts {
    Opts {
        props: vec![SessionExpiryInterval::new(secs).unwrap().into()],
        ..Default::default()
    }
}

/// What a counter-based scheme would assign after `id`: the same text with its
/// trailing number plus `step` (or, for any other ID, a near variant).
fn successor(id: &str, step: u64) -> String {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, num) = id.split_at(id.len() - digits);
    match num.parse::<u64>() {
        Ok(n) => format!("{head}{}", n + step),
        Err(_) => format!("{id}-{step}"),
    }
}

#[tokio::test]
async fn assigned_identifiers_are_128_random_bits_and_differ() {
    let b = lwt_broker().await;
    let (_a, rc_a, id_a) = v5(b.addr, "", "admin").await;
    let (_b, rc_b, id_b) = v5(b.addr, "", "admin").await;
    assert_eq!((rc_a, rc_b), (0, 0));
    let (id_a, id_b) = (id_a.expect("assigned"), id_b.expect("assigned"));
    assert_ne!(id_a, id_b);
    for id in [&id_a, &id_b] {
        let hex = id.strip_prefix("tg-").expect("tg- prefix");
        assert_eq!(hex.len(), 32, "{id}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
    assert_eq!(b.broker.shared().sessions.len(), 2);
}

#[tokio::test]
async fn a_squatter_on_the_next_predictable_identifier_does_not_refuse_the_legitimate_client() {
    let b = lwt_broker().await;
    let (_first, rc, first) = v5(b.addr, "", "admin").await;
    assert_eq!(rc, 0);
    let first = first.expect("assigned");
    // Another identity takes the identifiers a counter would hand out next.
    let mut squatters = Vec::new();
    for step in 1..=20 {
        let (raw, rc, _) = v5(b.addr, &successor(&first, step), "admin2").await;
        assert_eq!(rc, 0);
        squatters.push(raw);
    }
    let (_legit, rc, id) = v5(b.addr, "", "admin").await;
    assert_eq!(rc, 0, "the legitimate client is accepted");
    let id = id.expect("assigned");
    assert!((1..=20).all(|s| successor(&first, s) != id));
    // No squatter was taken over either.
    for s in &mut squatters {
        s.ping().await;
    }
    assert_eq!(b.broker.shared().sessions.count_for("admin2"), 20);
}

#[tokio::test]
async fn an_empty_client_id_never_joins_an_existing_session_of_the_same_identity() {
    let b = lwt_broker().await;
    let (_first, _, first) = v5(b.addr, "", "admin").await;
    let first = first.expect("assigned");
    // The same identity holds the next predictable IDs, online, with a session.
    let mut held = Vec::new();
    for step in 1..=20 {
        let (raw, rc, _) = v5_with(b.addr, &successor(&first, step), "admin", expiring(600)).await;
        assert_eq!(rc, 0);
        held.push(raw);
    }
    // Resume allowed (Clean Start 0): still a fresh session, nobody kicked.
    let o = Opts {
        resume: true,
        ..expiring(600)
    };
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.send(v5_connect_with("", Some("admin"), None, o).into())
        .await;
    match raw.recv(T).await.expect("connack") {
        Packet::V5_0Connack(c) => {
            assert_eq!(c.reason_code() as u8, 0);
            assert!(!c.session_present(), "an assigned ID starts a new session");
        }
        other => panic!("{other:?}"),
    }
    for h in &mut held {
        h.ping().await; // not closed by a takeover
    }
    // The first, the 20 held and the new one: a takeover would have replaced one.
    assert_eq!(b.broker.shared().sessions.count_for("admin"), 22);
}

fn limited(n: usize) -> BrokerConfig {
    BrokerConfig {
        max_sessions_per_authentication_name: n,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_session_limit_refuses_one_more_session_online_or_offline() {
    let b = start(policy::lwt(), limited(2)).await;
    // One offline (stored) session and one online one.
    let (mut off, rc, _) = v5_with(b.addr, "a1", "admin", expiring(600)).await;
    assert_eq!(rc, 0);
    off.send(
        mqtt_protocol_core::mqtt::packet::v5_0::Disconnect::builder()
            .build()
            .unwrap()
            .into(),
    )
    .await;
    let _ = off.until_closed(T).await;
    let (_on, rc, _) = v5(b.addr, "a2", "admin").await;
    assert_eq!(rc, 0);
    assert_eq!(b.broker.shared().sessions.count_for("admin"), 2);

    // A third: Quota exceeded with a reason; 3.1.1: Not authorized.
    let (_r, rc, _) = v5(b.addr, "a3", "admin").await;
    assert_eq!(rc, 0x97);
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.send(v5_connect("a3", Some("ADMIN")).into()).await;
    let (rc, reason) = v5_connack(&raw.recv(T).await.expect("connack"));
    assert_eq!(rc, 0x97, "authentication names compare case-insensitively");
    assert!(reason
        .unwrap_or_default()
        .contains("maxSessionsPerAuthenticationName"));
    let mut raw = Raw::open(b.addr, Version::V3_1_1).await;
    raw.send(v3_connect("a3", Some("admin"), None).into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0x05);
    // An assigned identifier is a new session too.
    let (_r, rc, _) = v5(b.addr, "", "admin").await;
    assert_eq!(rc, 0x97);
    assert!(!b.broker.shared().sessions.contains("a3"));

    // Its own sessions stay usable: resuming the stored one, taking over the online one.
    let o = Opts {
        resume: true,
        ..expiring(600)
    };
    let (_resumed, rc, _) = v5_with(b.addr, "a1", "admin", o).await;
    assert_eq!(rc, 0);
    let (_taken, rc, _) = v5(b.addr, "a2", "admin").await;
    assert_eq!(rc, 0);
    // The limit is per authentication name.
    let (_other, rc, _) = v5(b.addr, "b1", "admin2").await;
    assert_eq!(rc, 0);
    assert_eq!(b.broker.shared().sessions.count_for("admin"), 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_frees_its_slot() {
    let b = start(policy::lwt(), limited(1)).await;
    let (raw, rc, _) = v5_with(b.addr, "e1", "admin", expiring(1)).await;
    assert_eq!(rc, 0);
    drop(raw);
    let (_r, rc, _) = v5(b.addr, "e2", "admin").await;
    assert_eq!(rc, 0x97, "the stored session still counts");
    // Just before its expiry interval it still counts; at it, it ends and the slot
    // is free (`gone` polls, which moves the paused clock: bound it).
    tokio::time::advance(Duration::from_millis(999)).await;
    let (_r, rc, _) = v5(b.addr, "e2", "admin").await;
    assert_eq!(rc, 0x97, "expired early");
    let at = tokio::time::Instant::now();
    tokio::time::advance(Duration::from_millis(1)).await;
    b.gone("e1").await;
    assert!(
        at.elapsed() < Duration::from_millis(100),
        "{:?}",
        at.elapsed()
    );
    let (_r, rc, _) = v5(b.addr, "e2", "admin").await;
    assert_eq!(rc, 0);
}

#[tokio::test]
async fn a_session_that_ends_with_its_connection_frees_its_slot_at_once() {
    let b = start(policy::lwt(), limited(1)).await;
    let (raw, rc, _) = v5(b.addr, "z1", "admin").await;
    assert_eq!(rc, 0);
    drop(raw);
    eventually(|| b.broker.shared().sessions.count_for("admin") == 0).await;
    let (_r, rc, _) = v5(b.addr, "z2", "admin").await;
    assert_eq!(rc, 0);
}

/// On the paused clock: the publisher's wait for room is a broker timer, and the
/// read below stops when the broker has nothing more to send, not after a quiet
/// half second.
#[tokio::test(start_paused = true)]
async fn every_message_for_a_session_is_delivered_or_counted_as_dropped() {
    // Small window and queues, and a publisher that waits little for room.
    let cfg = BrokerConfig {
        receive_maximum: 5,
        max_queued_messages: 5,
        max_publisher_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let b = start(policy::lwt(), cfg).await;
    let persistent = v3_connect_with(
        "keeper",
        Some("admin2"),
        None,
        Opts {
            resume: true,
            ..Default::default()
        },
    );
    // A subscriber that acknowledges nothing, then vanishes.
    let mut sub = Raw::open(b.addr, Version::V3_1_1).await;
    sub.mqtt.set_auto_pub_response(false);
    sub.send(persistent.clone().into()).await;
    assert_eq!(v3_connack(&sub.recv(T).await.expect("connack")), 0);
    sub.send(
        v3_sub(
            1,
            &[("d/#", mqtt_protocol_core::mqtt::packet::Qos::AtLeastOnce)],
        )
        .into(),
    )
    .await;
    assert!(matches!(
        sub.recv(T).await.expect("suback"),
        Packet::V3_1_1Suback(_)
    ));

    const N: usize = 30;
    let mut o = rumqttc::MqttOptions::new("pub", "127.0.0.1", b.addr.port());
    o.set_credentials("admin", "");
    o.set_inflight(5);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
    for i in 0..N {
        client
            .publish(format!("d/{i:02}"), rumqttc::QoS::AtLeastOnce, false, "x")
            .await
            .expect("queue");
    }
    let mut acked = 0;
    while acked < N {
        match tokio::time::timeout(T, el.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("publisher stopped after {acked}: {other:?}"),
        }
    }
    drop(sub);
    b.offline("keeper").await;

    // Resumed: what was kept arrives; the rest must have been counted.
    let mut sub = Raw::open(b.addr, Version::V3_1_1).await;
    sub.send(persistent.into()).await;
    assert_eq!(v3_connack(&sub.recv(T).await.expect("connack")), 0);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..N * 2 {
        match sub.recv(Duration::from_millis(500)).await {
            Ok(p @ Packet::V3_1_1Publish(_)) => {
                seen.insert(publish_parts(&p).0);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let dropped = b.broker.shared().stats.messages_dropped() as usize;
    assert!(dropped > 0, "the queues are far smaller than {N}");
    assert_eq!(
        seen.len() + dropped,
        N,
        "delivered {seen:?}, dropped {dropped}"
    );
}

/// Regression for a codec fault (decisions 0015 and 0016): mqtt-protocol-core
/// 0.7.9 does not count packets it resends after `restore_packets` towards the
/// client's Receive Maximum, so their PUBACK underflowed its counter (a panic in
/// debug builds, a send window closed for good in release). The broker now keeps
/// the client's Receive Maximum from the codec and enforces it itself.
#[tokio::test]
async fn a_resumed_v5_session_acknowledges_its_resent_messages_and_goes_on() {
    use mqtt_protocol_core::mqtt::packet::{Qos, ReceiveMaximum};
    let b = lwt_broker().await;
    let connect = |resume| {
        v5_connect_with(
            "resumer",
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
    };
    let mut sub = Raw::open(b.addr, Version::V5_0).await;
    sub.mqtt.set_auto_pub_response(false);
    sub.send(connect(false).into()).await;
    assert_eq!(v5_connack(&sub.recv(T).await.expect("connack")).0, 0);
    sub.send(v5_sub(1, &[("k/#", Qos::AtLeastOnce)]).into())
        .await;
    let _suback = sub.recv(T).await.expect("suback");
    let (mut publisher, rc, _) = v5(b.addr, "kpub", "admin").await;
    assert_eq!(rc, 0);
    publisher
        .send(v5_pub("k/2", b"two", Qos::AtLeastOnce, Some(1)).into())
        .await;
    let mut unacked = None;
    for _ in 0..10 {
        if let Ok(Packet::V5_0Publish(p)) = sub.recv(T).await {
            if p.qos() == Qos::AtLeastOnce {
                unacked = p.packet_id();
                break;
            }
        }
    }
    assert!(unacked.is_some());
    drop(sub);
    b.offline("resumer").await;
    // Resume, acknowledge the resent message, then a new one must still arrive.
    let mut sub = Raw::open(b.addr, Version::V5_0).await;
    sub.send(connect(true).into()).await;
    assert_eq!(v5_connack(&sub.recv(T).await.expect("connack")).0, 0);
    let resent = sub.recv(T).await.expect("resent");
    assert!(matches!(resent, Packet::V5_0Publish(_)), "{resent:?}");
    publisher
        .send(v5_pub("k/3", b"three", Qos::AtLeastOnce, Some(2)).into())
        .await;
    let mut got_three = false;
    for _ in 0..10 {
        match sub.recv(T).await {
            Ok(Packet::V5_0Publish(p)) if p.topic_name() == "k/3" => {
                got_three = true;
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("connection ended after the resent message's PUBACK: {e:?}"),
        }
    }
    assert!(got_three);
}
