//! The store failing under a connection (issue 14): a CONNECT whose session
//! or will cannot be stored is refused (decision 0031); a QoS 2 state that
//! cannot be stored before its packet leaves is not sent, and the connection
//! closes (decision 0030). In-process: the store's writer is made to fail by
//! its test switch, so that the real error path runs from the write to the
//! client.

use crate::broker::fuzzing;
use crate::broker::session::Session;
use crate::broker::state::Shared;
use crate::broker::store::{Durability, Store};
use crate::broker::{Broker, BrokerConfig, IdentityMode};
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, DisconnectReasonCode, LastWill, LastWillProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, StateError,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// What a test holds while its broker serves: the store's directory, the
/// broker (it stops when dropped) and its accept task.
type Held = (tempfile::TempDir, Broker, tokio::task::JoinHandle<()>);

/// A broker over a fresh store, listening on loopback.
async fn served_with_store() -> (Held, Arc<Shared>, SocketAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = crate::compiler::front_end("p.yaml", fuzzing::POLICY, None)
        .into_compiled()
        .expect("policy compiles");
    let (store, restored) =
        Store::open(&dir.path().join("data"), Durability::Sync).expect("store opens");
    let identity = IdentityMode::Dev {
        anonymous: Some("admin".into()),
    };
    let cfg = BrokerConfig::default();
    let broker = Broker::with_store(Arc::new(policy), cfg, identity, store, restored).0;
    let shared = broker.shared().clone();
    let (addr, accept) = broker
        .listen("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("listen");
    ((dir, broker, accept), shared, addr)
}

/// Waits until the broker has seen the session's connection end.
async fn until_offline(session: &Session) {
    for _ in 0..500 {
        if !session.is_online() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} still online", session.client_id);
}

fn v5_options(addr: SocketAddr, id: &str, clean: bool, will: Option<&str>) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_clean_start(clean);
    o.set_session_expiry_interval(Some(3600));
    if let Some(topic) = will {
        o.set_last_will(LastWill::new(
            topic,
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
    }
    o
}

/// Polls until the CONNACK: its Session Present, or the refusal.
async fn connack(ev: &mut EventLoop) -> Result<bool, ConnectReturnCode> {
    for _ in 0..100 {
        match tokio::time::timeout(T, ev.poll())
            .await
            .expect("no CONNACK in time")
        {
            Ok(Event::Incoming(Incoming::ConnAck(a))) => return Ok(a.session_present),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
            Err(e) => panic!("connection failed without a CONNACK: {e}"),
        }
    }
    panic!("no CONNACK among 100 events");
}

/// Polls until an incoming packet `done` accepts; returns the PUBLISH
/// payloads seen on the way (and the accepted one's, if a PUBLISH).
async fn until(ev: &mut EventLoop, done: impl Fn(&Incoming) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let event = tokio::time::timeout(T, ev.poll()).await.expect("in time");
        if let Event::Incoming(p) = event.expect("connection up") {
            if let Incoming::Publish(m) = &p {
                seen.push(String::from_utf8_lossy(&m.payload).into_owned());
            }
            if done(&p) {
                return seen;
            }
        }
    }
    panic!("not done after 1000 events: {seen:?}");
}

async fn connected(opts: MqttOptions) -> (AsyncClient, EventLoop, bool) {
    let (c, mut ev) = AsyncClient::new(opts, 16);
    let present = connack(&mut ev).await.expect("accepted");
    (c, ev, present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_whose_session_cannot_be_stored_is_refused_and_leaves_no_trace() {
    let (_held, shared, addr) = served_with_store().await;

    // A watcher of the will topics (no session to store: it connects whatever
    // the store does).
    let mut w = MqttOptions::new("watch", "127.0.0.1", addr.port());
    w.set_clean_start(true);
    let (watch, mut watch_ev, _) = connected(w).await;
    watch
        .subscribe("status/#", QoS::AtLeastOnce)
        .await
        .expect("sub");
    until(&mut watch_ev, |p| matches!(p, Incoming::SubAck(_))).await;
    watch
        .subscribe("marker", QoS::AtLeastOnce)
        .await
        .expect("sub");
    until(&mut watch_ev, |p| matches!(p, Incoming::SubAck(_))).await;

    // `p` holds a persistent session, offline with a will pending for 300 s
    // (its socket closed without DISCONNECT), and one queued QoS 1 message.
    let mut po = v5_options(addr, "p", true, None);
    let delayed = LastWillProperties {
        delay_interval: Some(300),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    po.set_last_will(LastWill::new(
        "status/p",
        "p gone",
        QoS::AtLeastOnce,
        true,
        Some(delayed),
    ));
    let (pc, mut pev, _) = connected(po).await;
    pc.subscribe("q/#", QoS::AtLeastOnce).await.expect("sub");
    until(&mut pev, |p| matches!(p, Incoming::SubAck(_))).await;
    drop((pc, pev));
    let p = shared.sessions.lock().get("p").cloned().expect("p");
    until_offline(&p).await;
    let mut o = MqttOptions::new("pub", "127.0.0.1", addr.port());
    o.set_clean_start(true);
    let (pubc, mut pub_ev, _) = connected(o).await;
    pubc.publish("q/1", QoS::AtLeastOnce, false, "queued-1")
        .await
        .expect("publish");
    until(&mut pub_ev, |p| matches!(p, Incoming::PubAck(_))).await;
    // What the store holds of `p`: its pending will, when it went offline...
    let before = p.record().expect("p's record");
    assert!(before.will.is_some() && before.disconnected_at_ms.is_some());

    shared.store.as_ref().expect("store").fail_writes(true);

    // The resumed session, a new one (both with a will), a 3.1.1 one.
    for (id, clean) in [("p", false), ("n", true)] {
        let (_c, mut ev) = AsyncClient::new(v5_options(addr, id, clean, Some("status/x")), 16);
        assert_eq!(
            connack(&mut ev).await,
            Err(ConnectReturnCode::ServerUnavailable),
            "{id}"
        );
    }
    let mut o3 = rumqttc::MqttOptions::new("n3", "127.0.0.1", addr.port());
    o3.set_clean_session(false);
    o3.set_last_will(rumqttc::LastWill::new(
        "status/n3",
        "offline",
        rumqttc::QoS::AtLeastOnce,
        true,
    ));
    let (_c3, mut ev3) = rumqttc::AsyncClient::new(o3, 16);
    let refused = tokio::time::timeout(T, ev3.poll()).await.expect("in time");
    assert!(
        matches!(
            refused,
            Err(rumqttc::ConnectionError::ConnectionRefused(
                rumqttc::ConnectReturnCode::ServiceUnavailable
            ))
        ),
        "3.1.1: {refused:?}"
    );

    // No will was published: the marker, sent after, comes alone.
    pubc.publish("marker", QoS::AtLeastOnce, false, "m")
        .await
        .expect("publish");
    until(&mut pub_ev, |p| matches!(p, Incoming::PubAck(_))).await;
    let seen = until(
        &mut watch_ev,
        |p| matches!(p, Incoming::Publish(m) if &m.payload[..] == b"m"),
    )
    .await;
    assert_eq!(seen, vec!["m".to_string()], "no will among {seen:?}");
    assert_eq!(shared.stats.wills_published.get(), 0);
    assert_eq!(shared.stats.connections_refused.get(), 3);
    // The new sessions did not linger; the resumed one is offline again.
    assert!(!shared.sessions.contains("n"));
    assert!(!shared.sessions.contains("n3"));
    let kept = shared.sessions.lock().get("p").cloned().expect("p kept");
    assert!(Arc::ptr_eq(&kept, &p) && !p.is_online());
    assert_eq!(
        p.record(),
        Some(before),
        "p as it was, pending will included"
    );

    // Once the store works again, `p` resumes its session and gets its queue.
    shared.store.as_ref().expect("store").fail_writes(false);
    let (_pc, mut pev, present) = connected(v5_options(addr, "p", false, None)).await;
    assert!(present, "the session was kept");
    let seen = until(&mut pev, |p| matches!(p, Incoming::Publish(_))).await;
    assert_eq!(seen, vec!["queued-1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubrel_whose_state_cannot_be_stored_is_not_sent() {
    let (_held, shared, addr) = served_with_store().await;

    // `s` holds a persistent session and answers its QoS 2 copies by hand.
    let subscriber = |clean| {
        let mut o = v5_options(addr, "s", clean, None);
        o.set_manual_acks(true);
        o
    };
    let (sc, mut sev, _) = connected(subscriber(true)).await;
    sc.subscribe("t/#", QoS::ExactlyOnce).await.expect("sub");
    until(&mut sev, |p| matches!(p, Incoming::SubAck(_))).await;
    let mut o = MqttOptions::new("pub", "127.0.0.1", addr.port());
    o.set_clean_start(true);
    let (pubc, mut pub_ev, _) = connected(o).await;
    pubc.publish("t/1", QoS::ExactlyOnce, false, "one")
        .await
        .expect("publish");
    until(&mut pub_ev, |p| matches!(p, Incoming::PubComp(_))).await;
    let copy = loop {
        let event = tokio::time::timeout(T, sev.poll()).await.expect("in time");
        if let Event::Incoming(Incoming::Publish(m)) = event.expect("connection up") {
            break m;
        }
    };
    assert_eq!(
        (&copy.payload[..], copy.qos),
        (&b"one"[..], QoS::ExactlyOnce)
    );

    // Its PUBREC makes the broker store "PUBREL sent" before the PUBREL
    // leaves: that write fails, so no PUBREL, and the connection closes 0x80.
    shared.store.as_ref().expect("store").fail_writes(true);
    sc.ack(&copy).await.expect("PUBREC");
    let mut seen = Vec::new();
    let reason = loop {
        let event = tokio::time::timeout(T, sev.poll()).await.expect("in time");
        match event {
            Ok(Event::Incoming(p)) => seen.push(format!("{p:?}")),
            Ok(Event::Outgoing(_)) => {}
            // rumqttc reports the server's DISCONNECT as the connection's error.
            Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                reason_code, ..
            })) => break Some(reason_code),
            Err(e) => panic!("the connection ended without a DISCONNECT: {e}"),
        }
    };
    // rumqttc returns the DISCONNECT's error before the events of packets read
    // with it: those are still in its queue.
    seen.extend(sev.state.events.iter().map(|e| format!("{e:?}")));
    assert!(
        !seen.iter().any(|p| p.contains("PubRel")),
        "a PUBREL left before its state was stored: {seen:?}"
    );
    assert_eq!(reason, Some(DisconnectReasonCode::UnspecifiedError));
    drop((sc, sev));

    // Once the store works again, the resumed session completes the exchange
    // with the PUBREL under the same identifier, and the message is not
    // delivered again. (rumqttc forgets the QoS 2 receipts of a client at
    // reconnect, so it takes that PUBREL for an unsolicited one, naming its
    // identifier: that error is how the PUBREL shows here.)
    shared.store.as_ref().expect("store").fail_writes(false);
    let s = shared.sessions.lock().get("s").cloned().expect("s kept");
    until_offline(&s).await;
    let (_sc, mut sev, present) = connected(subscriber(false)).await;
    assert!(present, "the session was kept");
    let mut again = Vec::new();
    let released = loop {
        let event = tokio::time::timeout(T, sev.poll()).await.expect("in time");
        match event {
            Ok(Event::Incoming(Incoming::Publish(m))) => again.push((m.pkid, m.dup)),
            Ok(_) => {}
            Err(ConnectionError::MqttState(StateError::Unsolicited(id))) => break id,
            Err(e) => panic!("the connection ended without a PUBREL: {e}"),
        }
    };
    assert_eq!(released, copy.pkid, "PUBREL under the copy's identifier");
    assert!(again.is_empty(), "the message came again: {again:?}");
}
