//! semantics.md §4, CONNECT rows, both protocol versions, over real sockets.

mod support;

use mqtt_protocol_core::mqtt::packet::Qos;
use mqtt_protocol_core::mqtt::Version;
use support::packets::*;
use support::*;
use topicgate::broker::{BrokerConfig, IdentityMode};

async fn v5(
    addr: std::net::SocketAddr,
    c: mqtt_protocol_core::mqtt::packet::v5_0::Connect,
) -> (Raw, (u8, Option<String>)) {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(c.into()).await;
    let p = raw.recv(T).await.expect("connack");
    let r = v5_connack(&p);
    (raw, r)
}

async fn v3(
    addr: std::net::SocketAddr,
    c: mqtt_protocol_core::mqtt::packet::v3_1_1::Connect,
) -> (Raw, u8) {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    raw.send(c.into()).await;
    let p = raw.recv(T).await.expect("connack");
    let r = v3_connack(&p);
    (raw, r)
}

#[tokio::test]
async fn known_client_connects_in_both_versions() {
    let b = lwt_broker().await;
    let (_a, (rc, _)) = v5(b.addr, v5_connect("s1", Some("sensor1"))).await;
    assert_eq!(rc, 0x00);
    let (_b, rc) = v3(b.addr, v3_connect("s2", Some("sensor2"), None)).await;
    assert_eq!(rc, 0x00);
}

#[tokio::test]
async fn unknown_identity_is_refused_bad_username_or_password() {
    let b = lwt_broker().await;
    let (mut r, (rc, _)) = v5(b.addr, v5_connect("x", Some("nobody"))).await;
    assert_eq!(rc, 0x86);
    assert!(r.until_closed(T).await.is_ok());
    let (mut r, rc) = v3(b.addr, v3_connect("x", Some("nobody"), None)).await;
    assert_eq!(rc, 0x04);
    assert!(r.until_closed(T).await.is_ok());
    // No username and no --anonymous.
    let (_r, (rc, _)) = v5(b.addr, v5_connect("x", None)).await;
    assert_eq!(rc, 0x86);
}

#[tokio::test]
async fn disabled_client_is_not_authorized() {
    let b = lwt_broker().await;
    let (_r, (rc, _)) = v5(b.addr, v5_connect("d", Some("disabled1"))).await;
    assert_eq!(rc, 0x87);
    let (_r, rc) = v3(b.addr, v3_connect("d", Some("disabled1"), None)).await;
    assert_eq!(rc, 0x05);
}

#[tokio::test]
async fn will_topic_of_another_client_is_refused_naming_the_topic() {
    let b = lwt_broker().await;
    let will = Some((
        "clients/sensor2/status",
        &b"offline"[..],
        Qos::AtLeastOnce,
        false,
        0,
    ));
    let (_r, (rc, reason)) = v5(
        b.addr,
        v5_connect_with("s1", Some("sensor1"), will, Opts::default()),
    )
    .await;
    assert_eq!(rc, 0x87);
    let reason = reason.expect("reason string");
    assert!(reason.contains("clients/sensor2/status"), "{reason}");
    let will3 = Some((
        "clients/sensor2/status",
        &b"offline"[..],
        Qos::AtLeastOnce,
        false,
    ));
    let (_r, rc) = v3(b.addr, v3_connect("s1", Some("sensor1"), will3)).await;
    assert_eq!(rc, 0x05);
    // Its own will topic is fine.
    let ok = Some((
        "clients/sensor1/status",
        &b"offline"[..],
        Qos::AtLeastOnce,
        false,
        0,
    ));
    let (_r, (rc, _)) = v5(
        b.addr,
        v5_connect_with("s1", Some("sensor1"), ok, Opts::default()),
    )
    .await;
    assert_eq!(rc, 0x00);
}

#[tokio::test]
async fn unsupported_will_qos_or_retain_is_refused() {
    let cfg = BrokerConfig {
        max_qos: 1,
        retain_available: false,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let will = Some((
        "clients/sensor1/status",
        &b"x"[..],
        Qos::ExactlyOnce,
        false,
        0,
    ));
    let (_r, (rc, _)) = v5(
        b.addr,
        v5_connect_with("s1", Some("sensor1"), will, Opts::default()),
    )
    .await;
    assert_eq!(rc, 0x9B);
    let will = Some((
        "clients/sensor1/status",
        &b"x"[..],
        Qos::AtMostOnce,
        true,
        0,
    ));
    let (_r, (rc, _)) = v5(
        b.addr,
        v5_connect_with("s1", Some("sensor1"), will, Opts::default()),
    )
    .await;
    assert_eq!(rc, 0x9A);
    // 3.1.1: the connection is closed without CONNACK.
    let mut raw = Raw::open(b.addr, Version::V3_1_1).await;
    let will3 = Some(("clients/sensor1/status", &b"x"[..], Qos::ExactlyOnce, false));
    raw.send(v3_connect("s1", Some("sensor1"), will3).into())
        .await;
    assert_eq!(raw.until_closed(T).await.expect("closed").len(), 0);
}

#[tokio::test]
async fn client_id_of_another_authentication_name_is_refused() {
    let b = lwt_broker().await;
    let (_a, (rc, _)) = v5(b.addr, v5_connect("shared-id", Some("sensor1"))).await;
    assert_eq!(rc, 0);
    let (_b, (rc, reason)) = v5(b.addr, v5_connect("shared-id", Some("sensor2"))).await;
    assert_eq!(rc, 0x87);
    assert!(reason
        .unwrap_or_default()
        .contains("another authentication name"));
    let (_c, rc) = v3(b.addr, v3_connect("shared-id", Some("sensor2"), None)).await;
    assert_eq!(rc, 0x05);
}

#[tokio::test]
async fn passwords_are_checked_against_argon2_hashes() {
    let policy = support::policy::compile(&support::policy::lwt_yaml(
        true,
        Some(&support::policy::hash("s3cret")),
    ));
    let b = start_with(policy, BrokerConfig::default(), IdentityMode::Password).await;
    let good = v5_connect_with("a", Some("sensor1"), None, Opts::password("s3cret"));
    let (_r, (rc, _)) = v5(b.addr, good).await;
    assert_eq!(rc, 0);
    let bad = v5_connect_with("b", Some("sensor1"), None, Opts::password("wrong"));
    let (_r, (rc, _)) = v5(b.addr, bad).await;
    assert_eq!(rc, 0x86);
    // A client without a passwordHash cannot log in with a password.
    let none = v5_connect_with("c", Some("sensor2"), None, Opts::password("x"));
    let (_r, (rc, _)) = v5(b.addr, none).await;
    assert_eq!(rc, 0x86);
    let bad3 = v3_connect_with("d", Some("sensor1"), None, Opts::password("wrong"));
    let (_r, rc) = v3(b.addr, bad3).await;
    assert_eq!(rc, 0x04);
}

#[tokio::test]
async fn dev_anonymous_maps_clients_without_username() {
    let b = start_with(
        support::policy::lwt(),
        BrokerConfig::default(),
        IdentityMode::Dev {
            anonymous: Some("actuator1".into()),
        },
    )
    .await;
    let (mut r, (rc, _)) = v5(b.addr, v5_connect("anon", None)).await;
    assert_eq!(rc, 0);
    // ...and acts under actuator1's rights: may not publish.
    r.send(v5_pub("clients/x/status", b"1", Qos::AtLeastOnce, Some(1)).into())
        .await;
    match r.recv(T).await.expect("puback") {
        mqtt_protocol_core::mqtt::packet::Packet::V5_0Puback(p) => {
            assert_eq!(p.reason_code().map(|c| c as u8), Some(0x87))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn assigned_client_identifier_for_empty_id() {
    let b = lwt_broker().await;
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.send(v5_connect("", Some("sensor1")).into()).await;
    match raw.recv(T).await.expect("connack") {
        mqtt_protocol_core::mqtt::packet::Packet::V5_0Connack(c) => {
            assert_eq!(c.reason_code() as u8, 0);
            assert!(c.props().iter().any(|p| matches!(
                p,
                mqtt_protocol_core::mqtt::packet::Property::AssignedClientIdentifier(_)
            )));
        }
        other => panic!("{other:?}"),
    }
    // 3.1.1 with an empty ID and clean session 0: identifier rejected.
    let c = v3_connect_with(
        "",
        Some("sensor1"),
        None,
        Opts {
            resume: true,
            ..Default::default()
        },
    );
    let (_r, rc) = v3(b.addr, c).await;
    assert_eq!(rc, 0x02);
}
