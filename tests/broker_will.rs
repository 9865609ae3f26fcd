//! semantics.md §5: every case of Last Will and Testament, over real sockets.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{
    ContentType, Packet, Property, Qos, SessionExpiryInterval, UserProperty,
};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;

const WILL_TOPIC: &str = "clients/sensor1/status";

async fn watcher(addr: SocketAddr, id: &str, user: &str, v: Version, qos: Qos) -> Raw {
    let mut raw = Raw::open(addr, v).await;
    if v == Version::V5_0 {
        raw.send(v5_connect(id, Some(user)).into()).await;
        assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
        raw.send(v5_sub(1, &[("clients/+/status", qos)]).into())
            .await;
    } else {
        raw.send(v3_connect(id, Some(user), None).into()).await;
        assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
        raw.send(v3_sub(1, &[("clients/+/status", qos)]).into())
            .await;
    }
    raw.recv(T).await.expect("suback");
    raw
}

fn expiry(secs: u32) -> Opts {
    Opts {
        props: vec![SessionExpiryInterval::new(secs).unwrap().into()],
        ..Default::default()
    }
}

/// sensor1 over v5 with a QoS 1 will on its own status topic.
async fn sensor_v5(addr: SocketAddr, delay: u32, o: Opts) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    let will = Some((WILL_TOPIC, &b"offline"[..], Qos::AtLeastOnce, false, delay));
    raw.send(v5_connect_with("sensor1-cid", Some("sensor1"), will, o).into())
        .await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

async fn sensor_v3(addr: SocketAddr) -> Raw {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    let will = Some((WILL_TOPIC, &b"offline"[..], Qos::AtLeastOnce, false));
    raw.send(v3_connect("sensor1-cid", Some("sensor1"), will).into())
        .await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    raw
}

/// A watcher reads no will before this marker (see `Raw::expect_marker_first`).
const MARKER_TOPIC: &str = "clients/marker/status";

/// admin, who may publish the marker on a watched topic.
async fn marker_source(addr: SocketAddr) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect("marker", Some("admin")).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

async fn expect_will(w: &mut Raw) -> Packet {
    let p = w.recv(T).await.expect("will");
    let (t, payload, _, _) = publish_parts(&p);
    assert_eq!(
        (t.as_str(), payload.as_slice()),
        (WILL_TOPIC, &b"offline"[..])
    );
    p
}

#[tokio::test]
async fn socket_closed_without_disconnect_publishes_the_will() {
    let b = lwt_broker().await;
    let mut w5 = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut w3 = watcher(b.addr, "a2", "actuator2", Version::V3_1_1, Qos::AtLeastOnce).await;
    let s = sensor_v5(b.addr, 0, Opts::default()).await;
    drop(s);
    expect_will(&mut w5).await;
    expect_will(&mut w3).await;
    let s = sensor_v3(b.addr).await;
    drop(s);
    expect_will(&mut w5).await;
    expect_will(&mut w3).await;
}

#[tokio::test]
#[allow(deprecated)]
async fn connection_reset_publishes_the_will() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let s = sensor_v5(b.addr, 0, Opts::default()).await;
    s.stream.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(s);
    expect_will(&mut w).await;
}

#[tokio::test(start_paused = true)]
async fn keep_alive_expiry_publishes_the_will_and_v5_gets_0x8d() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let start = tokio::time::Instant::now();
    let mut s = sensor_v5(
        b.addr,
        0,
        Opts {
            keep_alive: 1,
            ..Default::default()
        },
    )
    .await;
    let seen = s.until_closed(T).await.expect("closed by the broker");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8D]
    );
    // The paused clock makes this exact: one and a half times the keep-alive.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1600),
        "closed too late: {waited:?}"
    );
    expect_will(&mut w).await;
}

#[tokio::test(start_paused = true)]
async fn keep_alive_is_kept_by_pingreq() {
    let b = lwt_broker().await;
    let mut s = sensor_v5(
        b.addr,
        0,
        Opts {
            keep_alive: 1,
            ..Default::default()
        },
    )
    .await;
    // 2.4 s in all, past the 1.5 s a silent client gets.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_millis(600)).await;
        s.send_raw(&[0xC0, 0x00]).await;
        assert!(matches!(s.recv(T).await, Ok(Packet::V5_0Pingresp(_))));
    }
}

/// A client that talks less often than a connection stays busy (5-10 s) but
/// within its keep-alive: its connection rests between packets, and its
/// deadline is kept by the broker's `KeepAliveWatch` instead of a timer of its
/// own (decision 0036). Each packet must move the deadline, not cut it off.
#[tokio::test(start_paused = true)]
async fn a_resting_connection_whose_client_talks_in_time_is_kept() {
    let b = lwt_broker().await;
    let mut s = sensor_v5(
        b.addr,
        0,
        Opts {
            keep_alive: 10,
            ..Default::default()
        },
    )
    .await;
    let watched = || b.broker.shared().keepalive.len();
    // 48 s in all, past the 15 s a silent client gets.
    for _ in 0..4 {
        // Slept, not advanced: the paused clock then stops at each of the
        // broker's timers in turn (its rest checks) instead of jumping past them.
        tokio::time::sleep(Duration::from_secs(12)).await;
        // Rested since the last packet: its deadline is watched.
        eventually(|| watched() == 1).await;
        s.send_raw(&[0xC0, 0x00]).await;
        assert!(matches!(s.recv(T).await, Ok(Packet::V5_0Pingresp(_))));
    }
}

#[tokio::test]
async fn malformed_packet_publishes_the_will_after_disconnect_0x81() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut s = sensor_v5(b.addr, 0, Opts::default()).await;
    // PUBLISH with QoS 3.
    s.send_raw(&[0x36, 0x06, 0x00, 0x01, b'a', 0x00, 0x01, 0x00])
        .await;
    let seen = s.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x81]
    );
    expect_will(&mut w).await;
    // 3.1.1: a malformed packet closes; the will is published too.
    let mut s = sensor_v3(b.addr).await;
    s.send_raw(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01])
        .await;
    assert!(s.until_closed(T).await.is_ok());
    expect_will(&mut w).await;
}

#[tokio::test]
async fn disconnect_with_will_message_0x04_publishes_it() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut s = sensor_v5(b.addr, 0, Opts::default()).await;
    s.send_raw(&[0xE0, 0x01, 0x04]).await;
    assert!(s.until_closed(T).await.is_ok());
    expect_will(&mut w).await;
}

#[tokio::test]
async fn normal_disconnect_in_every_wire_form_discards_the_will() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    for form in [
        &[0xE0u8, 0x00][..],
        &[0xE0, 0x01, 0x00],
        &[0xE0, 0x02, 0x00, 0x00],
    ] {
        let mut s = sensor_v5(b.addr, 0, Opts::default()).await;
        s.send_raw(form).await;
        assert!(s.until_closed(T).await.is_ok(), "{form:02x?}");
    }
    let mut s = sensor_v3(b.addr).await;
    s.send_raw(&[0xE0, 0x00]).await;
    assert!(s.until_closed(T).await.is_ok());
    b.gone("sensor1-cid").await;
    w.expect_marker_first(&mut m, MARKER_TOPIC).await;
    assert_eq!(b.broker.stats().wills_published.get(), 0);
}

#[tokio::test]
async fn takeover_publishes_the_old_connections_will_and_sends_0x8e() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    let mut old = sensor_v5(b.addr, 0, Opts::default()).await;
    // The new connection has a different will payload, to tell them apart.
    let mut new = Raw::open(b.addr, Version::V5_0).await;
    let will = Some((WILL_TOPIC, &b"new-will"[..], Qos::AtLeastOnce, false, 0));
    new.send(v5_connect_with("sensor1-cid", Some("sensor1"), will, Opts::default()).into())
        .await;
    let seen = old.until_closed(T).await.expect("old closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x8E]
    );
    assert_eq!(v5_connack(&new.recv(T).await.expect("connack")).0, 0);
    expect_will(&mut w).await; // payload "offline": the OLD will
    w.expect_marker_first(&mut m, MARKER_TOPIC).await; // and not the new one
                                                       // 3.1.1 takeover: the old one is closed, its will published.
    let old3 = sensor_v3(b.addr).await;
    let mut old3 = old3;
    let mut new3 = Raw::open(b.addr, Version::V3_1_1).await;
    new3.send(v3_connect("sensor1-cid", Some("sensor1"), None).into())
        .await;
    assert!(old3.until_closed(T).await.is_ok());
    let _ = w
        .recv(T)
        .await
        .expect("will of the v5 'new' connection taken over by old3");
    expect_will(&mut w).await;
}

#[tokio::test]
async fn a_new_connections_will_is_not_published_when_an_older_one_ends() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    let mut old = Raw::open(b.addr, Version::V5_0).await;
    old.send(v5_connect("sensor1-cid", Some("sensor1")).into())
        .await; // no will
    old.recv(T).await.expect("connack");
    let _new = sensor_v5(b.addr, 0, Opts::default()).await; // with a will
    assert!(old.until_closed(T).await.is_ok());
    w.expect_marker_first(&mut m, MARKER_TOPIC).await;
}

#[tokio::test(start_paused = true)]
async fn will_delay_publishes_later_and_resume_cancels_it() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    // Delay 1 s, session expiry 60 s: published after 1 s (exact on the paused clock).
    let start = tokio::time::Instant::now();
    drop(sensor_v5(b.addr, 1, expiry(60)).await);
    expect_will(&mut w).await;
    let t = start.elapsed();
    assert!(
        t >= Duration::from_secs(1) && t < Duration::from_millis(1100),
        "{t:?}"
    );

    // Resumed (Clean Start 0) before the delay: never published.
    drop(sensor_v5(b.addr, 2, expiry(60)).await);
    b.offline("sensor1-cid").await;
    let mut again = Raw::open(b.addr, Version::V5_0).await;
    let o = Opts {
        resume: true,
        ..expiry(60)
    };
    again
        .send(v5_connect_with("sensor1-cid", Some("sensor1"), None, o).into())
        .await;
    match again.recv(T).await.expect("connack") {
        Packet::V5_0Connack(c) => assert!(c.session_present()),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(3)).await; // past the 2 s delay
    w.expect_marker_first(&mut m, MARKER_TOPIC).await;
    // That resumed connection has no will: its abrupt end publishes nothing (no stale will).
    drop(again);
    b.offline("sensor1-cid").await;
    tokio::time::advance(Duration::from_secs(3)).await;
    w.expect_marker_first(&mut m, MARKER_TOPIC).await;
}

#[tokio::test(start_paused = true)]
async fn clean_start_reconnect_publishes_the_pending_will_at_once() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    drop(sensor_v5(b.addr, 30, expiry(60)).await);
    b.offline("sensor1-cid").await;
    w.expect_marker_first(&mut m, MARKER_TOPIC).await; // pending, not published
    let start = tokio::time::Instant::now();
    let mut fresh = Raw::open(b.addr, Version::V5_0).await;
    fresh
        .send(v5_connect("sensor1-cid", Some("sensor1")).into())
        .await;
    fresh.recv(T).await.expect("connack");
    let p = w.recv(T).await.expect("will at once");
    assert_eq!(publish_parts(&p).0, WILL_TOPIC);
    // At once: no timer ran (the paused clock moves only to fire one).
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn will_delay_longer_than_session_expiry_fires_at_expiry() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let start = tokio::time::Instant::now();
    drop(sensor_v5(b.addr, 60, expiry(1)).await);
    expect_will(&mut w).await;
    let t = start.elapsed();
    assert!(
        t >= Duration::from_secs(1) && t < Duration::from_millis(1100),
        "{t:?}"
    );
    eventually(|| !b.broker.shared().sessions.contains("sensor1-cid")).await;
}

#[tokio::test(start_paused = true)]
async fn will_is_authorized_again_when_it_fires() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut m = marker_source(b.addr).await;
    let s = sensor_v5(b.addr, 1, expiry(60)).await;
    drop(s);
    // The policy is reloaded before the will fires: sensor1 may no longer publish.
    b.broker
        .replace_policy(support::policy::compile(&support::policy::lwt_yaml(
            false, None,
        )));
    tokio::time::advance(Duration::from_secs(2)).await; // past the 1 s delay
    eventually(|| b.broker.stats().wills_dropped.get() == 1).await;
    w.expect_marker_first(&mut m, MARKER_TOPIC).await;
    assert_eq!(b.broker.stats().wills_published.get(), 0);
}

#[tokio::test]
async fn will_retain_and_properties_reach_subscribers() {
    let b = lwt_broker().await;
    let mut w5 = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut w3 = watcher(b.addr, "a2", "actuator2", Version::V3_1_1, Qos::AtMostOnce).await;
    let mut s = Raw::open(b.addr, Version::V5_0).await;
    let will = Some((WILL_TOPIC, &b"offline"[..], Qos::ExactlyOnce, true, 0));
    let o = Opts {
        will_props: vec![
            ContentType::new("text/plain").unwrap().into(),
            UserProperty::new("reason", "lost").unwrap().into(),
        ],
        ..Default::default()
    };
    s.send(v5_connect_with("sensor1-cid", Some("sensor1"), will, o).into())
        .await;
    s.recv(T).await.expect("connack");
    drop(s);
    match expect_will(&mut w5).await {
        Packet::V5_0Publish(p) => {
            assert_eq!(p.qos(), Qos::AtLeastOnce, "min(will 2, subscription 1)");
            assert!(p
                .props()
                .iter()
                .any(|x| matches!(x, Property::ContentType(c) if c.val() == "text/plain")));
            assert!(p
                .props()
                .iter()
                .any(|x| matches!(x, Property::UserProperty(u) if u.key() == "reason")));
        }
        other => panic!("{other:?}"),
    }
    match expect_will(&mut w3).await {
        Packet::V3_1_1Publish(p) => assert_eq!(p.qos(), Qos::AtMostOnce),
        other => panic!("{other:?}"),
    }
    // Retained: a later subscriber gets it with the retain flag.
    let mut late = watcher(b.addr, "late", "admin", Version::V3_1_1, Qos::AtLeastOnce).await;
    let (t, _, _, retain) = publish_parts(&late.recv(T).await.expect("retained will"));
    assert_eq!((t.as_str(), retain), (WILL_TOPIC, true));
}

#[tokio::test]
async fn policy_close_of_v3_publisher_publishes_its_will() {
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let mut s = sensor_v3(b.addr).await;
    s.send(v3_pub("clients/sensor2/status", b"forged", Qos::AtMostOnce, None).into())
        .await;
    assert!(s.until_closed(T).await.is_ok());
    expect_will(&mut w).await;
}

#[tokio::test(start_paused = true)]
async fn will_message_expiry_counts_from_publication() {
    use mqtt_protocol_core::mqtt::packet::MessageExpiryInterval;
    let b = lwt_broker().await;
    let mut w = watcher(b.addr, "a1", "actuator1", Version::V5_0, Qos::AtLeastOnce).await;
    let o = Opts {
        will_props: vec![MessageExpiryInterval::new(1).unwrap().into()],
        ..Default::default()
    };
    let s = sensor_v5(b.addr, 0, o).await;
    // The connection outlives the expiry interval; the will must still be delivered.
    tokio::time::advance(Duration::from_millis(1300)).await;
    drop(s);
    match expect_will(&mut w).await {
        Packet::V5_0Publish(p) => assert!(p
            .props()
            .iter()
            .any(|x| matches!(x, Property::MessageExpiryInterval(m) if m.val() == 1))),
        other => panic!("{other:?}"),
    }
}
