//! MQTT protocol features beyond authorization: sessions, offline queue, topic
//! aliases, subscription options, shared subscriptions, expiry, shutdown.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{
    v5_0, MessageExpiryInterval, Packet, Property, Qos, RetainHandling, SessionExpiryInterval,
    SubEntry, SubOpts, TopicAlias, TopicAliasMaximum,
};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

async fn v5(addr: SocketAddr, id: &str, user: &str, o: Opts) -> (Raw, v5_0::Connack) {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect_with(id, Some(user), None, o).into())
        .await;
    match raw.recv(T).await.expect("connack") {
        Packet::V5_0Connack(c) => {
            assert_eq!(c.reason_code() as u8, 0);
            (raw, c)
        }
        other => panic!("{other:?}"),
    }
}

fn sub_with(pid: u16, filter: &str, opts: SubOpts) -> Packet {
    v5_0::Subscribe::builder()
        .packet_id(pid)
        .entries(vec![SubEntry::new(filter, opts).unwrap()])
        .build()
        .unwrap()
        .into()
}

fn retained_pub(topic: &str, payload: &[u8]) -> Packet {
    v5_0::Publish::builder()
        .topic_name(topic)
        .unwrap()
        .retain(true)
        .payload(payload)
        .build()
        .unwrap()
        .into()
}

#[tokio::test]
async fn persistent_session_queues_qos1_while_offline_and_resumes() {
    let b = lwt_broker().await;
    let o = || Opts {
        props: vec![SessionExpiryInterval::new(60).unwrap().into()],
        ..Default::default()
    };
    let (mut s, c) = v5(b.addr, "persist", "admin", o()).await;
    assert!(!c.session_present());
    s.send(v5_sub(1, &[("q/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    drop(s);
    b.offline("persist").await;
    let (mut p, _) = v5(b.addr, "pub", "admin2", Opts::default()).await;
    p.send(v5_pub("q/1", b"one", Qos::AtLeastOnce, Some(1)).into())
        .await;
    p.recv(T).await.expect("puback");
    p.send(v5_pub("q/0", b"zero", Qos::AtMostOnce, None).into())
        .await;
    let (mut s, c) = v5(
        b.addr,
        "persist",
        "admin",
        Opts {
            resume: true,
            ..o()
        },
    )
    .await;
    assert!(c.session_present());
    let (t, payload, q, _) = publish_parts(&s.recv(T).await.expect("queued"));
    assert_eq!(
        (t.as_str(), payload.as_slice(), q),
        ("q/1", &b"one"[..], Qos::AtLeastOnce)
    );
    // QoS 0 is not queued: p's marker comes next.
    s.expect_marker_first(&mut p, "q/marker").await;
    // Subscriptions survived too.
    p.send(v5_pub("q/2", b"two", Qos::AtMostOnce, None).into())
        .await;
    assert_eq!(publish_parts(&s.recv(T).await.expect("live")).0, "q/2");
}

#[tokio::test]
async fn clean_start_discards_the_session() {
    let b = lwt_broker().await;
    let o = Opts {
        props: vec![SessionExpiryInterval::new(60).unwrap().into()],
        ..Default::default()
    };
    let (mut s, _) = v5(b.addr, "c", "admin", o).await;
    s.send(v5_sub(1, &[("q/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    drop(s);
    let (mut s, c) = v5(b.addr, "c", "admin", Opts::default()).await;
    assert!(!c.session_present());
    // The fresh session's only subscription, for the marker.
    s.send(v5_sub(2, &[("m/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    let (mut p, _) = v5(b.addr, "pub", "admin2", Opts::default()).await;
    p.send(v5_pub("q/1", b"x", Qos::AtMostOnce, None).into())
        .await;
    s.expect_marker_first(&mut p, "m/1").await;
}

#[tokio::test]
async fn topic_alias_from_the_client_is_resolved() {
    let b = lwt_broker().await;
    let (mut sub, _) = v5(b.addr, "s", "admin", Opts::default()).await;
    sub.send(v5_sub(1, &[("t/#", Qos::AtMostOnce)]).into())
        .await;
    sub.suback().await;
    let (mut p, c) = v5(b.addr, "p", "admin2", Opts::default()).await;
    assert!(c
        .props()
        .iter()
        .any(|x| matches!(x, Property::TopicAliasMaximum(m) if m.val() == 10)));
    let first = v5_0::Publish::builder()
        .topic_name("t/long/topic")
        .unwrap()
        .props(vec![TopicAlias::new(3).unwrap().into()])
        .payload(b"1")
        .build()
        .unwrap();
    p.send(first.into()).await;
    let second = v5_0::Publish::builder()
        .topic_name("")
        .unwrap()
        .props(vec![TopicAlias::new(3).unwrap().into()])
        .payload(b"2")
        .build()
        .unwrap();
    p.send(second.into()).await;
    assert_eq!(publish_parts(&sub.recv(T).await.unwrap()).0, "t/long/topic");
    assert_eq!(publish_parts(&sub.recv(T).await.unwrap()).0, "t/long/topic");
}

#[tokio::test]
async fn topic_aliases_towards_the_client_when_it_allows_them() {
    let b = lwt_broker().await;
    let o = Opts {
        props: vec![TopicAliasMaximum::new(5).unwrap().into()],
        ..Default::default()
    };
    let (mut sub, _) = v5(b.addr, "s", "admin", o).await;
    sub.send(v5_sub(1, &[("t/#", Qos::AtMostOnce)]).into())
        .await;
    sub.suback().await;
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    for _ in 0..2 {
        p.send(v5_pub("t/x", b"v", Qos::AtMostOnce, None).into())
            .await;
        // The client's state machine restores the topic from the alias.
        assert_eq!(publish_parts(&sub.recv(T).await.unwrap()).0, "t/x");
    }
}

#[tokio::test]
async fn no_local_retain_as_published_and_retain_handling() {
    let b = lwt_broker().await;
    let (mut a, _) = v5(b.addr, "a", "admin", Opts::default()).await;
    a.send(retained_pub("r/1", b"kept")).await;
    // The markers' subscription (No Local 0).
    a.send(sub_with(9, "k/#", SubOpts::new())).await;
    a.suback().await;
    // No Local: own messages are not echoed.
    a.send(sub_with(1, "n/#", SubOpts::new().set_nl(true)))
        .await;
    a.suback().await;
    a.send(v5_pub("n/1", b"self", Qos::AtMostOnce, None).into())
        .await;
    a.expect_own_marker_first("k/1").await;
    // Retain Handling 2: no retained message at subscribe.
    a.send(sub_with(
        2,
        "r/#",
        SubOpts::new().set_rh(RetainHandling::DoNotSendRetained),
    ))
    .await;
    a.suback().await;
    a.expect_own_marker_first("k/2").await;
    // Retain Handling 1: only for a new subscription.
    let (mut c, _) = v5(b.addr, "c", "admin2", Opts::default()).await;
    let rh1 = SubOpts::new().set_rh(RetainHandling::SendRetainedIfNotExists);
    c.send(sub_with(1, "r/#", rh1)).await;
    c.suback().await;
    assert!(publish_parts(&c.recv(T).await.expect("retained")).3);
    c.send(sub_with(2, "r/#", rh1)).await;
    c.suback().await;
    // Not again for the existing subscription: the marker (on r/#) comes first.
    c.expect_own_marker_first("r/marker").await;
    // Retain As Published keeps the flag on live delivery; without it the flag is cleared.
    c.send(sub_with(
        3,
        "r/#",
        SubOpts::new()
            .set_rap(true)
            .set_rh(RetainHandling::DoNotSendRetained),
    ))
    .await;
    c.suback().await;
    // a's subscription to r/# (above) has Retain As Published 0.
    let (mut p, _) = v5(b.addr, "p", "admin", Opts::default()).await;
    p.send(retained_pub("r/2", b"new")).await;
    assert!(publish_parts(&c.recv(T).await.expect("rap copy")).3);
    let mut got_a = None;
    while let Ok(pk) = a.recv(T).await {
        if let Packet::V5_0Publish(_) = pk {
            got_a = Some(publish_parts(&pk));
            break;
        }
    }
    assert!(!got_a.expect("a's copy").3);
}

#[tokio::test]
async fn shared_subscriptions_deliver_each_message_to_one_member() {
    let b = lwt_broker().await;
    let (mut m1, _) = v5(b.addr, "m1", "admin", Opts::default()).await;
    let (mut m2, _) = v5(b.addr, "m2", "admin2", Opts::default()).await;
    for (m, own) in [(&mut m1, "own/m1"), (&mut m2, "own/m2")] {
        m.send(
            v5_sub(
                1,
                &[
                    ("$share/g/jobs/#", Qos::AtMostOnce),
                    (own, Qos::AtLeastOnce),
                ],
            )
            .into(),
        )
        .await;
        m.suback().await;
    }
    let (mut p, _) = v5(b.addr, "p", "admin", Opts::default()).await;
    for i in 0..10u8 {
        p.send(v5_pub("jobs/x", &[i], Qos::AtMostOnce, None).into())
            .await;
    }
    // Each member counts the jobs that reach it before its own marker, which p
    // publishes after every job.
    let mut n = 0;
    for (m, own) in [(&mut m1, "own/m1"), (&mut m2, "own/m2")] {
        p.send(v5_pub(own, MARKER, Qos::AtMostOnce, None).into())
            .await;
        loop {
            let (t, _, _, _) = publish_parts(&m.recv(T).await.expect("a job or the marker"));
            if t == own {
                break;
            }
            n += 1;
        }
    }
    assert_eq!(n, 10);
}

#[tokio::test(start_paused = true)]
async fn message_expiry_drops_stale_queued_messages() {
    let b = lwt_broker().await;
    let o = || Opts {
        props: vec![SessionExpiryInterval::new(60).unwrap().into()],
        ..Default::default()
    };
    let (mut s, _) = v5(b.addr, "exp", "admin", o()).await;
    s.send(v5_sub(1, &[("e/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    drop(s);
    b.offline("exp").await;
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    let short = v5_0::Publish::builder()
        .topic_name("e/short")
        .unwrap()
        .qos(Qos::AtLeastOnce)
        .packet_id(1)
        .props(vec![MessageExpiryInterval::new(1).unwrap().into()])
        .payload(b"x")
        .build()
        .unwrap();
    p.send(short.into()).await;
    p.recv(T).await.expect("puback");
    p.send(v5_pub("e/long", b"y", Qos::AtLeastOnce, Some(2)).into())
        .await;
    p.recv(T).await.expect("puback");
    // Past e/short's one second, on the paused clock.
    tokio::time::advance(Duration::from_millis(1001)).await;
    let (mut s, _) = v5(
        b.addr,
        "exp",
        "admin",
        Opts {
            resume: true,
            ..o()
        },
    )
    .await;
    assert_eq!(publish_parts(&s.recv(T).await.expect("long")).0, "e/long");
    s.expect_marker_first(&mut p, "e/marker").await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let b = lwt_broker().await;
    let (mut s, _) = v5(b.addr, "s", "admin", Opts::default()).await;
    s.send(v5_sub(1, &[("u/#", Qos::AtMostOnce), ("m/#", Qos::AtLeastOnce)]).into())
        .await;
    s.suback().await;
    let un = v5_0::Unsubscribe::builder()
        .packet_id(2)
        .entries(vec!["u/#", "nope"])
        .unwrap()
        .build()
        .unwrap();
    s.send(un.into()).await;
    match s.recv(T).await.expect("unsuback") {
        Packet::V5_0Unsuback(u) => {
            let codes: Vec<u8> = u.reason_codes().iter().map(|c| *c as u8).collect();
            assert_eq!(codes, vec![0x00, 0x11]);
        }
        other => panic!("{other:?}"),
    }
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    p.send(v5_pub("u/1", b"x", Qos::AtMostOnce, None).into())
        .await;
    s.expect_marker_first(&mut p, "m/1").await;
}

#[tokio::test(start_paused = true)]
async fn server_keep_alive_is_announced_and_enforced() {
    let cfg = BrokerConfig {
        max_keep_alive: 1,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let (mut s, c) = v5(
        b.addr,
        "s",
        "admin",
        Opts {
            keep_alive: 60,
            ..Default::default()
        },
    )
    .await;
    assert!(c
        .props()
        .iter()
        .any(|x| matches!(x, Property::ServerKeepAlive(k) if k.val() == 1)));
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8D]
    );
}

#[tokio::test]
async fn shutdown_sends_v5_clients_0x8b() {
    let b = lwt_broker().await;
    let (mut s, _) = v5(b.addr, "s", "admin", Opts::default()).await;
    let mut s3 = Raw::open(b.addr, Version::V3_1_1).await;
    s3.send(v3_connect("s3", Some("admin2"), None).into()).await;
    s3.recv(T).await.expect("connack");
    b.broker.shutdown().await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8B]
    );
    assert!(s3.until_closed(T).await.expect("closed").is_empty());
}

/// A connection that rests after CONNACK waits on its session's wake-up
/// alone, not on the shutdown flag (decision 0036): dropping the broker must
/// still reach it, like `shutdown`.
#[tokio::test]
async fn dropping_the_broker_ends_resting_connections() {
    let b = lwt_broker().await;
    let (mut s, _) = v5(b.addr, "s", "admin", Opts::default()).await;
    drop(b.broker);
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8B]
    );
}

#[tokio::test]
async fn outgoing_packets_respect_the_clients_maximum_packet_size() {
    use mqtt_protocol_core::mqtt::packet::MaximumPacketSize;
    let b = lwt_broker().await;
    let o = Opts {
        props: vec![MaximumPacketSize::new(64).unwrap().into()],
        ..Default::default()
    };
    let (mut s, _) = v5(b.addr, "s", "admin", o).await;
    s.send(v5_sub(1, &[("m/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    p.send(v5_pub("m/big", &[7u8; 200], Qos::AtLeastOnce, Some(1)).into())
        .await;
    p.send(v5_pub("m/small", b"ok", Qos::AtLeastOnce, Some(2)).into())
        .await;
    assert_eq!(publish_parts(&s.recv(T).await.expect("small")).0, "m/small");
}

#[tokio::test]
async fn unacknowledged_qos1_is_resent_with_dup_after_resume() {
    let b = lwt_broker().await;
    let o = || Opts {
        props: vec![SessionExpiryInterval::new(60).unwrap().into()],
        ..Default::default()
    };
    let mut s = Raw::open(b.addr, Version::V5_0).await;
    s.mqtt.set_auto_pub_response(false);
    s.send(v5_connect_with("inflight", Some("admin"), None, o()).into())
        .await;
    s.recv(T).await.expect("connack");
    s.send(v5_sub(1, &[("i/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    p.send(v5_pub("i/1", b"once", Qos::AtLeastOnce, Some(1)).into())
        .await;
    match s.recv(T).await.expect("first delivery") {
        Packet::V5_0Publish(m) => assert!(!m.dup()),
        other => panic!("{other:?}"),
    }
    drop(s); // never acknowledged
    b.offline("inflight").await;
    let (mut s, c) = v5(
        b.addr,
        "inflight",
        "admin",
        Opts {
            resume: true,
            ..o()
        },
    )
    .await;
    assert!(c.session_present());
    match s.recv(T).await.expect("redelivery") {
        Packet::V5_0Publish(m) => {
            assert!(m.dup());
            assert_eq!(m.payload().as_slice(), b"once");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn v311_persistent_session_resumes_with_queued_messages() {
    let b = lwt_broker().await;
    let persist = || Opts {
        resume: true,
        ..Default::default()
    };
    let mut s = Raw::open(b.addr, Version::V3_1_1).await;
    s.send(v3_connect_with("p3", Some("admin"), None, persist()).into())
        .await;
    match s.recv(T).await.expect("connack") {
        Packet::V3_1_1Connack(c) => assert!(!c.session_present()),
        other => panic!("{other:?}"),
    }
    s.send(v3_sub(1, &[("q/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    s.send_raw(&[0xe0, 0x00]).await; // normal DISCONNECT: the session stays
    assert!(s.until_closed(T).await.is_ok());
    let (mut p, _) = v5(b.addr, "pub", "admin2", Opts::default()).await;
    p.send(v5_pub("q/1", b"queued", Qos::AtLeastOnce, Some(1)).into())
        .await;
    p.recv(T).await.expect("puback");
    let mut s = Raw::open(b.addr, Version::V3_1_1).await;
    s.send(v3_connect_with("p3", Some("admin"), None, persist()).into())
        .await;
    match s.recv(T).await.expect("connack") {
        Packet::V3_1_1Connack(c) => assert!(c.session_present()),
        other => panic!("{other:?}"),
    }
    let (t, payload, _, _) = publish_parts(&s.recv(T).await.expect("queued"));
    assert_eq!((t.as_str(), payload.as_slice()), ("q/1", &b"queued"[..]));
}

#[tokio::test]
async fn publishing_beyond_broker_capabilities_is_refused() {
    let cfg = BrokerConfig {
        max_qos: 1,
        retain_available: false,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let (mut s, c) = v5(b.addr, "s", "admin", Opts::default()).await;
    assert!(c
        .props()
        .iter()
        .any(|x| matches!(x, Property::MaximumQos(q) if q.val() == 1)));
    assert!(c
        .props()
        .iter()
        .any(|x| matches!(x, Property::RetainAvailable(r) if r.val() == 0)));
    s.send(retained_pub("r/1", b"x")).await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x9A]
    );
    let (mut s, _) = v5(b.addr, "s2", "admin", Opts::default()).await;
    s.send_raw(
        &mqtt_protocol_core::mqtt::packet::GenericPacketTrait::to_continuous_buffer(&v5_pub(
            "q/2",
            b"x",
            Qos::ExactlyOnce,
            Some(1),
        )),
    )
    .await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x9B]
    );
}

#[tokio::test(start_paused = true)]
async fn the_clients_receive_maximum_limits_what_we_send_unacknowledged() {
    use mqtt_protocol_core::mqtt::packet::ReceiveMaximum;
    let b = lwt_broker().await;
    let mut s = Raw::open(b.addr, Version::V5_0).await;
    s.mqtt.set_auto_pub_response(false);
    let o = Opts {
        props: vec![ReceiveMaximum::new(1).unwrap().into()],
        ..Default::default()
    };
    s.send(v5_connect_with("rm", Some("admin"), None, o).into())
        .await;
    s.recv(T).await.expect("connack");
    s.send(v5_sub(1, &[("w/#", Qos::AtLeastOnce)]).into()).await;
    s.suback().await;
    let (mut p, _) = v5(b.addr, "p", "admin2", Opts::default()).await;
    for i in 1..=3u16 {
        p.send(v5_pub("w/x", &[i as u8], Qos::AtLeastOnce, Some(i)).into())
            .await;
        p.recv(T).await.expect("puback");
    }
    let first = s.recv(T).await.expect("first");
    // No marker can pass a full window (deliveries leave in order), so: the broker
    // has done all it can, and nothing more was sent.
    s.expect_nothing_once_idle().await;
    // Acknowledging it opens the window for the next one.
    let Packet::V5_0Publish(first) = first else {
        panic!("{first:?}")
    };
    let ack = v5_0::Puback::builder()
        .packet_id(first.packet_id().unwrap())
        .build()
        .unwrap();
    s.send(ack.into()).await;
    assert_eq!(publish_parts(&s.recv(T).await.expect("second")).1, vec![2]);
}

#[tokio::test]
async fn session_expiry_on_disconnect_after_zero_is_a_protocol_error() {
    let b = lwt_broker().await;
    let (mut s, _) = v5(b.addr, "z", "admin", Opts::default()).await;
    let d = v5_0::Disconnect::builder()
        .reason_code(
            mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode::NormalDisconnection,
        )
        .props(vec![SessionExpiryInterval::new(30).unwrap().into()])
        .build()
        .unwrap();
    s.send_raw(&mqtt_protocol_core::mqtt::packet::GenericPacketTrait::to_continuous_buffer(&d))
        .await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x82]
    );
}

// ---- Issue 11 item 8: conformance of CONNECT and PUBLISH edge cases ----

/// Reads raw bytes from the socket until `n` arrived.
async fn read_bytes(raw: &mut Raw, n: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = vec![0u8; n];
    tokio::time::timeout(T, raw.stream.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    got
}

fn v5_connect_bytes(o: Opts) -> Vec<u8> {
    v5_connect_with("c", Some("admin"), None, o).to_continuous_buffer()
}

/// The byte of the CONNECT flags (fixed header of 2 bytes, then 7).
const FLAGS_AT: usize = 9;

#[tokio::test]
async fn an_authentication_method_gets_0x8c() {
    let b = lwt_broker().await;
    let o = Opts {
        props: vec![
            mqtt_protocol_core::mqtt::packet::AuthenticationMethod::new("SCRAM-SHA-1")
                .unwrap()
                .into(),
        ],
        ..Default::default()
    };
    let (reply, closed) = exchange(b.addr, &v5_connect_bytes(o)).await;
    assert!(closed);
    assert_eq!(
        reply.get(..4),
        Some(&[0x20, 0x03, 0x00, 0x8C][..]),
        "{reply:?}"
    );
}

/// On the paused clock: the last exchange keeps its connection open, so it ends
/// when the broker is idle (virtual `T`) rather than after five real seconds.
#[tokio::test(start_paused = true)]
async fn bad_connect_flags_are_malformed_in_both_versions() {
    let b = lwt_broker().await;
    let v3 = v3_connect("c", Some("admin"), None).to_continuous_buffer();
    let v5 = v5_connect_bytes(Opts::default());
    // Reserved bit; will QoS 3 with a will; will QoS 1 or will retain without one.
    let cases: [(u8, bool); 4] = [(0x01, false), (0x18, true), (0x08, false), (0x20, false)];
    for (bits, will_flag) in cases {
        for (connect, v5_reply) in [(&v3, None), (&v5, Some([0x20, 0x03, 0x00, 0x81]))] {
            let mut c = connect.clone();
            c[FLAGS_AT] |= bits;
            if will_flag {
                // A will flag needs a will topic and payload, which these CONNECTs
                // lack: the flags must be refused before the payload is parsed.
                c[FLAGS_AT] |= 0x04;
            }
            let (reply, closed) = exchange(b.addr, &c).await;
            assert!(closed, "flags {bits:#x}");
            match v5_reply {
                Some(r) => assert_eq!(reply.get(..4), Some(&r[..]), "flags {bits:#x}"),
                None => assert!(reply.is_empty(), "3.1.1 flags {bits:#x}: {reply:?}"),
            }
        }
    }
    // The same CONNECTs with valid flags are accepted.
    let (reply, _) = exchange(b.addr, &v5).await;
    assert_eq!(reply.get(3), Some(&0x00));
}

#[tokio::test]
async fn receive_maximum_0_and_maximum_packet_size_0_are_protocol_errors() {
    let b = lwt_broker().await;
    use mqtt_protocol_core::mqtt::packet::{MaximumPacketSize, ReceiveMaximum};
    let cases: [(Property, &[u8]); 2] = [
        (ReceiveMaximum::new(5).unwrap().into(), &[0x21, 0x00, 0x05]),
        (
            MaximumPacketSize::new(5).unwrap().into(),
            &[0x27, 0x00, 0x00, 0x00, 0x05],
        ),
    ];
    for (prop, encoded) in cases {
        let mut c = v5_connect_bytes(Opts {
            props: vec![prop],
            ..Default::default()
        });
        // The codec's builder refuses 0: patch the value in the encoded CONNECT.
        let at = c
            .windows(encoded.len())
            .position(|w| w == encoded)
            .expect("property");
        c[at + encoded.len() - 1] = 0;
        let (reply, closed) = exchange(b.addr, &c).await;
        assert!(closed);
        assert_eq!(
            reply.get(..4),
            Some(&[0x20, 0x03, 0x00, 0x82][..]),
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn packet_identifier_0_is_a_protocol_error_and_not_delivered() {
    let b = lwt_broker().await;
    let (mut sub, _) = v5(b.addr, "sub", "admin2", Opts::default()).await;
    sub.send(v5_sub(1, &[("t", Qos::AtLeastOnce)]).into()).await;
    sub.suback().await;
    // QoS 1 id 0; QoS 2 id 0 sent twice (the codec once answered that with
    // a PUBREC it could not build, and panicked).
    let publishes: [&[u8]; 2] = [
        &[0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x00, 0x00, b'x'],
        &[
            0x34, 0x07, 0x00, 0x01, b't', 0x00, 0x00, 0x00, b'x', 0x34, 0x07, 0x00, 0x01, b't',
            0x00, 0x00, 0x00, b'x',
        ],
    ];
    for bytes in publishes {
        let (mut p, _) = v5(b.addr, "p0", "admin", Opts::default()).await;
        p.send_raw(bytes).await;
        let seen = p.until_closed(T).await.expect("closed");
        assert_eq!(
            seen.iter().map(disconnect_code).collect::<Vec<_>>(),
            vec![0x82]
        );
    }
    sub.expect_own_marker_first("t").await;
}

#[tokio::test]
async fn a_subscription_identifier_from_a_client_is_a_protocol_error() {
    let b = lwt_broker().await;
    let (mut sub, _) = v5(b.addr, "sub", "admin2", Opts::default()).await;
    sub.send(v5_sub(1, &[("t", Qos::AtMostOnce)]).into()).await;
    sub.suback().await;
    let (mut p, _) = v5(b.addr, "p", "admin", Opts::default()).await;
    // PUBLISH QoS 0 "t", properties: Subscription Identifier 5.
    p.send_raw(&[0x30, 0x07, 0x00, 0x01, b't', 0x02, 0x0B, 0x05, b'x'])
        .await;
    let seen = p.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x82]
    );
    sub.expect_own_marker_first("t").await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_identifier_gets_pubcomp_0x92() {
    let b = lwt_broker().await;
    let (mut c, _) = v5(b.addr, "q2", "admin", Opts::default()).await;
    // A QoS 2 exchange the broker knows: PUBCOMP success.
    c.send(v5_pub("t", b"x", Qos::ExactlyOnce, Some(5)).into())
        .await;
    assert!(matches!(c.recv(T).await, Ok(Packet::V5_0Pubrec(_))));
    match c.recv(T).await.expect("pubcomp") {
        Packet::V5_0Pubcomp(p) => {
            assert_eq!(p.packet_id(), 5);
            assert!(p.reason_code().is_none_or(|r| r as u8 == 0));
        }
        other => panic!("{other:?}"),
    }
    // Released already, and one never used: 0x92 Packet Identifier not found.
    for id in [5u8, 9] {
        c.send_raw(&[0x62, 0x02, 0x00, id]).await;
        assert_eq!(read_bytes(&mut c, 5).await, [0x70, 0x03, 0x00, id, 0x92]);
    }
}

#[tokio::test]
async fn a_small_maximum_packet_size_still_gets_a_connack() {
    use mqtt_protocol_core::mqtt::packet::MaximumPacketSize;
    let b = lwt_broker().await;
    let small = |n: u32| Opts {
        props: vec![MaximumPacketSize::new(n).unwrap().into()],
        ..Default::default()
    };
    // Success: the optional properties are left out until the CONNACK fits.
    for limit in [13u32, 16, 20] {
        let (mut c, connack) = v5(b.addr, "small", "admin", small(limit)).await;
        assert!(connack.size() <= limit as usize, "{connack:?}");
        c.send_raw(&[0xC0, 0x00]).await;
        assert!(matches!(c.recv(T).await, Ok(Packet::V5_0Pingresp(_))));
    }
    // A refusal loses its reason string rather than the CONNACK.
    let mut r = Raw::open(b.addr, Version::V5_0).await;
    r.send(v5_connect_with("x", Some("nobody"), None, small(8)).into())
        .await;
    assert_eq!(v5_connack(&r.recv(T).await.expect("connack")), (0x86, None));
}

/// After a protocol error the broker closes gracefully: it keeps reading (and
/// discarding) what the client still sends for a short while, so a client that
/// writes before it reads (Paho's answers PUBRECs with PUBRELs) gets no broken
/// pipe and can read the DISCONNECT and its reason. Closing with the client's
/// bytes unread made the kernel answer them with a reset.
/// On the paused clock, so that the writes fall inside the broker's linger
/// however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn a_client_still_writing_after_a_protocol_error_reads_the_disconnect() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = lwt_broker().await;
    let mut s = tokio::net::TcpStream::connect(b.addr)
        .await
        .expect("connect");
    let mut bytes = v5_connect_bytes(Opts::default());
    // PUBLISH with QoS 3: malformed (DISCONNECT 0x81).
    bytes.extend_from_slice(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]);
    s.write_all(&bytes).await.expect("write");
    // The client goes on writing before it reads: PINGREQs, a little apart, while
    // the broker is already closing.
    let mut writes_failed = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if s.write_all(&[0xC0, 0x00]).await.is_err() {
            writes_failed += 1;
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(writes_failed, 0, "the broker reset the connection");
    // CONNACK, then DISCONNECT 0x81 Malformed Packet.
    let disconnect = got.iter().position(|&x| x == 0xE0).expect("a DISCONNECT");
    assert_eq!(got.get(disconnect + 2), Some(&0x81), "{got:?}");
}
