//! `serve --data`: persistent sessions, their queued QoS 1/2 messages and
//! retained messages survive SIGKILL of the broker process (issue 14,
//! decision 0025). The real binary is killed and restarted on the same
//! directory; every message a publisher saw acknowledged must reach the
//! offline subscribers: QoS 1 at least once, QoS 2 exactly once, in order
//! per publisher.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{
    GenericPacketTrait, Packet, Property, Qos, SessionExpiryInterval,
};
use mqtt_protocol_core::mqtt::Version;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::packets::*;
use support::serve::listening_port;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_topicgate");

const POLICY: &str = r#"
namespace: durable-test
clients:
  pub5: { attributes: { role: pub } }
  pub3: { attributes: { role: pub } }
  sub5: { attributes: { role: sub } }
  sub3: { attributes: { role: sub } }
  reader: { attributes: { role: sub } }
  dev5: { attributes: { role: pub } }
  dev3: { attributes: { role: pub } }
  quit5: { attributes: { role: pub } }
  back5: { attributes: { role: pub } }
clientGroups:
  pubs: { query: "attributes.role = 'pub'" }
  subs: { query: "attributes.role = 'sub'" }
topicSpaces:
  data: { topicTemplates: [ "data/#" ] }
permissionBindings:
  pubs-data: { clientGroup: pubs, topicSpace: data, permission: publisher }
  subs-data: { clientGroup: subs, topicSpace: data, permission: subscriber }
"#;

struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Served {
    fn start(policy: &Path, data: &Path) -> Served {
        Served::start_with(policy, data, &[])
    }

    fn start_with(policy: &Path, data: &Path, extra: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args(["serve", "--dev", "--mqtt", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .arg(policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let port = listening_port(&mut child);
        Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// SIGTERM, and waits (bounded) for the graceful stop.
    fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("serve did not stop within 10 s of SIGTERM");
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn expiry() -> Vec<Property> {
    vec![SessionExpiryInterval::new(3600).expect("expiry").into()]
}

/// Connects a persistent session; returns the client and Session Present.
async fn connect(addr: SocketAddr, id: &str, v5: bool) -> (Raw, bool) {
    connect_answering(addr, id, v5, true).await
}

/// [`connect`]; with `answer` false the client does not answer the broker's
/// QoS 1/2 packets (PUBACK, PUBREC, PUBCOMP): the test does, or not.
async fn connect_answering(addr: SocketAddr, id: &str, v5: bool, answer: bool) -> (Raw, bool) {
    open_session(addr, id, v5, true, None, answer).await
}

/// A retained QoS 1 will: topic, payload, Will Delay Interval (MQTT 5).
type TestWill<'a> = (&'a str, &'a [u8], u32);

/// The one CONNECT/CONNACK of these tests: `persistent` is Clean Start 0
/// with a session expiry (3.1.1: clean session 0). Returns the client and
/// Session Present; a refusal fails the test.
async fn open_session(
    addr: SocketAddr,
    id: &str,
    v5: bool,
    persistent: bool,
    will: Option<TestWill<'_>>,
    answer: bool,
) -> (Raw, bool) {
    let version = if v5 { Version::V5_0 } else { Version::V3_1_1 };
    let mut c = Raw::open(addr, version).await;
    c.mqtt.set_auto_pub_response(answer);
    let o = Opts {
        resume: persistent,
        props: if v5 && persistent {
            expiry()
        } else {
            Vec::new()
        },
        ..Opts::default()
    };
    if v5 {
        let will = will.map(|(t, p, delay)| (t, p, Qos::AtLeastOnce, true, delay));
        c.send(v5_connect_with(id, Some(id), will, o).into()).await;
    } else {
        let will = will.map(|(t, p, _)| (t, p, Qos::AtLeastOnce, true));
        c.send(v3_connect_with(id, Some(id), will, o).into()).await;
    }
    let present = match c.recv(T).await.expect("CONNACK") {
        Packet::V5_0Connack(a) => {
            assert_eq!(a.reason_code() as u8, 0, "{id} refused");
            a.session_present()
        }
        Packet::V3_1_1Connack(a) => {
            assert_eq!(a.return_code() as u8, 0, "{id} refused");
            a.session_present()
        }
        other => panic!("expected CONNACK, got {other:?}"),
    };
    (c, present)
}

/// A temporary directory with POLICY written in it, and the data directory's
/// path inside it (not created: `serve --data` creates it).
fn scene() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let data = tmp.path().join("data");
    (tmp, policy, data)
}

/// A persistent session `id` subscribes to `filter` and goes offline.
async fn offline_subscriber(addr: SocketAddr, id: &str, v5: bool, filter: &str) {
    let (mut c, _) = connect(addr, id, v5).await;
    subscribe(&mut c, v5, filter).await;
    disconnect(c, v5).await;
}

async fn subscribe(c: &mut Raw, v5: bool, filter: &str) {
    if v5 {
        c.send(v5_sub(1, &[(filter, Qos::ExactlyOnce)]).into())
            .await;
    } else {
        c.send(v3_sub(1, &[(filter, Qos::ExactlyOnce)]).into())
            .await;
    }
    match c.recv(T).await.expect("SUBACK") {
        Packet::V5_0Suback(_) | Packet::V3_1_1Suback(_) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn disconnect(mut c: Raw, v5: bool) {
    let p: Packet = if v5 {
        mqtt_protocol_core::mqtt::packet::v5_0::Disconnect::builder()
            .build()
            .expect("disconnect")
            .into()
    } else {
        mqtt_protocol_core::mqtt::packet::v3_1_1::Disconnect::new().into()
    };
    c.send(p).await;
    let _ = c.until_closed(T).await;
}

/// What the publishers saw acknowledged: payload -> QoS, per publisher in order.
#[derive(Default)]
struct Acked {
    by_publisher: BTreeMap<String, Vec<(String, Qos)>>,
    /// The retained message each publisher saw acknowledged, if it did.
    retained: BTreeMap<String, String>,
}

/// Publishes `count` messages (QoS alternating 1, 2, 1, 1, 2...) from `id`,
/// all at once, then reads acknowledgements. With `kill_after`, the broker
/// is killed (by the caller) once that many are acknowledged: returns the
/// client still reading. Payloads are `ID-CYCLE-N`.
async fn publish_burst(
    addr: SocketAddr,
    id: &str,
    v5: bool,
    cycle: usize,
    count: u16,
    acked: &mut Acked,
    stop_after: Option<usize>,
) -> Raw {
    let (mut c, _) = connect(addr, id, v5).await;
    let mut sent: BTreeMap<u16, (String, Qos)> = BTreeMap::new();
    // Identifiers of a cycle are its own: a QoS 2 exchange the kill cut short
    // keeps its identifier in use in the resumed session (MQTT 5 §4.3.3).
    let base = u16::try_from(cycle * 1000).expect("small cycle");
    for n in 1..=count {
        let qos = if n % 3 == 0 {
            Qos::ExactlyOnce
        } else {
            Qos::AtLeastOnce
        };
        let payload = format!("{id}-{cycle}-{n:04}");
        let topic = format!("data/{id}");
        let p: Packet = if v5 {
            v5_pub(&topic, payload.as_bytes(), qos, Some(base + n)).into()
        } else {
            v3_pub(&topic, payload.as_bytes(), qos, Some(base + n)).into()
        };
        c.send(p).await;
        sent.insert(base + n, (payload, qos));
    }
    // A retained message per cycle, acknowledged like the others.
    let retained = format!("state-{cycle}");
    let topic = format!("data/state/{id}");
    let p: Packet = if v5 {
        mqtt_protocol_core::mqtt::packet::v5_0::Publish::builder()
            .topic_name(topic.as_str())
            .expect("topic")
            .qos(Qos::AtLeastOnce)
            .retain(true)
            .packet_id(base + count + 1)
            .payload(retained.as_bytes())
            .build()
            .expect("publish")
            .into()
    } else {
        mqtt_protocol_core::mqtt::packet::v3_1_1::Publish::builder()
            .topic_name(topic.as_str())
            .expect("topic")
            .qos(Qos::AtLeastOnce)
            .retain(true)
            .packet_id(base + count + 1)
            .payload(retained.as_bytes())
            .build()
            .expect("publish")
            .into()
    };
    c.send(p).await;
    sent.insert(base + count + 1, (retained, Qos::AtLeastOnce));
    let qos2 = sent
        .values()
        .filter(|(_, q)| *q == Qos::ExactlyOnce)
        .count();
    let mut completed = 0usize;
    let mut got = 0usize;
    let want = sent.len();
    let mut retained_acked = None;
    let list = acked.by_publisher.entry(id.to_string()).or_default();
    let done = |got: usize, completed: usize| match stop_after {
        Some(s) => got >= s,
        None => got >= want && completed >= qos2,
    };
    while !done(got, completed) {
        let id = match c.recv(T).await {
            Ok(Packet::V5_0Puback(a)) => a.packet_id(),
            Ok(Packet::V3_1_1Puback(a)) => a.packet_id(),
            Ok(Packet::V5_0Pubrec(a)) => a.packet_id(),
            Ok(Packet::V3_1_1Pubrec(a)) => a.packet_id(),
            Ok(Packet::V5_0Pubcomp(_)) | Ok(Packet::V3_1_1Pubcomp(_)) => {
                completed += 1;
                continue;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => panic!("acknowledgements stopped after {got}: {e:?}"),
        };
        // A v5 PUBACK/PUBREC with a failure code would not be an acknowledgement.

        got += 1;
        if let Some((payload, qos)) = sent.get(&id) {
            if payload.starts_with("state-") {
                retained_acked = Some(payload.clone());
            } else {
                list.push((payload.clone(), *qos));
            }
        }
    }
    if let Some(r) = retained_acked {
        acked.retained.insert(id.to_string(), r);
    }
    c
}

/// Reads what a resumed subscriber is sent until every expected payload
/// arrived, then until a marker published after that (decision 0028: a
/// barrier, not a quiet period): a duplicate queued before the restart comes
/// before the marker. Returns the payloads in arrival order, marker excluded.
async fn drain(c: &mut Raw, addr: SocketAddr, expected: &BTreeSet<String>) -> Vec<String> {
    let mut seen = read_until(c, |seen| expected.iter().all(|e| seen.contains(e))).await;
    let marker = format!("marker-{}", seen.len());
    publish_one(addr, "pub5", "data/marker", &marker).await;
    seen.extend(read_until(c, |more| more.contains(&marker)).await);
    seen.retain(|p| *p != marker);
    seen
}

/// What sub5's persistent session receives when it connects again: until
/// every payload of `expected` came and then a marker (so that anything else
/// delivered before it is seen too). sub5 disconnects and keeps its session.
async fn sub5_receives(addr: SocketAddr, expected: &[&str]) -> Vec<String> {
    let (mut s5, _) = connect(addr, "sub5", true).await;
    let want = expected.iter().map(|e| e.to_string()).collect();
    let seen = drain(&mut s5, addr, &want).await;
    disconnect(s5, true).await;
    seen
}

/// PUBLISH payloads until `done` says so (or `T` passes without one).
async fn read_until(c: &mut Raw, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    // Bounded: no test here sends more than a few hundred messages.
    for _ in 0..10_000 {
        if done(&seen) {
            return seen;
        }
        match c.recv(T).await {
            Ok(p @ (Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_))) => {
                let (_, payload, _, _) = publish_parts(&p);
                seen.push(String::from_utf8(payload).expect("utf-8"));
            }
            Ok(_) => {}
            Err(e) => panic!(
                "stopped waiting ({e:?}) with {} messages: {seen:?}",
                seen.len()
            ),
        }
    }
    panic!("more messages than the test sends: {seen:?}");
}

fn check_delivery(who: &str, seen: &[String], acked: &Acked) {
    for (publisher, list) in &acked.by_publisher {
        let mine: Vec<&String> = seen
            .iter()
            .filter(|p| p.starts_with(&format!("{publisher}-")))
            .collect();
        for (payload, qos) in list {
            let n = mine.iter().filter(|p| **p == payload).count();
            match qos {
                Qos::ExactlyOnce => {
                    assert_eq!(n, 1, "{who}: QoS 2 `{payload}` delivered {n} times")
                }
                _ => assert!(n >= 1, "{who}: acknowledged QoS 1 `{payload}` lost"),
            }
        }
        // In order per publisher (first deliveries; a QoS 1 copy may come again).
        let mut firsts: Vec<&String> = Vec::new();
        for p in &mine {
            if !firsts.contains(p) {
                firsts.push(p);
            }
        }
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted, "{who}: {publisher}'s messages out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_sessions_and_retained_messages_survive_sigkill() {
    let (_tmp, policy, data) = scene();

    // Two persistent subscribers, MQTT 5 and 3.1.1, subscribe and go offline.
    let broker = Served::start(&policy, &data);
    for (id, v5) in [("sub5", true), ("sub3", false)] {
        let (mut c, present) = connect(broker.addr, id, v5).await;
        assert!(!present);
        subscribe(&mut c, v5, "data/+").await;
        disconnect(c, v5).await;
    }
    let mut broker = Some(broker);
    let mut last_retained: BTreeMap<String, String> = BTreeMap::new();

    for cycle in 1..=3usize {
        let b = broker.take().expect("running");
        let mut acked = Acked::default();
        // Cycle 2 kills the broker in the middle of a burst: only what was
        // acknowledged by then is owed.
        let mid_burst = cycle == 2;
        let p5 = publish_burst(
            b.addr,
            "pub5",
            true,
            cycle,
            120,
            &mut acked,
            mid_burst.then_some(40),
        )
        .await;
        // (In the mid-burst cycle the kill comes while pub5 is still sending.)
        let p3 = if mid_burst {
            None
        } else {
            Some(publish_burst(b.addr, "pub3", false, cycle, 60, &mut acked, None).await)
        };
        if let Some(p3) = p3 {
            disconnect(p3, false).await;
        }
        if mid_burst {
            // Killed while pub5 is still sending: its connection is cut by the kill.
            b.kill();
            drop(p5);
        } else {
            disconnect(p5, true).await;
            b.kill();
        }

        last_retained.extend(acked.retained.clone());
        let b = Served::start(&policy, &data);
        let expected: BTreeSet<String> = acked
            .by_publisher
            .values()
            .flatten()
            .map(|(p, _)| p.clone())
            .collect();
        assert!(!expected.is_empty());
        for (id, v5) in [("sub5", true), ("sub3", false)] {
            let (mut c, present) = connect(b.addr, id, v5).await;
            assert!(
                present,
                "cycle {cycle}: {id}'s session is gone after the restart"
            );
            let seen = drain(&mut c, b.addr, &expected).await;
            check_delivery(&format!("cycle {cycle}, {id}"), &seen, &acked);
            disconnect(c, v5).await;
        }
        // The retained messages are there, the last one of each publisher.
        // A fresh session: only the retained messages come.
        let mut r = Raw::open(b.addr, Version::V5_0).await;
        r.send(v5_connect("reader", Some("reader")).into()).await;
        assert_eq!(v5_connack(&r.recv(T).await.expect("CONNACK")).0, 0);
        subscribe(&mut r, true, "data/state/+").await;
        // Retained messages come before what is published after the SUBSCRIBE.
        publish_one(b.addr, "pub5", "data/state/marker", "marker").await;
        let mut retained = BTreeMap::new();
        for _ in 0..10 {
            let p = r.recv(T).await.expect("retained messages, then the marker");
            if let Packet::V5_0Publish(_) = p {
                let (topic, payload, _, retain) = publish_parts(&p);
                if topic == "data/state/marker" {
                    break;
                }
                assert!(retain);
                retained.insert(topic, String::from_utf8(payload).expect("utf-8"));
            }
        }
        for (publisher, last) in &last_retained {
            let got = retained.get(&format!("data/state/{publisher}"));
            let unacked = format!("state-{cycle}");
            // Sent but not seen acknowledged (the kill came first): either may be there.
            let ok = got == Some(last)
                || (acked.retained.get(publisher) != Some(&unacked) && got == Some(&unacked));
            assert!(
                ok,
                "cycle {cycle}: retained message of {publisher} is {got:?}, acknowledged {last}"
            );
        }
        disconnect(r, true).await;
        broker = Some(b);
    }
}

/// The same clients, but `sub3` is gone and `sub5` may only subscribe to `data/keep`.
const NARROWER: &str = r#"
namespace: durable-test
clients:
  pub5: { attributes: { role: pub } }
  pub3: { attributes: { role: pub } }
  sub5: { attributes: { role: sub } }
  reader: { attributes: { role: sub } }
clientGroups:
  pubs: { query: "attributes.role = 'pub'" }
  subs: { query: "attributes.role = 'sub'" }
topicSpaces:
  data: { topicTemplates: [ "data/#" ] }
  keep: { topicTemplates: [ "data/keep" ] }
permissionBindings:
  pubs-data: { clientGroup: pubs, topicSpace: data, permission: publisher }
  subs-keep: { clientGroup: subs, topicSpace: keep, permission: subscriber }
"#;

async fn publish_one(addr: SocketAddr, id: &str, topic: &str, payload: &str) {
    let mut c = Raw::open(addr, Version::V5_0).await;
    c.send(v5_connect(id, Some(id)).into()).await;
    assert_eq!(v5_connack(&c.recv(T).await.expect("CONNACK")).0, 0);
    c.send(v5_pub(topic, payload.as_bytes(), Qos::AtLeastOnce, Some(1)).into())
        .await;
    match c.recv(T).await.expect("PUBACK") {
        Packet::V5_0Puback(a) => assert_eq!(a.reason_code().map(|c| c as u8).unwrap_or(0), 0),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    disconnect(c, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_in_force_at_restart_applies_to_restored_sessions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wide = tmp.path().join("wide.yaml");
    let narrow = tmp.path().join("narrow.yaml");
    std::fs::write(&wide, POLICY).expect("policy");
    std::fs::write(&narrow, NARROWER).expect("policy");
    let data = tmp.path().join("data");

    let b = Served::start(&wide, &data);
    for (id, v5) in [("sub5", true), ("sub3", false)] {
        let (mut c, _) = connect(b.addr, id, v5).await;
        subscribe(&mut c, v5, "data/+").await;
        subscribe(&mut c, v5, "data/keep").await;
        disconnect(c, v5).await;
    }
    b.kill();

    let b = Served::start(&narrow, &data);
    // sub3's client is gone from the policy: its stored session went with it.
    let mut c = Raw::open(b.addr, Version::V5_0).await;
    let o = Opts {
        resume: true,
        props: expiry(),
        ..Opts::default()
    };
    c.send(v5_connect_with("sub3", Some("sub3"), None, o).into())
        .await;
    assert_ne!(v5_connack(&c.recv(T).await.expect("CONNACK")).0, 0);
    // sub5 keeps its session and `data/keep`, not `data/+`.
    let (mut s5, present) = connect(b.addr, "sub5", true).await;
    assert!(present);
    disconnect(s5, true).await;
    publish_one(b.addr, "pub5", "data/other", "revoked").await;
    publish_one(b.addr, "pub5", "data/keep", "kept").await;
    (s5, _) = connect(b.addr, "sub5", true).await;
    // `kept` was published after `revoked`: had `data/+` survived, `revoked`
    // would come first.
    let seen = read_until(&mut s5, |seen| seen.iter().any(|p| p == "kept")).await;
    assert_eq!(seen, vec!["kept".to_string()]);
    disconnect(s5, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_whose_delay_ran_out_while_the_broker_was_down_is_published_at_start() {
    let (_tmp, policy, data) = scene();

    let b = Served::start(&policy, &data);
    offline_subscriber(b.addr, "sub5", true, "data/+").await;
    // pub5 holds a persistent session and a will delayed by 1 s; its socket
    // closes without DISCONNECT, so the will is pending.
    let mut p = Raw::open(b.addr, Version::V5_0).await;
    let o = Opts {
        resume: true,
        props: expiry(),
        ..Opts::default()
    };
    let will = Some(("data/will", &b"pub5 gone"[..], Qos::AtLeastOnce, false, 1));
    p.send(v5_connect_with("pub5", Some("pub5"), will, o).into())
        .await;
    assert_eq!(v5_connack(&p.recv(T).await.expect("CONNACK")).0, 0);
    // DISCONNECT 0x04: end with the will. The broker closes the socket and
    // then writes the session's record (with the pending will); the message
    // acknowledged below, sent after the close was seen, is behind that
    // record in the ordered writer.
    let with_will = mqtt_protocol_core::mqtt::packet::v5_0::Disconnect::builder()
        .reason_code(
            mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode::DisconnectWithWillMessage,
        )
        .build()
        .expect("disconnect");
    p.send(with_will.into()).await;
    let _ = p.until_closed(T).await;
    publish_one(b.addr, "pub3", "data/ordered", "ordered").await;
    b.kill();
    // Down for longer than the will delay (wall-clock time must pass: the
    // will's due time is stored as wall-clock time).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let b = Served::start(&policy, &data);
    let seen = sub5_receives(b.addr, &["ordered", "pub5 gone"]).await;
    assert_eq!(
        seen.iter().filter(|p| *p == "pub5 gone").count(),
        1,
        "the will, once: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_durability_loses_nothing_at_a_graceful_stop() {
    let (tmp, policy, data) = scene();
    // An fsync an hour after the first unsynced commit: only the stop syncs.
    let config = tmp.path().join("relaxed.yaml");
    std::fs::write(&config, "durability: relaxed\nrelaxedSyncInterval: 3600\n").expect("config");
    let config = config.to_str().expect("utf-8 path");

    let b = Served::start_with(&policy, &data, &["--config", config]);
    offline_subscriber(b.addr, "sub5", true, "data/+").await;
    publish_one(b.addr, "pub3", "data/x", "before the stop").await;
    b.stop();

    let b = Served::start(&policy, &data);
    let (mut s5, present) = connect(b.addr, "sub5", true).await;
    assert!(present, "the session was lost at a graceful stop");
    let seen = read_until(&mut s5, |seen| seen.iter().any(|p| p == "before the stop")).await;
    assert_eq!(seen, vec!["before the stop".to_string()]);
    disconnect(s5, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_publish_answered_pubrec_is_released_after_a_restart_and_not_routed_again() {
    let (_tmp, policy, data) = scene();

    let b = Served::start(&policy, &data);
    offline_subscriber(b.addr, "sub5", true, "data/+").await;
    // pub5 (persistent) sends a QoS 2 PUBLISH and gets PUBREC; the broker dies
    // before its PUBREL.
    let (mut p, _) = connect(b.addr, "pub5", true).await;
    p.mqtt.set_auto_pub_response(false);
    p.send(v5_pub("data/q2", b"once", Qos::ExactlyOnce, Some(7)).into())
        .await;
    match p.recv(T).await.expect("PUBREC") {
        Packet::V5_0Pubrec(r) => assert_eq!(r.packet_id(), 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    b.kill();
    drop(p);

    let b = Served::start(&policy, &data);
    let (mut p, present) = connect(b.addr, "pub5", true).await;
    assert!(present);
    // Not knowing whether the PUBREC arrived, the client sends the PUBLISH again
    // (DUP), then releases it: PUBREC again, no second copy, PUBCOMP success.
    p.mqtt.set_auto_pub_response(false);
    let dup = v5_pub("data/q2", b"once", Qos::ExactlyOnce, Some(7)).set_dup(true);
    p.send(dup.into()).await;
    match p.recv(T).await.expect("PUBREC") {
        Packet::V5_0Pubrec(r) => assert_eq!(r.packet_id(), 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    let rel = mqtt_protocol_core::mqtt::packet::v5_0::Pubrel::builder()
        .packet_id(7)
        .build()
        .expect("PUBREL");
    p.send(rel.into()).await;
    match p.recv(T).await.expect("PUBCOMP") {
        Packet::V5_0Pubcomp(c) => {
            assert_eq!(c.packet_id(), 7);
            let code = c.reason_code().map(|c| c as u8).unwrap_or(0);
            assert_eq!(
                code, 0,
                "PUBREL after the restart: the PUBLISH must still be known"
            );
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    disconnect(p, true).await;
    let seen = sub5_receives(b.addr, &["once"]).await;
    assert_eq!(seen, vec!["once".to_string()], "exactly once");
}

/// The packet identifiers of the PUBACKs in `bytes` (MQTT 5 frames), in order.
fn puback_ids(bytes: &[u8]) -> Vec<u16> {
    let mut ids = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let kind = bytes[at];
        let (mut len, mut shift, mut i) = (0usize, 0, at + 1);
        while let Some(b) = bytes.get(i) {
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if i + len > bytes.len() {
            break;
        }
        if kind == 0x40 {
            ids.push(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        }
        at = i + len;
    }
    ids
}

/// MQTT-4.6.0-2: PUBACKs go in the order of the PUBLISHes, also when the first
/// waits for the store (a persistent subscriber gets a copy) and the second is
/// refused (nothing to store): the refusal must not overtake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_is_acknowledged_after_an_earlier_one_waiting_for_the_store() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_tmp, policy, data) = scene();
    let b = Served::start(&policy, &data);
    offline_subscriber(b.addr, "sub5", true, "data/+").await;

    let mut s = tokio::net::TcpStream::connect(b.addr)
        .await
        .expect("connect");
    let connect = Packet::from(v5_connect("pub5", Some("pub5")));
    s.write_all(&connect.to_continuous_buffer())
        .await
        .expect("CONNECT");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // CONNACK first (its own exchange), then both PUBLISHes in one write.
    while got.len() < 2 || got.len() < 2 + usize::from(got[1]) {
        let n = tokio::time::timeout(T, s.read(&mut buf))
            .await
            .expect("CONNACK")
            .expect("read");
        assert!(n > 0, "closed before CONNACK");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got[0], 0x20, "CONNACK");
    got.clear();
    let mut both =
        Packet::from(v5_pub("data/a", b"stored", Qos::AtLeastOnce, Some(1))).to_continuous_buffer();
    both.extend(
        Packet::from(v5_pub("other/x", b"refused", Qos::AtLeastOnce, Some(2)))
            .to_continuous_buffer(),
    );
    s.write_all(&both).await.expect("PUBLISHes");
    let deadline = tokio::time::Instant::now() + T;
    while puback_ids(&got).len() < 2 {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("two PUBACKs")
            .expect("read");
        assert!(n > 0, "closed before two PUBACKs: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(puback_ids(&got), vec![1, 2], "PUBACKs out of PUBLISH order");
}

/// A client `id` connects with a retained QoS 1 will `payload` to
/// `data/status/ID` (delay `delay`, MQTT 5), and stays connected: the
/// returned client holds the socket open. `persistent`: Clean Start 0 with
/// a session expiry (3.1.1: clean session 0).
async fn connected_with_will(
    addr: SocketAddr,
    id: &str,
    v5: bool,
    persistent: bool,
    payload: &str,
    delay: u32,
) -> Raw {
    let topic = format!("data/status/{id}");
    let will = (topic.as_str(), payload.as_bytes(), delay);
    open_session(addr, id, v5, persistent, Some(will), true)
        .await
        .0
}

/// `sub5` subscribes to the status topics and to the marker `drain` uses,
/// and goes offline.
async fn offline_status_watcher(addr: SocketAddr) {
    let (mut c, _) = connect(addr, "sub5", true).await;
    subscribe(&mut c, true, "data/status/+").await;
    subscribe(&mut c, true, "data/marker").await;
    disconnect(c, true).await;
}

/// MQTT 5 and 3.1.1 clients with a will are connected when the broker is
/// killed: at restart their wills are published (the retained `offline`
/// status a dashboard reads), as if their connections ended then. A client
/// that disconnected normally before the kill leaves no will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wills_of_clients_connected_at_a_crash_are_published_at_restart() {
    let (_tmp, policy, data) = scene();

    let b = Served::start(&policy, &data);
    offline_status_watcher(b.addr).await;
    // Not persistent (its session ends with the connection), and persistent
    // (3.1.1 clean session 0): both wills are kept.
    let dev5 = connected_with_will(b.addr, "dev5", true, false, "dev5 offline", 0).await;
    let dev3 = connected_with_will(b.addr, "dev3", false, true, "dev3 offline", 0).await;
    let quit5 = connected_with_will(b.addr, "quit5", true, true, "quit5 offline", 0).await;
    disconnect(quit5, true).await;
    // The broker removes quit5's will before it closes the socket, without
    // waiting for the store; this message, acknowledged once durable, is
    // behind that removal in the ordered writer.
    publish_one(b.addr, "pub5", "data/marker", "barrier").await;
    b.kill();
    drop((dev5, dev3));

    let b = Served::start(&policy, &data);
    let (mut s5, present) = connect(b.addr, "sub5", true).await;
    assert!(present);
    let wills = BTreeSet::from(["dev5 offline".to_string(), "dev3 offline".to_string()]);
    let mut want = wills.clone();
    want.insert("barrier".to_string());
    let mut seen = drain(&mut s5, b.addr, &want).await;
    seen.sort();
    assert_eq!(
        seen,
        want.iter().cloned().collect::<Vec<_>>(),
        "each will once, and none of the client that disconnected normally"
    );
    disconnect(s5, true).await;
    // A later subscriber finds the statuses retained.
    let mut r = Raw::open(b.addr, Version::V5_0).await;
    r.send(v5_connect("reader", Some("reader")).into()).await;
    assert_eq!(v5_connack(&r.recv(T).await.expect("CONNACK")).0, 0);
    subscribe(&mut r, true, "data/status/+").await;
    let mut retained = read_until(&mut r, |seen| wills.iter().all(|w| seen.contains(w))).await;
    retained.sort();
    assert_eq!(retained, wills.into_iter().collect::<Vec<_>>());
}

/// A will with a delay, of a client connected at the crash, waits for its
/// delay counted from the restart: a client that reconnects within it
/// cancels its will (MQTT 5), one that does not gets it published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_will_of_a_crash_waits_from_the_restart_and_a_reconnect_cancels_it() {
    let (_tmp, policy, data) = scene();

    let b = Served::start(&policy, &data);
    offline_status_watcher(b.addr).await;
    // back5's will would fall due before dev5's: had the reconnect not
    // cancelled it, it would come before dev5's and the marker after that.
    let back5 = connected_with_will(b.addr, "back5", true, true, "back5 offline", 2).await;
    let dev5 = connected_with_will(b.addr, "dev5", true, true, "dev5 offline", 4).await;
    b.kill();
    drop((back5, dev5));

    let b = Served::start(&policy, &data);
    // back5 comes back within its 2 s: its session is there, its will goes.
    let (back5, present) = connect(b.addr, "back5", true).await;
    assert!(present);
    disconnect(back5, true).await;
    // dev5 does not: its will is published once its 4 s have passed.
    let seen = sub5_receives(b.addr, &["dev5 offline"]).await;
    assert_eq!(
        seen,
        vec!["dev5 offline".to_string()],
        "back5's will is not published"
    );
}

/// The wills of a crash are authorized again against the policy in force
/// at restart, as every will is when it fires: one the new policy no longer
/// allows is dropped, one it still allows is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_of_a_crash_that_the_policy_at_restart_no_longer_allows_is_dropped() {
    let (tmp, policy, data) = scene();
    let revoked = tmp.path().join("revoked.yaml");
    let narrowed = POLICY
        .replace(
            "back5: { attributes: { role: pub } }",
            "back5: { attributes: { role: gone } }",
        )
        .replace(
            "dev3: { attributes: { role: pub } }",
            "dev3: { attributes: { role: gone } }",
        );
    assert_ne!(narrowed, POLICY);
    std::fs::write(&revoked, narrowed).expect("policy");

    let b = Served::start(&policy, &data);
    offline_status_watcher(b.addr).await;
    let back5 = connected_with_will(b.addr, "back5", true, false, "back5 offline", 0).await;
    let dev3 = connected_with_will(b.addr, "dev3", false, true, "dev3 offline", 0).await;
    let dev5 = connected_with_will(b.addr, "dev5", true, false, "dev5 offline", 0).await;
    b.kill();
    drop((back5, dev3, dev5));

    let b = Served::start(&revoked, &data);
    let seen = sub5_receives(b.addr, &["dev5 offline"]).await;
    assert_eq!(
        seen,
        vec!["dev5 offline".to_string()],
        "only the allowed will"
    );
}

/// Publishes one QoS 2 message and completes the exchange (PUBCOMP).
async fn publish_qos2(addr: SocketAddr, topic: &str, payload: &str) {
    let mut c = Raw::open(addr, Version::V5_0).await;
    c.send(v5_connect("pub5", Some("pub5")).into()).await;
    assert_eq!(v5_connack(&c.recv(T).await.expect("CONNACK")).0, 0);
    c.send(v5_pub(topic, payload.as_bytes(), Qos::ExactlyOnce, Some(1)).into())
        .await;
    // The client's state machine answers the PUBREC with PUBREL.
    loop {
        match c.recv(T).await.expect("PUBCOMP") {
            Packet::V5_0Pubrec(r) => {
                assert_eq!(r.reason_code().map(|c| c as u8).unwrap_or(0), 0)
            }
            Packet::V5_0Pubcomp(_) => break,
            other => panic!("expected PUBREC/PUBCOMP, got {other:?}"),
        }
    }
    disconnect(c, true).await;
}

/// A PUBLISH as (payload, packet identifier, DUP), of either version.
fn sent(p: &Packet) -> (String, u16, bool) {
    let (id, dup) = match p {
        Packet::V5_0Publish(x) => (x.packet_id(), x.dup()),
        Packet::V3_1_1Publish(x) => (x.packet_id(), x.dup()),
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    let (_, payload, qos, _) = publish_parts(p);
    assert_eq!(qos, Qos::ExactlyOnce, "{p:?}");
    (
        String::from_utf8(payload).expect("utf-8"),
        id.expect("QoS 2 has an identifier"),
        dup,
    )
}

/// The identifier of a PUBREL of either version.
fn pubrel_id(p: &Packet) -> Option<u16> {
    match p {
        Packet::V5_0Pubrel(r) => Some(r.packet_id()),
        Packet::V3_1_1Pubrel(r) => Some(r.packet_id()),
        _ => None,
    }
}

/// The next PUBLISH, past acknowledgements.
async fn next_publish(c: &mut Raw) -> Packet {
    for _ in 0..100 {
        let p = c.recv(T).await.expect("a PUBLISH");
        if let Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_) = p {
            return p;
        }
    }
    panic!("no PUBLISH among 100 packets");
}

/// Persistent subscribers of `data/+` (QoS 2) that answer nothing by
/// themselves: the tests decide what each one acknowledges before a crash.
async fn quiet_subscribers(addr: SocketAddr, subs: &[(&str, bool)]) -> Vec<Raw> {
    let mut clients = Vec::new();
    for &(id, v5) in subs {
        let (mut c, _) = connect_answering(addr, id, v5, false).await;
        subscribe(&mut c, v5, "data/+").await;
        clients.push(c);
    }
    clients
}

/// Issue 14, MQTT-4.4.0-1: a QoS 2 copy the subscriber received but did not
/// answer before the broker was killed is sent again after the restart with
/// DUP=1 under the same packet identifier (the subscriber may hold it: it
/// must recognise the copy, not deliver a second one), before what was
/// queued later, which gets another identifier; then nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_copy_in_flight_at_a_crash_is_sent_again_with_dup_under_its_identifier() {
    let (_tmp, policy, data) = scene();
    let subs = [("sub5", true), ("sub3", false)];
    let b = Served::start(&policy, &data);
    let mut clients = quiet_subscribers(b.addr, &subs).await;
    publish_qos2(b.addr, "data/q", "one").await;
    publish_qos2(b.addr, "data/q", "two").await;
    let mut ids = Vec::new();
    for c in &mut clients {
        let one = sent(&next_publish(c).await);
        let two = sent(&next_publish(c).await);
        assert_eq!((one.0.as_str(), one.2), ("one", false));
        assert_eq!((two.0.as_str(), two.2), ("two", false));
        ids.push((one.1, two.1));
    }
    // Unanswered: both copies are in flight when the broker dies.
    b.kill();
    drop(clients);

    let b = Served::start(&policy, &data);
    publish_qos2(b.addr, "data/q", "three").await;
    for ((id, v5), (one, two)) in subs.into_iter().zip(ids) {
        let (mut c, present) = connect(b.addr, id, v5).await;
        assert!(present, "{id}: session lost");
        // The client answers now: PUBREC, then PUBCOMP to each PUBREL.
        let first = sent(&next_publish(&mut c).await);
        let second = sent(&next_publish(&mut c).await);
        let third = sent(&next_publish(&mut c).await);
        assert_eq!(first, ("one".to_string(), one, true), "{id}");
        assert_eq!(second, ("two".to_string(), two, true), "{id}");
        assert_eq!(third.0, "three", "{id}");
        assert!(
            third.1 != one && third.1 != two,
            "{id}: identifier {} reused while in flight",
            third.1
        );
        // Each exchange completes (a PUBREL for each), and no copy comes again
        // before a marker published after them.
        publish_one(b.addr, "pub5", "data/marker", "marker").await;
        let mut released = BTreeSet::new();
        let mut marker = false;
        for _ in 0..100 {
            if marker && released.len() == 3 {
                break;
            }
            let p = c.recv(T).await.expect("PUBRELs and the marker");
            if let Some(r) = pubrel_id(&p) {
                released.insert(r);
            } else if let Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_) = p {
                let (_, payload, _, _) = publish_parts(&p);
                assert_eq!(payload, b"marker", "{id}: a copy came again: {p:?}");
                marker = true;
            }
        }
        assert_eq!(released, BTreeSet::from([one, two, third.1]), "{id}");
        assert!(marker, "{id}: no marker");
        disconnect(c, v5).await;
    }
    // The completed exchanges left the store: another crash brings nothing back.
    // Removals are not waited for, but the writer is ordered: once a later
    // copy for these sessions is acknowledged, the removals before it are durable.
    publish_one(b.addr, "pub5", "data/marker", "sync").await;
    b.kill();
    let b = Served::start(&policy, &data);
    for (id, v5) in subs {
        let (mut c, present) = connect(b.addr, id, v5).await;
        assert!(present, "{id}: session lost");
        publish_one(b.addr, "pub5", "data/marker", "after").await;
        // Markers queued for this session meanwhile come first (QoS 1).
        let seen = read_until(&mut c, |seen| seen.iter().any(|p| p == "after")).await;
        assert!(
            seen.iter()
                .all(|p| !["one", "two", "three"].contains(&p.as_str())),
            "{id}: a completed QoS 2 copy came back: {seen:?}"
        );
        disconnect(c, v5).await;
    }
}

/// Issue 14, MQTT-4.3.3: once the broker sent PUBREL for a QoS 2 copy it
/// never sends that PUBLISH again. The subscriber answered PUBREC, got the
/// PUBREL and went away before PUBCOMP; the broker was killed. After the
/// restart the resumed subscriber gets the PUBREL under the same identifier,
/// and not the message (it delivered it already).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_copy_released_before_a_crash_gets_its_pubrel_again_and_never_the_publish() {
    let (_tmp, policy, data) = scene();
    let subs = [("sub5", true), ("sub3", false)];
    let b = Served::start(&policy, &data);
    let mut clients = quiet_subscribers(b.addr, &subs).await;
    publish_qos2(b.addr, "data/q", "once").await;
    let mut ids = Vec::new();
    for (c, (_, v5)) in clients.iter_mut().zip(subs) {
        let (payload, pid, _) = sent(&next_publish(c).await);
        assert_eq!(payload, "once");
        let pubrec: Packet = if v5 {
            mqtt_protocol_core::mqtt::packet::v5_0::Pubrec::builder()
                .packet_id(pid)
                .build()
                .expect("PUBREC")
                .into()
        } else {
            mqtt_protocol_core::mqtt::packet::v3_1_1::Pubrec::builder()
                .packet_id(pid)
                .build()
                .expect("PUBREC")
                .into()
        };
        c.send(pubrec).await;
        let rel = c.recv(T).await.expect("PUBREL");
        assert_eq!(pubrel_id(&rel), Some(pid), "expected PUBREL, got {rel:?}");
        ids.push(pid);
    }
    // Gone before PUBCOMP; then the broker dies.
    drop(clients);
    b.kill();

    let b = Served::start(&policy, &data);
    for ((id, v5), pid) in subs.into_iter().zip(ids) {
        let (mut c, present) = connect_answering(b.addr, id, v5, false).await;
        assert!(present, "{id}: session lost");
        let p = c.recv(T).await.expect("PUBREL after the restart");
        assert_eq!(
            pubrel_id(&p),
            Some(pid),
            "{id}: expected PUBREL {pid} first, got {p:?}"
        );
        // PUBCOMP (the same bytes in both versions).
        let [hi, lo] = pid.to_be_bytes();
        c.send_raw(&[0x70, 0x02, hi, lo]).await;
        c.mqtt.set_auto_pub_response(true);
        // The message never comes again: the next PUBLISH is a later marker.
        publish_one(b.addr, "pub5", "data/marker", "marker").await;
        let p = next_publish(&mut c).await;
        let (_, payload, _, _) = publish_parts(&p);
        assert_eq!(payload, b"marker", "{id}: the PUBLISH came again: {p:?}");
        disconnect(c, v5).await;
    }
}
