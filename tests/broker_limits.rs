//! Limits and bad input: every breach ends with the right code and the listener
//! keeps serving everyone else.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;
use tokio::io::AsyncWriteExt;
use topicgate::broker::BrokerConfig;

async fn v5_ok(addr: SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect(id, Some(user)).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

/// The broker still accepts and serves a fresh client.
async fn still_serving(addr: SocketAddr) {
    let mut raw = v5_ok(addr, "probe", "admin").await;
    raw.send_raw(&[0xC0, 0x00]).await;
    assert!(matches!(raw.recv(T).await, Ok(Packet::V5_0Pingresp(_))));
}

#[tokio::test]
async fn max_connections_answers_server_busy() {
    let cfg = BrokerConfig {
        max_connections: 2,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let _a = v5_ok(b.addr, "a", "admin").await;
    let _c = v5_ok(b.addr, "c", "admin2").await;
    let mut r = Raw::open(b.addr, Version::V5_0).await;
    r.send(v5_connect("d", Some("sensor1")).into()).await;
    assert_eq!(v5_connack(&r.recv(T).await.expect("connack")).0, 0x89);
    let mut r3 = Raw::open(b.addr, Version::V3_1_1).await;
    r3.send(v3_connect("e", Some("sensor1"), None).into()).await;
    assert_eq!(v3_connack(&r3.recv(T).await.expect("connack")), 0x03);
    drop(_a);
    // A slot frees up once the broker has seen a leave: retry a bounded number of times.
    let mut accepted = false;
    for _ in 0..100 {
        let mut again = Raw::open(b.addr, Version::V5_0).await;
        again.send(v5_connect("a", Some("admin")).into()).await;
        match v5_connack(&again.recv(T).await.expect("connack")).0 {
            0 => {
                accepted = true;
                break;
            }
            0x89 => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("CONNACK 0x{other:02x}"),
        }
    }
    assert!(accepted, "no slot freed up");
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_closes_silent_connections() {
    let cfg = BrokerConfig {
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    // Silence after TCP connect.
    let mut silent = Raw::open(b.addr, Version::V5_0).await;
    // Slowloris: half a CONNECT, then nothing.
    let mut slow = Raw::open(b.addr, Version::V5_0).await;
    slow.send_raw(&[0x10, 0x20, 0x00, 0x04, b'M']).await;
    let start = tokio::time::Instant::now();
    assert!(silent.until_closed(T).await.is_ok());
    assert!(slow.until_closed(T).await.is_ok());
    // Exact on the paused clock: by the timeout, counted from the accept.
    assert!(
        start.elapsed() <= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    still_serving(b.addr).await;
}

#[tokio::test]
async fn oversized_packets_are_refused_with_0x95() {
    let cfg = BrokerConfig {
        max_packet_size: 1024,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut s = v5_ok(b.addr, "s", "admin").await;
    s.send_raw(&[0x30, 0xff, 0xff, 0xff, 0x7f]).await; // announces 256 MiB
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x95]
    );
    // Before CONNECT: just closed, nothing allocated.
    let mut pre = Raw::open(b.addr, Version::V5_0).await;
    pre.send_raw(&[0x10, 0xff, 0xff, 0xff, 0x7f]).await;
    assert!(pre.until_closed(T).await.is_ok());
    still_serving(b.addr).await;
}

#[tokio::test]
async fn receive_maximum_exceeded_disconnects_0x93() {
    let cfg = BrokerConfig {
        receive_maximum: 2,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut s = v5_ok(b.addr, "s", "admin").await;
    // Three QoS 2 PUBLISHes without PUBREL: the third exceeds the window.
    for pid in 1..=3u16 {
        s.send_raw(&v5_pub("a/b", b"x", Qos::ExactlyOnce, Some(pid)).to_continuous_buffer())
            .await;
    }
    let seen = s.until_closed(T).await.expect("closed");
    let codes: Vec<u8> = seen
        .iter()
        .filter(|p| matches!(p, Packet::V5_0Disconnect(_)))
        .map(disconnect_code)
        .collect();
    assert_eq!(codes, vec![0x93]);
}

#[tokio::test]
async fn subscriptions_per_session_are_limited() {
    let cfg = BrokerConfig {
        max_subscriptions_per_session: 2,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut s = v5_ok(b.addr, "s", "admin").await;
    s.send(
        v5_sub(
            1,
            &[
                ("a", Qos::AtMostOnce),
                ("b", Qos::AtMostOnce),
                ("c", Qos::AtMostOnce),
            ],
        )
        .into(),
    )
    .await;
    match s.recv(T).await.expect("suback") {
        Packet::V5_0Suback(x) => {
            let codes: Vec<u8> = x.reason_codes().iter().map(|c| *c as u8).collect();
            assert_eq!(codes, vec![0, 0, 0x97]);
        }
        other => panic!("{other:?}"),
    }
}

/// On the paused clock: the publisher's wait for room is a broker timer, and
/// "only the window" is checked once the broker has nothing more to do.
#[tokio::test(start_paused = true)]
async fn outgoing_inflight_window_and_queue_are_bounded() {
    let cfg = BrokerConfig {
        receive_maximum: 2,
        max_queued_messages: 3,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    // A subscriber that never acknowledges.
    let mut sub = Raw::open(b.addr, Version::V5_0).await;
    sub.mqtt.set_auto_pub_response(false);
    sub.send(v5_connect("sub", Some("admin")).into()).await;
    sub.recv(T).await.expect("connack");
    sub.send(v5_sub(1, &[("a/#", Qos::AtLeastOnce)]).into())
        .await;
    sub.recv(T).await.expect("suback");
    let mut p = v5_ok(b.addr, "pub", "admin2").await;
    for i in 0..10u16 {
        p.send(v5_pub("a/b", &[i as u8], Qos::AtLeastOnce, Some(i + 1)).into())
            .await;
        p.recv(T).await.expect("puback");
    }
    // Only the window (2) is in flight.
    for _ in 0..2 {
        assert!(matches!(sub.recv(T).await, Ok(Packet::V5_0Publish(_))));
    }
    sub.expect_nothing_once_idle().await;
    // Behind the window: 3 queued by the connection and 3 in the session's mailbox.
    // The publisher waited for room, then the last 2 copies were dropped.
    eventually(|| b.broker.stats().messages_dropped() == 2).await;
    sub.expect_nothing_once_idle().await; // and no more drops once all is done
    assert_eq!(b.broker.stats().messages_dropped(), 2);
}

#[tokio::test]
async fn v311_subscribe_with_reserved_option_bits_is_malformed() {
    let b = lwt_broker().await;
    let mut s = Raw::open(b.addr, Version::V3_1_1).await;
    s.send(v3_connect("s", Some("admin"), None).into()).await;
    s.recv(T).await.expect("connack");
    // SUBSCRIBE id 1, filter "a", options 0x04 (No Local bit: reserved in 3.1.1).
    s.send_raw(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04])
        .await;
    assert!(s.until_closed(T).await.expect("closed").is_empty());
}

#[tokio::test]
async fn garbage_and_truncated_frames_never_wedge_the_listener() {
    let b = lwt_broker().await;
    let inputs: Vec<Vec<u8>> = vec![
        vec![0x00; 64],
        vec![0xff; 64],
        vec![0x10, 0x80, 0x80, 0x80, 0x80, 0x01], // 5-byte remaining length
        vec![
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ], // level 3
        vec![0x20, 0x02, 0x00, 0x00],             // CONNACK from a client
        vec![0x30, 0x05, 0x00, 0x03, b'a', 0xff, b'b'], // before CONNECT
    ];
    for input in inputs {
        let mut raw = Raw::open(b.addr, Version::V5_0).await;
        raw.send_raw(&input).await;
        let _ = raw.stream.shutdown().await;
        let _ = raw.until_closed(T).await;
    }
    // After CONNECT: invalid UTF-8 topic, wildcard topic, CONNECT twice.
    for input in [
        vec![0x30, 0x06, 0x00, 0x03, b'a', 0xff, b'b', 0x00],
        vec![0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00],
        v5_connect("again", Some("admin")).to_continuous_buffer(),
    ] {
        let mut raw = v5_ok(b.addr, "bad", "admin").await;
        raw.send_raw(&input).await;
        let seen = raw.until_closed(T).await.expect("closed");
        assert!(
            seen.iter().all(|p| matches!(p, Packet::V5_0Disconnect(_))),
            "{seen:?}"
        );
    }
    still_serving(b.addr).await;
}

#[tokio::test]
async fn wrong_fixed_header_flags_are_malformed() {
    let b = lwt_broker().await;
    // SUBSCRIBE with flags 0000 (must be 0010): v5 gets DISCONNECT 0x81.
    let mut s = v5_ok(b.addr, "s", "admin").await;
    s.send_raw(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00])
        .await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x81]
    );
    // A valid PINGREQ in the same write is still answered first.
    let mut s = v5_ok(b.addr, "s2", "admin").await;
    s.send_raw(&[0xc0, 0x00, 0xc1, 0x00]).await;
    let seen = s.until_closed(T).await.expect("closed");
    assert!(
        matches!(seen.first(), Some(Packet::V5_0Pingresp(_))),
        "{seen:?}"
    );
    // 3.1.1: closed.
    let mut s3 = Raw::open(b.addr, Version::V3_1_1).await;
    s3.send(v3_connect("s3", Some("admin"), None).into()).await;
    s3.recv(T).await.expect("connack");
    s3.send_raw(&[0xe2, 0x00]).await;
    assert!(s3.until_closed(T).await.expect("closed").is_empty());
}

/// On the real clock: with 150 sockets, part of the flood waits in the kernel's
/// accept queue, which the paused clock does not see; it would jump ahead to the
/// next timer while the kernel still holds connections (decision 0028).
#[tokio::test]
async fn a_flood_of_silent_connections_does_not_stop_connected_clients() {
    let cfg = BrokerConfig {
        max_connections: 20,
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut sub = v5_ok(b.addr, "sub", "admin").await;
    sub.send(v5_sub(1, &[("f/#", Qos::AtMostOnce)]).into())
        .await;
    sub.recv(T).await.expect("suback");
    let mut publ = v5_ok(b.addr, "pub", "admin2").await;
    let mut flood = Vec::new();
    for _ in 0..150 {
        if let Ok(s) = tokio::net::TcpStream::connect(b.addr).await {
            flood.push(s);
        }
    }
    // Connected clients keep exchanging messages during the flood.
    for i in 0..5u8 {
        publ.send(v5_pub("f/x", &[i], Qos::AtMostOnce, None).into())
            .await;
        let (_, p, _, _) = publish_parts(&sub.recv(T).await.expect("message during flood"));
        assert_eq!(p, vec![i]);
    }
    // Once the silent connections time out, newcomers are served again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(flood);
    still_serving(b.addr).await;
}
