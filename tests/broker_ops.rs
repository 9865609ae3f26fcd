//! `topicgate serve --metrics ADDR --events-file FILE`: the Prometheus endpoint
//! and the lifecycle events, driven by real rumqttc clients against the real
//! binary, read over real HTTP and from the real file.

mod support;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, QoS,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_topicgate");
/// How long a condition may take to hold (polled, never asserted as a speed).
const PATIENCE: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(50);

struct Served {
    child: Child,
    mqtt: u16,
    metrics: SocketAddr,
    events: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --dev` on the LWT policy with metrics and an events file.
fn serve() -> Served {
    serve_with(&[])
}

/// Like [`serve`], with more flags.
fn serve_with(extra: &[&str]) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let policy = format!("{}/policies/lwt.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--mqtt",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--events-file")
        .arg(&events)
        .args(extra)
        .arg(&policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut mqtt = None;
    let mut metrics = None;
    for line in support::serve::announced(&mut child, 2).0 {
        let addr = line.trim().rsplit("://").next().unwrap_or_default();
        if let Some(a) = line.strip_prefix("listening on mqtt://") {
            mqtt = Some(support::serve::port_of(a));
        } else if line.starts_with("metrics on http://") {
            metrics = addr.trim_end_matches("/metrics").parse().ok();
        }
    }
    Served {
        child,
        mqtt: mqtt.expect("mqtt port"),
        metrics: metrics.expect("metrics address"),
        events,
        _dir: dir,
    }
}

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

fn scrape(s: &Served, series: &str) -> f64 {
    let (status, body) = get(s.metrics, "/metrics");
    assert_eq!(status, 200);
    sample(&body, series).unwrap_or_else(|| panic!("no `{series}` in:\n{body}"))
}

/// Waits until `series` reads `want`; fails with the last value otherwise.
async fn settles(s: &Served, series: &str, want: f64) {
    let mut last = f64::NAN;
    for _ in 0..(PATIENCE.as_millis() / STEP.as_millis()) {
        last = scrape(s, series);
        if last == want {
            return;
        }
        tokio::time::sleep(STEP).await;
    }
    panic!("`{series}` is {last}, expected {want}");
}

fn denials(action: &str, code: &str) -> String {
    format!("topicgate_authorization_denials_total{{action=\"{action}\",reason_code=\"{code}\"}}")
}

fn opts(id: &str, user: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, "");
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Connects and waits for CONNACK: the client and its event loop, or the refusal.
async fn connect(o: MqttOptions) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (client, mut el) = AsyncClient::new(o, 16);
    loop {
        match tokio::time::timeout(PATIENCE, el.poll())
            .await
            .expect("CONNACK in time")?
        {
            Event::Incoming(Incoming::ConnAck(_)) => return Ok((client, el)),
            _ => continue,
        }
    }
}

/// Polls `el` until `pred` holds for an event, or the connection fails.
async fn until(
    el: &mut EventLoop,
    mut pred: impl FnMut(&Event) -> bool,
) -> Result<Event, ConnectionError> {
    loop {
        let ev = tokio::time::timeout(PATIENCE, el.poll())
            .await
            .expect("event in time")?;
        if pred(&ev) {
            return Ok(ev);
        }
    }
}

#[tokio::test]
async fn endpoints_answer_and_the_policy_hash_is_exposed() {
    let s = serve();
    assert_eq!(get(s.metrics, "/healthz").0, 200);
    assert_eq!(get(s.metrics, "/readyz").0, 200);
    assert_eq!(get(s.metrics, "/nothing-here").0, 404);
    let (_, body) = get(s.metrics, "/metrics");
    let info = body
        .lines()
        .find(|l| l.starts_with("topicgate_policy_info{policy_sha256=\""))
        .unwrap_or_else(|| panic!("no policy info in:\n{body}"));
    let hash = info.split('"').nth(1).unwrap_or_default();
    assert_eq!(hash.len(), 64, "{info}");
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
}

#[tokio::test]
async fn connection_gauge_and_denial_counters_move_with_real_clients() {
    let s = serve();
    let gauge = format!(
        "topicgate_connections{{listener=\"mqtt://127.0.0.1:{}\"}}",
        s.mqtt
    );
    assert_eq!(scrape(&s, &gauge), 0.0);
    for action in ["connect", "will", "publish", "subscribe"] {
        for code in ["0x86", "0x87"] {
            assert_eq!(scrape(&s, &denials(action, code)), 0.0, "{action} {code}");
        }
    }

    // An allowed client holds one connection; its denied SUBSCRIBE counts once.
    let (client, mut el) = connect(opts("act1", "actuator1", s.mqtt))
        .await
        .expect("connect");
    settles(&s, &gauge, 1.0).await;
    client
        .subscribe("clients/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let ack = until(&mut el, |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    })
    .await;
    let Ok(Event::Incoming(Incoming::SubAck(ack))) = ack else {
        panic!("{ack:?}")
    };
    assert_eq!(
        ack.return_codes,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    assert_eq!(scrape(&s, &denials("subscribe", "0x87")), 1.0);
    // An allowed SUBSCRIBE is no denial.
    client
        .subscribe("clients/+/status", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    until(&mut el, |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    })
    .await
    .expect("suback");
    assert_eq!(scrape(&s, &denials("subscribe", "0x87")), 1.0);

    // An allowed PUBLISH from a sensor reaches the actuator: received and delivered.
    let (sensor, mut sel) = connect(opts("s1", "sensor1", s.mqtt))
        .await
        .expect("connect");
    settles(&s, &gauge, 2.0).await;
    sensor
        .publish("clients/sensor1/status", QoS::AtLeastOnce, false, "up")
        .await
        .expect("publish");
    until(&mut sel, |e| {
        matches!(e, Event::Incoming(Incoming::PubAck(_)))
    })
    .await
    .expect("puback");
    until(&mut el, |e| {
        matches!(e, Event::Incoming(Incoming::Publish(_)))
    })
    .await
    .expect("delivery");
    assert_eq!(
        scrape(&s, "topicgate_messages_received_total{qos=\"1\"}"),
        1.0
    );
    settles(&s, "topicgate_messages_delivered_total{qos=\"1\"}", 1.0).await;
    assert_eq!(scrape(&s, &denials("publish", "0x87")), 0.0);

    // A denied PUBLISH (3.1.1: the connection is closed) counts, and the gauge drops.
    sensor
        .publish("clients/sensor2/status", QoS::AtLeastOnce, false, "x")
        .await
        .expect("publish");
    let end = until(&mut sel, |e| {
        matches!(e, Event::Incoming(Incoming::PubAck(_)))
    })
    .await;
    assert!(
        end.is_err(),
        "a denied 3.1.1 PUBLISH closes the connection: {end:?}"
    );
    assert_eq!(scrape(&s, &denials("publish", "0x87")), 1.0);
    settles(&s, &gauge, 1.0).await;

    // CONNECT refusals: an unknown client (0x86), a will the policy forbids (0x87).
    let refused = connect(opts("ghost", "nobody", s.mqtt)).await.err();
    assert!(
        matches!(refused, Some(ConnectionError::ConnectionRefused(_))),
        "{refused:?}"
    );
    assert_eq!(scrape(&s, &denials("connect", "0x86")), 1.0);
    assert_eq!(scrape(&s, &denials("connect", "0x87")), 0.0);
    let mut o = opts("s1w", "sensor1", s.mqtt);
    o.set_last_will(LastWill::new(
        "clients/sensor2/status",
        "down",
        QoS::AtLeastOnce,
        false,
    ));
    let refused = connect(o).await.err();
    assert!(
        matches!(refused, Some(ConnectionError::ConnectionRefused(_))),
        "{refused:?}"
    );
    assert_eq!(scrape(&s, &denials("will", "0x87")), 1.0);
    assert_eq!(scrape(&s, &denials("connect", "0x87")), 0.0);
    settles(&s, &gauge, 1.0).await;

    drop((client, el));
    settles(&s, &gauge, 0.0).await;
    assert_eq!(scrape(&s, "topicgate_sessions"), 0.0);
}

/// The events written so far, one JSON value per line.
fn events(s: &Served) -> Vec<Value> {
    let text = std::fs::read_to_string(&s.events).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits until `want` events were written.
async fn written(s: &Served, want: usize) -> Vec<Value> {
    for _ in 0..(PATIENCE.as_millis() / STEP.as_millis()) {
        let all = events(s);
        if all.len() >= want {
            return all;
        }
        tokio::time::sleep(STEP).await;
    }
    panic!("expected {want} events, got {:#?}", events(s));
}

/// The events of one session, in the order written.
fn of<'a>(all: &'a [Value], auth: &str, client_id: &str) -> Vec<&'a Value> {
    let subject = format!("clients/{auth}/sessions/{client_id}");
    all.iter().filter(|e| e["subject"] == subject).collect()
}

fn kind(e: &Value) -> &str {
    e["type"].as_str().unwrap_or_default()
}

const CONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionConnected";
const DISCONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionDisconnected";

#[tokio::test]
async fn lifecycle_events_name_the_disconnection_reason() {
    let mut s = serve();

    // DISCONNECT: ClientInitiatedDisconnect.
    let (c, mut el) = connect(opts("polite", "sensor1", s.mqtt))
        .await
        .expect("connect");
    c.disconnect().await.expect("disconnect");
    let _ = until(&mut el, |_| false).await;
    // A dropped socket: ConnectionLost.
    let (c, el) = connect(opts("rude", "sensor2", s.mqtt))
        .await
        .expect("connect");
    drop((c, el));
    // The same client ID again: the first connection is SessionTakenOver.
    let (c1, mut el1) = connect(opts("twice", "actuator1", s.mqtt))
        .await
        .expect("connect");
    let (_c2, _el2) = connect(opts("twice", "actuator1", s.mqtt))
        .await
        .expect("connect");
    let _ = until(&mut el1, |_| false).await;
    drop(c1);
    // A refused CONNECT is no session: no event.
    assert!(connect(opts("ghost", "nobody", s.mqtt)).await.is_err());

    let all = written(&s, 7).await;
    for e in &all {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "/namespaces/lwt-demo");
        assert_eq!(e["data"]["namespaceName"], "lwt-demo");
        assert!(e["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let reasons = |auth: &str, id: &str| -> Vec<(String, Option<String>)> {
        of(&all, auth, id)
            .iter()
            .map(|e| {
                assert_eq!(e["data"]["clientAuthenticationName"], auth);
                assert_eq!(e["data"]["clientSessionName"], id);
                (
                    kind(e).to_string(),
                    e["data"]["disconnectionReason"]
                        .as_str()
                        .map(str::to_string),
                )
            })
            .collect()
    };
    let connected = (CONNECTED.to_string(), None);
    let disconnected = |why: &str| (DISCONNECTED.to_string(), Some(why.to_string()));
    assert_eq!(
        reasons("sensor1", "polite"),
        vec![connected.clone(), disconnected("ClientInitiatedDisconnect")]
    );
    assert_eq!(
        reasons("sensor2", "rude"),
        vec![connected.clone(), disconnected("ConnectionLost")]
    );
    assert_eq!(
        reasons("actuator1", "twice"),
        vec![
            connected.clone(),
            disconnected("SessionTakenOver"),
            connected.clone()
        ]
    );
    assert!(of(&all, "nobody", "ghost").is_empty());

    // Sequence numbers increase, within a session and across the broker.
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| {
            e["data"]["sequenceNumber"]
                .as_u64()
                .expect("sequenceNumber")
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Stopping the broker: the session still connected ends ServerInitiatedDisconnect,
    // and that event is written before the process exits.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let mut exited = false;
    for _ in 0..(PATIENCE.as_millis() / STEP.as_millis()) {
        if let Ok(Some(_)) = s.child.try_wait() {
            exited = true;
            break;
        }
        tokio::time::sleep(STEP).await;
    }
    assert!(exited, "serve did not stop on SIGTERM");
    let all = events(&s);
    let last = of(&all, "actuator1", "twice");
    assert_eq!(last.len(), 4, "{all:#?}");
    assert_eq!(
        last[3]["data"]["disconnectionReason"],
        "ServerInitiatedDisconnect"
    );
}

/// One POST the test's HTTP server received.
struct Post {
    content_type: String,
    events: Vec<Value>,
}

/// A real HTTP server on 127.0.0.1: answers the first `fail_first` POSTs 503
/// and the rest 200, and reports each (with whether it was accepted).
fn webhook_server(fail_first: usize) -> (SocketAddr, std::sync::mpsc::Receiver<(bool, Post)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(50).enumerate() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(PATIENCE));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut content_type = String::new();
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    content_type = v.trim().to_string();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let accepted = n >= fail_first;
            let status = if accepted {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let events = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("not a JSON array: {e}: {}", String::from_utf8_lossy(&body))
            });
            if tx
                .send((
                    accepted,
                    Post {
                        content_type,
                        events,
                    },
                ))
                .is_err()
            {
                break;
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn webhook_gets_batches_and_a_refused_batch_is_retried() {
    let (hook, posts) = webhook_server(1);
    let url = format!("http://{hook}/events?code=1");
    let s = serve_with(&["--events-webhook", &url]);
    let (c, mut el) = connect(opts("hooked", "sensor1", s.mqtt))
        .await
        .expect("connect");
    c.disconnect().await.expect("disconnect");
    let _ = until(&mut el, |_| false).await;

    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    for _ in 0..20 {
        let Ok((ok, post)) = posts.recv_timeout(PATIENCE) else {
            break;
        };
        assert_eq!(
            post.content_type,
            "application/cloudevents-batch+json; charset=utf-8"
        );
        let ids = post
            .events
            .iter()
            .map(|e| e["id"].clone())
            .collect::<Vec<_>>();
        if ok {
            accepted.extend(post.events);
        } else {
            refused.extend(ids);
        }
        if accepted.len() >= 2 {
            break;
        }
    }
    assert!(!refused.is_empty(), "the first POST was answered 503");
    // What was refused came again, and was accepted.
    for id in &refused {
        assert!(
            accepted.iter().any(|e| &e["id"] == id),
            "{id} was not retried"
        );
    }
    let kinds: Vec<_> = accepted
        .iter()
        .map(|e| (kind(e), e["subject"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (CONNECTED, Value::from("clients/sensor1/sessions/hooked")),
            (DISCONNECTED, Value::from("clients/sensor1/sessions/hooked")),
        ]
    );
    assert_eq!(
        accepted[1]["data"]["disconnectionReason"],
        "ClientInitiatedDisconnect"
    );
    // The file sink got the same events.
    let file: Vec<_> = written(&s, 2)
        .await
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let hooked: Vec<_> = accepted.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(file, hooked);
    assert_eq!(scrape(&s, "topicgate_events_failed_total"), 0.0);
}

#[test]
fn a_webhook_url_that_is_not_http_is_refused_at_start() {
    let (code, err) = refused_at_start(&["--events-webhook", "https://example.invalid/hook"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("only http:// URLs are supported"), "{err}");
}

#[tokio::test]
async fn json_logs_carry_denials_as_fields() {
    let policy = format!("{}/policies/lwt.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--mqtt",
            "127.0.0.1:0",
            "--log-format",
            "json",
            &policy,
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let port = support::serve::listening_port(&mut child);
    assert!(connect(opts("ghost", "nobody", port)).await.is_err());
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    // The development-mode banner is plain text; every log record is one JSON object.
    let records: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let denial = records
        .iter()
        .find(|r| r["message"] == "denied")
        .unwrap_or_else(|| panic!("no denial in:\n{err}"));
    assert_eq!(denial["level"], "WARN");
    assert_eq!(denial["action"], "connect");
    assert_eq!(denial["client"], "nobody");
    assert_eq!(denial["client_id"], "ghost");
    assert!(records.iter().any(|r| r["message"] == "policy loaded"));
}

/// `serve` with `args` exits at start: its exit code and stderr.
fn refused_at_start(args: &[&str]) -> (Option<i32>, String) {
    let policy = format!("{}/policies/lwt.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .args(["serve", "--dev", "--mqtt", "127.0.0.1:0"])
        .args(args)
        .arg(&policy)
        .stdout(Stdio::null())
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_taken_metrics_port_or_an_unwritable_events_file_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = refused_at_start(&["--metrics", &addr]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (code, err) = refused_at_start(&["--events-file", &dir.path().display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot open the events file"), "{err}");
}
