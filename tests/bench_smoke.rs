//! A short run of every `topicgate bench` scenario against our own broker, started
//! in-process on a loopback port in development mode (usernames name the policy's
//! clients). It checks that the bench and the broker work together end to end and
//! that the numbers add up; it asserts nothing about speed (that is what
//! `scripts/bench-vs-mosquitto.sh` measures).

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use topicgate::bench::{self, BenchConfig, Names, Scenario};
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};
use topicgate::decisions::access::AccessPolicy;
use topicgate::pipeline::{compile_text, from_compilation};

/// The bench's default identities as policy clients, with per-client templates.
const POLICY: &str = r#"
namespace: bench-smoke
clients:
  bench-pub-0: { attributes: { role: publisher } }
  bench-pub-1: { attributes: { role: publisher } }
  bench-sub-0: { attributes: { role: subscriber } }
  bench-sub-1: { attributes: { role: subscriber } }
  bench-will: { attributes: { role: will } }
  bench-idle: { attributes: { role: idle } }
clientGroups:
  publishers: { query: "attributes.role = 'publisher'" }
  subscribers: { query: "attributes.role = 'subscriber'" }
  will-clients: { query: "attributes.role = 'will'" }
topicSpaces:
  own-data: { topicTemplates: [ "bench/$<client.authenticationName>/data" ] }
  all-data: { topicTemplates: [ "bench/+/data" ] }
  own-will: { topicTemplates: [ "bench/$<client.authenticationName>/will" ] }
  all-wills: { topicTemplates: [ "bench/+/will" ] }
permissionBindings:
  pub-data: { clientGroup: publishers, topicSpace: own-data, permission: publisher }
  sub-data: { clientGroup: subscribers, topicSpace: all-data, permission: subscriber }
  pub-will: { clientGroup: will-clients, topicSpace: own-will, permission: publisher }
  sub-wills: { clientGroup: subscribers, topicSpace: all-wills, permission: subscriber }
"#;

async fn start_broker() -> (Broker, SocketAddr) {
    let policy: Arc<dyn AccessPolicy> =
        match from_compilation(compile_text("bench.yaml", POLICY, None)) {
            Ok(l) => Arc::new(l.policy),
            Err(e) => panic!("smoke policy does not compile: {e}"),
        };
    // The bench's will and idle clients share one identity each (`Names`).
    let config = BrokerConfig {
        max_sessions_per_authentication_name: 1_000,
        ..Default::default()
    };
    let broker = Broker::new(policy, config, IdentityMode::Dev { anonymous: None });
    let (addr, _task) = broker
        .listen("127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("bind loopback");
    (broker, addr)
}

fn config(addr: SocketAddr, scenario: Scenario) -> BenchConfig {
    BenchConfig {
        scenario,
        addr,
        qos: rumqttc::mqttbytes::QoS::AtMostOnce,
        publishers: 2,
        subscribers: 2,
        payload: 64,
        messages: 5_000,
        deadline: Duration::from_secs(3),
        drain: Duration::from_secs(3),
        rate: None,
        inflight: 100,
        count: 10,
        keep_alive: 1,
        concurrency: 50,
        hold: Duration::from_millis(100),
        broker_pid: Some(std::process::id()),
        names: Names::default(),
        persistent: false,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_our_broker() {
    let (_broker, addr) = start_broker().await;

    // QoS 1 fan-out at a fixed rate: nothing may be lost, and the counts must add up.
    let mut cfg = config(addr, Scenario::Fanout);
    cfg.qos = rumqttc::mqttbytes::QoS::AtLeastOnce;
    cfg.messages = 2_000;
    cfg.rate = Some(4_000.0);
    let r = bench::run(&cfg).await.expect("fanout runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.sent, Some(4_000), "{}", r.table());
    assert_eq!(r.expected, Some(8_000), "every message to both subscribers");
    assert_eq!(r.delivered, Some(8_000), "{}", r.table());
    assert_eq!(r.lost, Some(0));
    assert_eq!(r.latency.as_ref().map(|l| l.samples), Some(8_000));
    assert!(
        r.broker.is_some(),
        "usage is read from /proc for --broker-pid"
    );

    // QoS 0 pair at full speed: every subscriber gets only its own publisher's messages.
    let r = bench::run(&config(addr, Scenario::Pair))
        .await
        .expect("pair runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.expected, r.sent, "pair: one delivery per message");
    assert!(
        r.delivered.unwrap_or(0) <= r.expected.unwrap_or(0),
        "{}",
        r.table()
    );
    assert!(r.delivered.unwrap_or(0) > 0, "{}", r.table());

    // Wills after an abrupt close, one at a time: all arrive.
    let mut cfg = config(addr, Scenario::WillKill);
    cfg.qos = rumqttc::mqttbytes::QoS::AtLeastOnce;
    cfg.count = 5;
    let r = bench::run(&cfg).await.expect("will-kill runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        (r.expected, r.delivered, r.lost),
        (Some(5), Some(5), Some(0)),
        "{}",
        r.table()
    );

    // Silent clients with a 1 s keep-alive: the broker notices and publishes both wills.
    let mut cfg = config(addr, Scenario::WillSilent);
    cfg.qos = rumqttc::mqttbytes::QoS::AtLeastOnce;
    cfg.count = 2;
    let r = bench::run(&cfg).await.expect("will-silent runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.delivered, Some(2), "{}", r.table());
    assert_eq!(r.will_limit_ms, Some(1_600.0));

    // A storm of 300 wills at QoS 1: none lost.
    let mut cfg = config(addr, Scenario::WillStorm);
    cfg.qos = rumqttc::mqttbytes::QoS::AtLeastOnce;
    cfg.count = 300;
    let r = bench::run(&cfg).await.expect("will-storm runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.connections_established, Some(300));
    assert_eq!((r.delivered, r.lost), (Some(300), Some(0)), "{}", r.table());
    assert!(r.time_to_last_will_ms.is_some());

    // 500 idle connections: all held, memory per connection reported.
    let mut cfg = config(addr, Scenario::Connect);
    cfg.count = 500;
    let r = bench::run(&cfg).await.expect("connect runs");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.connections_established, Some(500));
    assert!(r.broker_rss_per_connection_bytes.is_some());
}

#[tokio::test]
async fn a_client_the_policy_does_not_know_is_refused_with_a_clear_error() {
    let (_broker, addr) = start_broker().await;
    let mut cfg = config(addr, Scenario::Fanout);
    cfg.names.publisher_user = "stranger-{i}".into();
    let e = bench::run(&cfg)
        .await
        .expect_err("an unknown username cannot publish");
    let msg = e.to_string();
    assert!(
        msg.contains("stranger-0") && msg.contains("refused"),
        "{msg}"
    );
}
