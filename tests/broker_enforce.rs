//! semantics.md §4, PUBLISH and SUBSCRIBE rows, both protocol versions.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use support::packets::*;
use support::*;

async fn v5_client(addr: std::net::SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect(id, Some(user)).into()).await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

async fn v3_client(addr: std::net::SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    raw.send(v3_connect(id, Some(user), None).into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    raw
}

#[tokio::test]
async fn v5_denied_qos1_and_qos2_publish_get_0x87_and_connection_stays() {
    let b = lwt_broker().await;
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    s.send(v5_pub("clients/sensor2/status", b"x", Qos::AtLeastOnce, Some(1)).into())
        .await;
    match s.recv(T).await.expect("puback") {
        Packet::V5_0Puback(p) => {
            assert_eq!(p.reason_code().map(|c| c as u8), Some(0x87));
            let rs = reason_string(p.props.as_deref().unwrap_or_default()).unwrap_or_default();
            assert!(rs.contains("clients/sensor2/status"), "{rs}");
        }
        other => panic!("{other:?}"),
    }
    s.send(v5_pub("clients/sensor2/status", b"x", Qos::ExactlyOnce, Some(2)).into())
        .await;
    match s.recv(T).await.expect("pubrec") {
        Packet::V5_0Pubrec(p) => assert_eq!(p.reason_code().map(|c| c as u8), Some(0x87)),
        other => panic!("{other:?}"),
    }
    // Still connected: an allowed publish is acknowledged with success.
    s.send(v5_pub("clients/sensor1/status", b"x", Qos::AtLeastOnce, Some(3)).into())
        .await;
    match s.recv(T).await.expect("puback") {
        Packet::V5_0Puback(p) => assert_eq!(p.reason_code().map(|c| c as u8).unwrap_or(0), 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.broker.stats().publish_denied(), 2);
}

#[tokio::test]
async fn v5_denied_qos0_publish_is_dropped_counted_and_not_delivered() {
    let b = lwt_broker().await;
    let mut a = v5_client(b.addr, "a1", "actuator1").await;
    a.send(v5_sub(1, &[("clients/+/status", Qos::AtLeastOnce)]).into())
        .await;
    a.recv(T).await.expect("suback");
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    s.send(v5_pub("clients/sensor2/status", b"forged", Qos::AtMostOnce, None).into())
        .await;
    eventually(|| b.broker.stats().publish_denied_qos0_dropped.get() == 1).await;
    // The connection is still usable, and its next, allowed message is the first
    // that a receives: the forged one, published before it, was not routed.
    s.send(v5_pub("clients/sensor1/status", b"ok", Qos::AtMostOnce, None).into())
        .await;
    let (topic, payload, _, _) = publish_parts(&a.recv(T).await.expect("publish"));
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("clients/sensor1/status", &b"ok"[..])
    );
}

#[tokio::test]
async fn v3_denied_publish_closes_the_connection_any_qos() {
    let b = lwt_broker().await;
    for (i, qos) in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let mut s = v3_client(b.addr, &format!("s{i}"), "sensor1").await;
        let pid = (qos != Qos::AtMostOnce).then_some(7);
        s.send(v3_pub("clients/sensor2/status", b"x", qos, pid).into())
            .await;
        let seen = s.until_closed(T).await.expect("closed");
        assert!(seen.is_empty(), "no acknowledgement expected: {seen:?}");
    }
}

#[tokio::test]
async fn publishing_to_dollar_topics_is_denied() {
    let b = lwt_broker().await;
    let mut s = v5_client(b.addr, "adm", "admin").await;
    s.send(v5_pub("$SYS/x", b"x", Qos::AtLeastOnce, Some(1)).into())
        .await;
    match s.recv(T).await.expect("puback") {
        Packet::V5_0Puback(p) => assert_eq!(p.reason_code().map(|c| c as u8), Some(0x87)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_will_on_a_dollar_topic_is_refused_even_when_the_bindings_cover_it() {
    // admin may publish `#`, which never covers `$` topics.
    let b = lwt_broker().await;
    let mut r = Raw::open(b.addr, Version::V5_0).await;
    let will = Some(("$SYS/gone", &b"x"[..], Qos::AtMostOnce, false, 0));
    r.send(v5_connect_with("adm-will", Some("admin"), will, Opts::default()).into())
        .await;
    let (code, reason) = v5_connack(&r.recv(T).await.expect("connack"));
    assert_eq!(code, 0x87);
    assert!(reason.unwrap_or_default().contains("$SYS/gone"));
}

#[tokio::test]
async fn subscribe_denies_per_filter_and_grants_the_others() {
    let b = lwt_broker().await;
    let mut a = v5_client(b.addr, "a1", "actuator1").await;
    a.send(
        v5_sub(
            1,
            &[
                ("clients/+/status", Qos::AtLeastOnce),
                ("clients/#", Qos::AtLeastOnce),
                ("clients/sensor1/status", Qos::ExactlyOnce),
                ("$share/g/clients/+/status", Qos::AtMostOnce),
            ],
        )
        .into(),
    )
    .await;
    match a.recv(T).await.expect("suback") {
        Packet::V5_0Suback(s) => {
            let codes: Vec<u8> = s.reason_codes().iter().map(|c| *c as u8).collect();
            assert_eq!(codes, vec![0x01, 0x87, 0x02, 0x00]);
            let rs = reason_string(s.props()).unwrap_or_default();
            assert!(rs.contains("clients/#"), "{rs}");
        }
        other => panic!("{other:?}"),
    }
    let mut a3 = v3_client(b.addr, "a2", "actuator2").await;
    a3.send(
        v3_sub(
            1,
            &[
                ("clients/#", Qos::AtLeastOnce),
                ("clients/+/status", Qos::AtLeastOnce),
            ],
        )
        .into(),
    )
    .await;
    match a3.recv(T).await.expect("suback") {
        Packet::V3_1_1Suback(s) => {
            let codes: Vec<u8> = s.return_codes().iter().map(|c| *c as u8).collect();
            assert_eq!(codes, vec![0x80, 0x01]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.broker.stats().subscribe_denied(), 2);
}

#[tokio::test]
async fn qos_levels_are_delivered_and_downgraded() {
    let b = lwt_broker().await;
    let mut a = v5_client(b.addr, "a1", "actuator1").await;
    a.send(v5_sub(1, &[("clients/+/status", Qos::AtLeastOnce)]).into())
        .await;
    a.recv(T).await.expect("suback");
    let mut a3 = v3_client(b.addr, "a2", "actuator2").await;
    a3.send(v3_sub(1, &[("clients/+/status", Qos::ExactlyOnce)]).into())
        .await;
    a3.recv(T).await.expect("suback");
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    s.send(v5_pub("clients/sensor1/status", b"q2", Qos::ExactlyOnce, Some(9)).into())
        .await;
    assert!(matches!(s.recv(T).await, Ok(Packet::V5_0Pubrec(_))));
    s.send(
        mqtt_protocol_core::mqtt::packet::v5_0::Pubrel::builder()
            .packet_id(9)
            .build()
            .unwrap()
            .into(),
    )
    .await;
    assert!(matches!(s.recv(T).await, Ok(Packet::V5_0Pubcomp(_))));
    let (_, _, q, _) = publish_parts(&a.recv(T).await.expect("v5 copy"));
    assert_eq!(q, Qos::AtLeastOnce);
    let (_, p, q, _) = publish_parts(&a3.recv(T).await.expect("v3 copy"));
    assert_eq!((q, p.as_slice()), (Qos::ExactlyOnce, &b"q2"[..]));
}

#[tokio::test]
async fn retained_messages_reach_later_subscribers() {
    let b = lwt_broker().await;
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    let p = mqtt_protocol_core::mqtt::packet::v5_0::Publish::builder()
        .topic_name("clients/sensor1/status")
        .unwrap()
        .qos(Qos::AtLeastOnce)
        .packet_id(1)
        .retain(true)
        .payload(b"online")
        .build()
        .unwrap();
    s.send(p.into()).await;
    s.recv(T).await.expect("puback");
    let mut a = v3_client(b.addr, "a1", "actuator1").await;
    a.send(v3_sub(1, &[("clients/+/status", Qos::AtLeastOnce)]).into())
        .await;
    a.recv(T).await.expect("suback");
    let (t, p, q, r) = publish_parts(&a.recv(T).await.expect("retained"));
    assert_eq!(
        (t.as_str(), p.as_slice(), q, r),
        (
            "clients/sensor1/status",
            &b"online"[..],
            Qos::AtLeastOnce,
            true
        )
    );
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_at_highest_qos_with_all_ids() {
    use mqtt_protocol_core::mqtt::packet::{
        v5_0, Property, SubEntry, SubOpts, SubscriptionIdentifier,
    };
    let b = lwt_broker().await;
    let mut a = v5_client(b.addr, "adm", "admin").await;
    for (pid, filter, qos, id) in [
        (1u16, "a/+", Qos::AtMostOnce, 11u32),
        (2, "a/#", Qos::ExactlyOnce, 22),
    ] {
        let sub = v5_0::Subscribe::builder()
            .packet_id(pid)
            .entries(vec![
                SubEntry::new(filter, SubOpts::new().set_qos(qos)).unwrap()
            ])
            .props(vec![SubscriptionIdentifier::new(id).unwrap().into()])
            .build()
            .unwrap();
        a.send(sub.into()).await;
        a.recv(T).await.expect("suback");
    }
    let mut p = v5_client(b.addr, "adm2", "admin2").await;
    p.send(v5_pub("a/b", b"x", Qos::ExactlyOnce, Some(1)).into())
        .await;
    match a.recv(T).await.expect("copy") {
        Packet::V5_0Publish(m) => {
            assert_eq!(m.qos(), Qos::ExactlyOnce);
            let mut ids: Vec<u32> = m
                .props()
                .iter()
                .filter_map(|p| match p {
                    Property::SubscriptionIdentifier(s) => Some(s.val()),
                    _ => None,
                })
                .collect();
            ids.sort();
            assert_eq!(ids, vec![11, 22]);
        }
        other => panic!("{other:?}"),
    }
    // No second copy.
    a.expect_marker_first(&mut p, "a/marker").await;
}

#[tokio::test]
async fn v5_properties_pass_through_and_are_stripped_for_v3() {
    use mqtt_protocol_core::mqtt::packet::{
        v5_0, ContentType, Property, ResponseTopic, UserProperty,
    };
    let b = lwt_broker().await;
    let mut a5 = v5_client(b.addr, "a1", "actuator1").await;
    a5.send(v5_sub(1, &[("clients/+/status", Qos::AtMostOnce)]).into())
        .await;
    a5.recv(T).await.expect("suback");
    let mut a3 = v3_client(b.addr, "a2", "actuator2").await;
    a3.send(v3_sub(1, &[("clients/+/status", Qos::AtMostOnce)]).into())
        .await;
    a3.recv(T).await.expect("suback");
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    let p = v5_0::Publish::builder()
        .topic_name("clients/sensor1/status")
        .unwrap()
        .payload(b"x")
        .props(vec![
            UserProperty::new("k", "v").unwrap().into(),
            ContentType::new("text/plain").unwrap().into(),
            ResponseTopic::new("clients/sensor1/reply").unwrap().into(),
        ])
        .build()
        .unwrap();
    s.send(p.into()).await;
    match a5.recv(T).await.expect("v5 copy") {
        Packet::V5_0Publish(m) => {
            assert!(m.props().iter().any(
                |p| matches!(p, Property::UserProperty(u) if u.key() == "k" && u.val() == "v")
            ));
            assert!(m
                .props()
                .iter()
                .any(|p| matches!(p, Property::ContentType(c) if c.val() == "text/plain")));
            assert!(m
                .props()
                .iter()
                .any(|p| matches!(p, Property::ResponseTopic(_))));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(a3.recv(T).await, Ok(Packet::V3_1_1Publish(_))));
}

#[tokio::test]
async fn a_reloaded_policy_revokes_subscriptions_and_disabled_clients() {
    let b = lwt_broker().await;
    let mut a = v5_client(b.addr, "a1", "actuator1").await;
    a.send(v5_sub(1, &[("clients/+/status", Qos::AtMostOnce)]).into())
        .await;
    a.recv(T).await.expect("suback");
    let mut adm = v5_client(b.addr, "adm", "admin").await;
    let yaml = support::policy::lwt_yaml(true, None)
        .replace(
            "  actuators-sub:\n    clientGroup: actuators\n    topicSpace: lwt-sub\n    permission: subscriber\n",
            "",
        )
        .replace("  admin:\n    attributes: { type: admin }", "  admin:\n    state: Disabled\n    attributes: { type: admin }")
        // Actuators may subscribe to markers/# instead (for the barrier below).
        .replace(
            "  admins-pub:",
            "  actuators-markers:\n    clientGroup: actuators\n    topicSpace: markers\n    permission: subscriber\n  admins-pub:",
        )
        .replace("  everything:", "  markers:\n    topicTemplates: [ \"markers/#\" ]\n  everything:");
    b.broker.replace_policy(support::policy::compile(&yaml));
    // admin is Disabled now: DISCONNECT 0x87.
    let seen = adm.until_closed(T).await.expect("closed");
    assert_eq!(
        seen.iter().map(disconnect_code).collect::<Vec<_>>(),
        vec![0x87]
    );
    // actuator1 stays connected but its subscription is gone.
    a.send(v5_sub(2, &[("markers/#", Qos::AtLeastOnce)]).into())
        .await;
    a.suback().await;
    let mut s = v5_client(b.addr, "s1", "sensor1").await;
    s.send(v5_pub("clients/sensor1/status", b"x", Qos::AtLeastOnce, Some(1)).into())
        .await;
    s.recv(T).await.expect("puback"); // routed (to nobody) before the marker
    let mut m = v5_client(b.addr, "adm2", "admin2").await;
    a.expect_marker_first(&mut m, "markers/1").await;
}
