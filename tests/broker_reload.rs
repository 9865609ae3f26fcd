//! Policy reload while serving (issue 15, decision 0023, semantics.md §4, "Policy reload"): the
//! real binary, real clients on loopback, the policy file replaced on disk and
//! SIGHUP (or `--watch`); the metrics endpoint tells when a reload is done.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::packets::*;
use support::serve::listening_port;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_topicgate");
const PATIENCE: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(50);

/// `sub1` subscribes to `a/#`, `b/#` and `w/#`; `pub1` and `mallory` publish
/// on `a/#` and `b/#`; `willer` may publish (and so leave a will) on `w/#`.
/// The revoking version takes `a/#` from the subscribers, `w/#` from willer,
/// and drops mallory from the policy.
fn policy(revoking: bool) -> String {
    let mallory = if revoking {
        ""
    } else {
        "  mallory: { attributes: { role: pub } }\n"
    };
    let subs_a = if revoking {
        ""
    } else {
        "  subs-a: { clientGroup: subs, topicSpace: space-a, permission: subscriber }\n"
    };
    let willers = if revoking {
        "  willers-b: { clientGroup: willers, topicSpace: space-b, permission: publisher }\n"
    } else {
        "  willers-w: { clientGroup: willers, topicSpace: space-w, permission: publisher }\n"
    };
    let text = r#"namespace: reload-test
clients:
  sub1: { attributes: { role: sub } }
  pub1: { attributes: { role: pub } }
MALLORY  willer: { attributes: { role: willer } }
clientGroups:
  subs: { query: "attributes.role = 'sub'" }
  pubs: { query: "attributes.role = 'pub'" }
  willers: { query: "attributes.role = 'willer'" }
topicSpaces:
  space-a: { topicTemplates: ["a/#"] }
  space-b: { topicTemplates: ["b/#"] }
  space-w: { topicTemplates: ["w/#"] }
permissionBindings:
SUBS_A  subs-b: { clientGroup: subs, topicSpace: space-b, permission: subscriber }
  subs-w: { clientGroup: subs, topicSpace: space-w, permission: subscriber }
  pubs-a: { clientGroup: pubs, topicSpace: space-a, permission: publisher }
  pubs-b: { clientGroup: pubs, topicSpace: space-b, permission: publisher }
WILLERS"#;
    text.replace("MALLORY", mallory)
        .replace("SUBS_A", subs_a)
        .replace("WILLERS", willers)
}

struct Served {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    policy: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `serve --dev` on the first version of the policy, with metrics.
    fn start(extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy_path = dir.path().join("policy.yaml");
        std::fs::write(&policy_path, policy(false)).expect("policy");
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--dev", "--mqtt", "127.0.0.1:0"])
            .args(["--metrics", "127.0.0.1:0"])
            .args(extra)
            .arg(&policy_path)
            .env_remove("TOPICGATE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut addr, mut metrics) = (None, None);
        for _ in 0..2 {
            let mut line = String::new();
            out.read_line(&mut line).expect("line");
            if let Some(a) = line.strip_prefix("listening on mqtt://") {
                addr = a.trim().parse().ok();
            } else if let Some(a) = line.strip_prefix("metrics on http://") {
                metrics = a.trim().trim_end_matches("/metrics").parse().ok();
            }
        }
        Served {
            child,
            addr: addr.expect("mqtt address"),
            metrics: metrics.expect("metrics address"),
            policy: policy_path,
            log,
            _dir: dir,
        }
    }

    /// Replaces the policy file the way deployment tools do: a new file renamed over it.
    fn replace_policy(&self, text: &str) {
        let tmp = self.policy.with_extension("new");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &self.policy).expect("rename");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn metric(&self, series: &str) -> f64 {
        let body = http_get(self.metrics, "/metrics");
        body.lines()
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no `{series}` in:\n{body}"))
    }

    /// Waits until `series` reads `want` (polled; never a speed assertion).
    async fn settles(&self, series: &str, want: f64) {
        let mut last = f64::NAN;
        for _ in 0..(PATIENCE.as_millis() / STEP.as_millis()) {
            last = self.metric(series);
            if last == want {
                return;
            }
            tokio::time::sleep(STEP).await;
        }
        panic!("`{series}` is {last}, expected {want}");
    }

    fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).expect("log")
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

const RELOADS_OK: &str = "topicgate_policy_reloads_total{result=\"ok\"}";
const RELOADS_ERR: &str = "topicgate_policy_reloads_total{result=\"error\"}";
const REVOKED: &str = "topicgate_subscriptions_revoked_total";

/// `willer` connected (MQTT 5) with a QoS 1 will `gone` to `w/willer`.
async fn connected_willer(addr: SocketAddr, retain: bool) -> Raw {
    let mut willer = Raw::open(addr, Version::V5_0).await;
    let will = Some(("w/willer", &b"gone"[..], Qos::AtLeastOnce, retain, 0));
    willer
        .send(v5_connect_with("willer-cid", Some("willer"), will, Opts::default()).into())
        .await;
    assert_eq!(v5_connack(&willer.recv(T).await.expect("connack")).0, 0);
    willer
}

/// A v5 client connected as `user`, subscribed to `filters` at QoS 1.
async fn subscriber(addr: SocketAddr, id: &str, user: &str, filters: &[&str]) -> Raw {
    let mut c = Raw::open(addr, Version::V5_0).await;
    c.send(v5_connect(id, Some(user)).into()).await;
    assert_eq!(v5_connack(&c.recv(T).await.expect("connack")).0, 0);
    if !filters.is_empty() {
        let f: Vec<(&str, Qos)> = filters.iter().map(|f| (*f, Qos::AtLeastOnce)).collect();
        c.send(v5_sub(1, &f).into()).await;
        match c.recv(T).await.expect("suback") {
            Packet::V5_0Suback(s) => {
                assert!(s.reason_codes().iter().all(|r| (*r as u8) < 0x80), "{s:?}")
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    c
}

/// Reads PUBLISHes until one on `marker` arrives; returns the topics before it.
async fn topics_until(c: &mut Raw, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    // Bounded: every message is read within T, and at most this many.
    for _ in 0..1_000_000 {
        let p = c.recv(T).await.expect("a message before the marker");
        if let Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_) = p {
            let topic = publish_parts(&p).0;
            if topic == marker {
                return seen;
            }
            seen.push(topic);
        }
    }
    panic!("no marker `{marker}`");
}

/// Publishes QoS 0 messages on `a/N` as rumqttc clients of `pub1` until `stop`
/// (at most `limit` each), counting them in `sent`.
fn flood(
    port: u16,
    clients: usize,
    (stop, sent): (Arc<AtomicBool>, Arc<AtomicUsize>),
    limit: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|i| {
            let (stop, sent) = (stop.clone(), sent.clone());
            tokio::spawn(async move {
                let mut o = rumqttc::MqttOptions::new(format!("flood{i}"), "127.0.0.1", port);
                o.set_credentials("pub1", "");
                let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
                let driver = tokio::spawn(async move { while el.poll().await.is_ok() {} });
                for n in 0..limit {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let topic = format!("a/{i}/{n}");
                    let qos = rumqttc::QoS::AtMostOnce;
                    if client.publish(topic, qos, false, "x").await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    // Paced, so that the flood lasts (bounded by `limit` and `stop`).
                    if n % 100 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                let _ = client.disconnect().await;
                let _ = tokio::time::timeout(T, driver).await;
            })
        })
        .collect()
}

/// Reads `c` in the background (so its mailbox never stays full), sending the
/// topic of every PUBLISH, in order, until the connection ends.
fn drain(mut c: Raw) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(p) = c.recv(PATIENCE).await {
            if let Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_) = p {
                if tx.send(publish_parts(&p).0).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Publishes `prefix/K` (K = 0, 1, ...) until one arrives in `rx` (a QoS 0 copy
/// may be dropped by a full mailbox); returns what arrived before it.
async fn mark(
    publisher: &mut Raw,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    prefix: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    for k in 0..100 {
        publisher
            .send(v5_pub(&format!("{prefix}/{k}"), b"m", Qos::AtMostOnce, None).into())
            .await;
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(t)) = tokio::time::timeout_at(until, rx.recv()).await {
            if t.starts_with(prefix) {
                return seen;
            }
            seen.push(t);
        }
    }
    panic!("no `{prefix}/K` marker arrived");
}

/// The issue's acceptance test: while four publishers flood `a/#`, the policy
/// file is replaced and SIGHUP sent; once the reload is counted, a marker on
/// `b/` (still granted) is published: nothing on `a/` may arrive after it,
/// although the flood goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_revokes_a_subscription_and_nothing_more_arrives_on_it() {
    let s = Served::start(&[]);
    let sub = subscriber(s.addr, "sub1-cid", "sub1", &["a/#", "b/#"]).await;
    let mut marker = subscriber(s.addr, "pub1-marker", "pub1", &[]).await;
    let mut rx = drain(sub);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let floods = flood(s.addr.port(), 4, (stop.clone(), sent.clone()), 2_000_000);

    // The flood reaches the subscriber while `a/#` is granted.
    let first = tokio::time::timeout(PATIENCE, rx.recv()).await;
    assert!(first
        .expect("in time")
        .expect("a message")
        .starts_with("a/"));

    s.replace_policy(&policy(true));
    s.signal("-HUP");
    s.settles(RELOADS_OK, 1.0).await;
    s.settles(REVOKED, 1.0).await;

    mark(&mut marker, &mut rx, "b/after-reload").await;
    let at_cut = sent.load(Ordering::Relaxed);
    // From here on nothing on `a/` may arrive, however long the flood goes on.
    let mut after = Vec::new();
    for round in 0..20 {
        after.extend(mark(&mut marker, &mut rx, &format!("b/round{round}")).await);
        if sent.load(Ordering::Relaxed) > at_cut + 2000 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.await.expect("flood");
    }
    after.extend(mark(&mut marker, &mut rx, "b/end").await);
    assert!(
        sent.load(Ordering::Relaxed) > at_cut,
        "the flood went on after the reload"
    );
    let leaked: Vec<&String> = after.iter().filter(|t| t.starts_with("a/")).collect();
    assert!(
        leaked.is_empty(),
        "{} copies on the revoked subscription after the reload, e.g. {:?}",
        leaked.len(),
        leaked.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(s.metric(RELOADS_ERR), 0.0);
    assert!(
        s.logged().contains("subscription revoked"),
        "{}",
        s.logged()
    );
}

/// A policy with errors on SIGHUP is refused, logged with its diagnostics and
/// counted; the policy in force stays and every client keeps being served.
#[tokio::test]
async fn a_broken_policy_on_sighup_leaves_the_previous_one_in_force() {
    let s = Served::start(&[]);
    let mut sub = subscriber(s.addr, "sub1-cid", "sub1", &["a/#"]).await;
    let mut p = subscriber(s.addr, "pub1-cid", "pub1", &[]).await;

    // An unknown topic space: a compile error, not a parse error.
    s.replace_policy(&policy(true).replace("topicSpace: space-b,", "topicSpace: nowhere,"));
    s.signal("-HUP");
    s.settles(RELOADS_ERR, 1.0).await;
    assert_eq!(s.metric(RELOADS_OK), 0.0);
    assert_eq!(s.metric(REVOKED), 0.0);
    let log = s.logged();
    assert!(log.contains("policy reload refused"), "{log}");
    assert!(log.contains("nowhere"), "the diagnostics are logged: {log}");

    // The old policy still grants `a/#`: the subscription works, the broker runs.
    p.send(v5_pub("a/still", b"x", Qos::AtMostOnce, None).into())
        .await;
    let got = sub.recv(T).await.expect("still subscribed");
    assert_eq!(publish_parts(&got).0, "a/still");
    // And a later good policy is taken.
    s.replace_policy(&policy(true));
    s.signal("-HUP");
    s.settles(RELOADS_OK, 1.0).await;
    s.settles(REVOKED, 1.0).await;
}

/// `--watch`: replacing the file is enough, no signal.
#[tokio::test]
async fn watch_reloads_when_the_policy_file_changes() {
    let s = Served::start(&["--watch"]);
    let mut sub = subscriber(s.addr, "sub1-cid", "sub1", &["a/#", "b/#"]).await;
    let mut p = subscriber(s.addr, "pub1-cid", "pub1", &[]).await;
    s.replace_policy(&policy(true));
    s.settles(RELOADS_OK, 1.0).await;
    s.settles(REVOKED, 1.0).await;
    p.send(v5_pub("a/gone", b"x", Qos::AtMostOnce, None).into())
        .await;
    p.send(v5_pub("b/kept", b"x", Qos::AtMostOnce, None).into())
        .await;
    assert!(topics_until(&mut sub, "b/kept").await.is_empty());
    assert!(s.logged().contains("file change"), "{}", s.logged());
}

/// A client the new policy no longer has: MQTT 5 gets DISCONNECT 0x87 with a
/// reason string naming the reload; 3.1.1 is closed. Neither may come back.
#[tokio::test]
async fn a_client_no_longer_in_the_policy_is_disconnected_with_0x87() {
    let s = Served::start(&[]);
    let mut v5 = subscriber(s.addr, "mallory5", "mallory", &[]).await;
    let mut v3 = Raw::open(s.addr, Version::V3_1_1).await;
    v3.send(v3_connect("mallory3", Some("mallory"), None).into())
        .await;
    assert_eq!(v3_connack(&v3.recv(T).await.expect("connack")), 0);
    let mut kept = subscriber(s.addr, "pub1-cid", "pub1", &[]).await;

    s.replace_policy(&policy(true));
    s.signal("-HUP");
    let seen = v5.until_closed(PATIENCE).await.expect("closed");
    let last = seen.last().expect("a DISCONNECT");
    assert_eq!(disconnect_code(last), 0x87);
    let Packet::V5_0Disconnect(d) = last else {
        unreachable!()
    };
    let reason = d
        .props()
        .as_ref()
        .and_then(|p| reason_string(p))
        .expect("a reason string");
    assert!(
        reason.contains("policy reloaded") && reason.contains("mallory"),
        "{reason}"
    );
    let seen = v3.until_closed(PATIENCE).await.expect("3.1.1 closed");
    assert!(
        seen.is_empty(),
        "3.1.1 has no DISCONNECT from the server: {seen:?}"
    );
    // pub1 is still allowed and stays.
    kept.send(v5_pub("b/x", b"x", Qos::AtLeastOnce, Some(7)).into())
        .await;
    assert!(matches!(kept.recv(T).await, Ok(Packet::V5_0Puback(_))));
    // mallory cannot connect again.
    let mut again = Raw::open(s.addr, Version::V5_0).await;
    again
        .send(v5_connect("mallory5", Some("mallory")).into())
        .await;
    // Not in the policy any more: its identity is not proven (semantics.md §4).
    assert_eq!(v5_connack(&again.recv(T).await.expect("connack")).0, 0x86);
}

/// A will the new policy no longer allows is discarded at the reload
/// (counted), and not published when its client then goes away.
#[tokio::test]
async fn a_will_no_longer_allowed_is_discarded_and_not_published() {
    let s = Served::start(&[]);
    let mut watcher = subscriber(s.addr, "sub1-cid", "sub1", &["w/#", "b/#"]).await;
    let mut willer = connected_willer(s.addr, false).await;

    s.replace_policy(&policy(true));
    s.signal("-HUP");
    s.settles(RELOADS_OK, 1.0).await;
    // Discarded at the reload, while its client is still connected.
    s.settles("topicgate_wills_discarded_total", 1.0).await;
    // willer is still in the policy (it may publish on `b/`): it stays connected.
    willer
        .send(v5_pub("b/alive", b"x", Qos::AtMostOnce, None).into())
        .await;
    assert_eq!(
        topics_until(&mut watcher, "b/alive").await,
        Vec::<String>::new()
    );

    // The connection drops without DISCONNECT: a will would be due now.
    drop(willer);
    let open = format!("topicgate_connections{{listener=\"mqtt://{}\"}}", s.addr);
    s.settles(&open, 1.0).await;
    let mut p = subscriber(s.addr, "pub1-cid", "pub1", &[]).await;
    p.send(v5_pub("b/after", b"x", Qos::AtMostOnce, None).into())
        .await;
    assert_eq!(
        topics_until(&mut watcher, "b/after").await,
        Vec::<String>::new()
    );
    assert_eq!(s.metric("topicgate_wills_published_total"), 0.0);
    assert_eq!(s.metric("topicgate_wills_discarded_total"), 1.0);
}

/// With `--data`, a will discarded by a reload is removed from the store too
/// (semantics.md §11, "Wills across a crash"): after a SIGKILL, a restart
/// under a policy that would allow it again does not publish it.
#[tokio::test]
async fn a_will_discarded_by_a_reload_is_not_published_after_a_crash() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_arg = data.path().join("data");
    let data_arg = data_arg.to_str().expect("utf-8 path");
    let s = Served::start(&["--data", data_arg]);
    let willer = connected_willer(s.addr, true).await;

    s.replace_policy(&policy(true));
    s.signal("-HUP");
    s.settles(RELOADS_OK, 1.0).await;
    s.settles("topicgate_wills_discarded_total", 1.0).await;
    // The removal was queued before the count; a persistent session's CONNACK
    // waits for a write behind it in the ordered writer.
    let mut barrier = Raw::open(s.addr, Version::V5_0).await;
    let o = Opts {
        resume: true,
        props: vec![
            mqtt_protocol_core::mqtt::packet::SessionExpiryInterval::new(60)
                .expect("expiry")
                .into(),
        ],
        ..Opts::default()
    };
    barrier
        .send(v5_connect_with("pub1-cid", Some("pub1"), None, o).into())
        .await;
    assert_eq!(v5_connack(&barrier.recv(T).await.expect("connack")).0, 0);
    drop(s); // SIGKILL
    drop((willer, barrier));

    // Restarted under the first policy, which allows the will again.
    let s = Served::start(&["--data", data_arg]);
    let mut watcher = subscriber(s.addr, "sub1-cid", "sub1", &["w/#", "b/#"]).await;
    let mut p = subscriber(s.addr, "pub1-cid", "pub1", &[]).await;
    p.send(v5_pub("b/after", b"x", Qos::AtMostOnce, None).into())
        .await;
    assert_eq!(
        topics_until(&mut watcher, "b/after").await,
        Vec::<String>::new(),
        "no retained will"
    );
    assert_eq!(s.metric("topicgate_wills_published_total"), 0.0);
}

/// systemd readiness (Type=notify): READY=1 once the listeners are up,
/// RELOADING=1 then READY=1 around a reload, STOPPING=1 at SIGTERM.
#[cfg(unix)]
#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, policy(false)).expect("policy");
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--mqtt", "127.0.0.1:0"])
        .arg(&policy_path)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    listening_port(&mut child);
    let recv = |want: &str| {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification");
        let got = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            got.lines().any(|l| l == want),
            "expected {want}, got {got:?}"
        );
    };
    recv("READY=1");
    let pid = child.id().to_string();
    let hup = Command::new("kill").args(["-HUP", &pid]).status();
    assert!(hup.expect("kill").success());
    recv("RELOADING=1");
    recv("READY=1");
    let term = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.expect("kill").success());
    recv("STOPPING=1");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// The race the epoch closes (decision 0023), made deterministic in process:
/// a copy routed before the swap (stamped with the old epoch) reaches the
/// subscriber's mailbox only after the reload returned. It must not be sent on
/// the revoked subscription; a copy of the same age that a kept subscription
/// matches still is.
#[tokio::test]
async fn a_copy_routed_before_the_reload_and_queued_after_it_is_not_sent() {
    use topicgate::broker::message::{Delivery, Message};
    use topicgate::broker::session::Deliver;
    let b = start(
        support::policy::compile(&policy(false)),
        topicgate::broker::BrokerConfig::default(),
    )
    .await;
    let mut sub = subscriber(b.addr, "sub1-cid", "sub1", &["a/#", "b/#"]).await;
    let shared = b.broker.shared().clone();
    let session = shared
        .sessions
        .all()
        .into_iter()
        .find(|s| &*s.client_id == "sub1-cid")
        .expect("the subscriber's session");
    let routed_at = shared.router.epoch();
    let copy = |topic: &str| Delivery {
        msg: Arc::new(Message {
            topic: topic.into(),
            payload: Arc::from(&b"x"[..]),
            qos: Qos::AtMostOnce,
            retain: false,
            props: Vec::new(),
            expires_at: None,
            origin: Arc::from("pub1-cid"),
        }),
        qos: Qos::AtMostOnce,
        retain: false,
        subscription_ids: Vec::new(),
        epoch: routed_at,
        stored: None,
    };

    let revoked = b
        .broker
        .replace_policy(support::policy::compile(&policy(true)));
    assert_eq!(revoked.subscriptions, 1);
    assert_ne!(shared.router.epoch(), routed_at);
    // Handed over after the reload returned, as a publisher preempted between
    // routing and delivering would.
    for topic in ["a/late", "b/late"] {
        assert!(matches!(
            session.deliver(copy(topic), 1000),
            Deliver::Queued
        ));
    }
    // The copies leave in the order they were queued: `a/late` would come first.
    let got = sub.recv(T).await.expect("the kept subscription's copy");
    assert_eq!(publish_parts(&got).0, "b/late");
    assert_eq!(
        b.broker.stats().dropped[topicgate::broker::stats::DropReason::Revoked as usize].get(),
        1
    );
}

/// SIGHUP reads the TLS listeners' certificate and key again: new handshakes
/// get the new server certificate; a pair that cannot be used is refused
/// (logged) and the one in force stays.
#[tokio::test]
async fn sighup_reloads_the_tls_certificate_and_refuses_a_bad_one() {
    use support::tls::{client_config, install_provider, tls_connect, Pki};
    install_provider();
    let pki = Pki::new();
    let client = pki.ca.issue_client("sensor1").expect("client");
    let (cert, key) = (
        pki.dir.path().join("server.pem"),
        pki.dir.path().join("server.key"),
    );
    let log = pki.dir.path().join("stderr.log");
    let policy = format!("{}/policies/lwt.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(BIN)
        .args(["serve", "--mqtts", "127.0.0.1:0"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg(&policy)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    let port = listening_port(&mut child);
    let _kill = support::serve::Killer::one(child);
    let pid = _kill.0[0].id().to_string();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let served = || async {
        let tls = tls_connect(addr, client_config(&pki, Some(&client), false))
            .await
            .expect("handshake");
        let (_, conn) = tls.get_ref();
        conn.peer_certificates().expect("server certificate")[0].to_vec()
    };
    let logged = |what: &'static str| {
        let log = log.clone();
        move || std::fs::read_to_string(&log).is_ok_and(|l| l.matches(what).count() == 1)
    };
    assert_eq!(served().await, pki.server.der);

    // A new pair, each file renamed over the old one.
    let renewed = pki.ca.issue_server(&[]).expect("server cert");
    for (path, text) in [(&cert, &renewed.cert_pem), (&key, &renewed.key_pem)] {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }
    let hup = Command::new("kill").args(["-HUP", &pid]).status();
    assert!(hup.expect("kill").success());
    eventually(logged("TLS certificate reloaded")).await;
    assert_eq!(served().await, renewed.der);

    // A certificate that is not PEM: refused, the renewed pair stays.
    std::fs::write(&cert, "not a certificate").expect("write");
    let hup = Command::new("kill").args(["-HUP", &pid]).status();
    assert!(hup.expect("kill").success());
    eventually(logged("TLS certificate reload refused")).await;
    assert_eq!(served().await, renewed.der);
}
