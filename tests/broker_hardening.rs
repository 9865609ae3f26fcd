//! Issue 11, connection level: no panic from a CONNECT, whatever ends a
//! connection task releases what it holds, memory before authentication is
//! bounded, and partial packets have a deadline.

mod support;

use mqtt_protocol_core::mqtt::packet::{
    Packet, Property, Qos, SessionExpiryInterval, TopicAliasMaximum,
};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use support::packets::*;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use topicgate::broker::{connection, BrokerConfig};

async fn v5_ok(addr: SocketAddr, id: &str, user: &str, o: Opts) -> Raw {
    let mut raw = Raw::open(addr, Version::V5_0).await;
    raw.send(v5_connect_with(id, Some(user), None, o).into())
        .await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    raw
}

/// The subscriber gets `payload` on `topic` from a fresh publisher.
async fn delivered(addr: SocketAddr, sub: &mut Raw, topic: &str, payload: &[u8]) {
    let mut p = v5_ok(addr, "publisher", "admin", Opts::default()).await;
    p.send(v5_pub(topic, payload, Qos::AtMostOnce, None).into())
        .await;
    let got = sub.recv(T).await.expect("delivery");
    assert_eq!(publish_parts(&got).1, payload);
}

#[tokio::test]
async fn topic_alias_maximum_0_connects_and_gets_no_aliases() {
    let b = lwt_broker().await;
    let o = Opts {
        props: vec![TopicAliasMaximum::new(0).unwrap().into()],
        ..Default::default()
    };
    let mut s = v5_ok(b.addr, "tam0", "admin", o).await;
    s.send(v5_sub(1, &[("t/#", Qos::AtMostOnce)]).into()).await;
    s.recv(T).await.expect("suback");
    for _ in 0..3 {
        let mut p = v5_ok(b.addr, "p", "admin", Opts::default()).await;
        p.send(v5_pub("t/x", b"m", Qos::AtMostOnce, None).into())
            .await;
        match s.recv(T).await.expect("publish") {
            Packet::V5_0Publish(p) => {
                assert_eq!(p.topic_name(), "t/x");
                assert!(!p
                    .props()
                    .iter()
                    .any(|p| matches!(p, Property::TopicAlias(_))));
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A byte stream that panics on the read after `armed` is set: a fault
/// injected into the connection task from outside the broker's code.
struct Faulty {
    inner: DuplexStream,
    armed: Arc<AtomicBool>,
}

impl AsyncRead for Faulty {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() && self.armed.load(Ordering::SeqCst) {
            panic!("injected fault: the transport panics");
        }
        r
    }
}

impl AsyncWrite for Faulty {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects `id` over an in-memory stream; returns the client end after CONNACK.
async fn connect_over(client: &mut DuplexStream, id: &str) {
    let connect = v5_connect_with(
        id,
        Some("admin"),
        Some(("will/victim", b"gone", Qos::AtMostOnce, false, 0)),
        Opts {
            props: vec![SessionExpiryInterval::new(600).unwrap().into()],
            ..Default::default()
        },
    );
    client
        .write_all(&connect.to_continuous_buffer())
        .await
        .expect("write");
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.expect("connack");
    assert_eq!(head[0], 0x20);
    let mut rest = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut rest).await.expect("connack");
    assert_eq!(rest[1], 0, "CONNACK reason code");
}

/// After the task ends without its normal end, a fresh client with the same
/// client ID and Clean Start connects, subscribes and is served, and the
/// victim's will was published.
async fn same_id_is_served_again(b: &TestBroker, watcher: &mut Raw) {
    let will = watcher.recv(T).await.expect("the will of the ended task");
    assert_eq!(publish_parts(&will).0, "will/victim");
    let mut again = v5_ok(b.addr, "victim", "admin", Opts::default()).await;
    again
        .send(v5_sub(1, &[("after/#", Qos::AtLeastOnce)]).into())
        .await;
    match again.recv(T).await.expect("suback") {
        Packet::V5_0Suback(s) => assert_eq!(s.reason_codes()[0] as u8, 1),
        other => panic!("{other:?}"),
    }
    delivered(b.addr, &mut again, "after/x", b"served").await;
}

#[tokio::test]
async fn a_panicking_connection_task_releases_its_session_and_permit() {
    // Three connections: watcher, victim; then the fresh client and its publisher
    // fit only if the panicked task gave its permit back.
    let cfg = BrokerConfig {
        max_connections: 3,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut watcher = v5_ok(b.addr, "watcher", "admin", Opts::default()).await;
    watcher
        .send(v5_sub(1, &[("will/#", Qos::AtMostOnce)]).into())
        .await;
    watcher.recv(T).await.expect("suback");

    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let armed = Arc::new(AtomicBool::new(false));
    b.broker.acceptor().serve(
        Faulty {
            inner: server,
            armed: armed.clone(),
        },
        "faulty".into(),
    );
    connect_over(&mut client, "victim").await;
    armed.store(true, Ordering::SeqCst);
    client.write_all(&[0xC0, 0x00]).await.expect("pingreq");
    // The task died: its end of the stream is gone.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(T, client.read(&mut buf))
        .await
        .expect("the task ends");
    assert_eq!(n.ok(), Some(0));

    same_id_is_served_again(&b, &mut watcher).await;
}

#[tokio::test]
async fn a_cancelled_connection_task_releases_its_session() {
    let b = lwt_broker().await;
    let mut watcher = v5_ok(b.addr, "watcher", "admin", Opts::default()).await;
    watcher
        .send(v5_sub(1, &[("will/#", Qos::AtMostOnce)]).into())
        .await;
    watcher.recv(T).await.expect("suback");

    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(connection::run(
        b.broker.shared().clone(),
        server,
        "cancelled".into(),
        u64::MAX - 1,
    ));
    connect_over(&mut client, "victim").await;
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());

    same_id_is_served_again(&b, &mut watcher).await;
}

#[tokio::test]
async fn a_large_connect_is_refused_before_its_body_mqtt5_with_0x95() {
    let b = lwt_broker().await;
    // Remaining Length 1 MB; only the protocol name and level follow.
    let mut v5 = vec![0x10, 0x80, 0x80, 0x40];
    v5.extend_from_slice(b"\x00\x04MQTT\x05\x02\x00\x00");
    let (reply, closed) = exchange(b.addr, &v5).await;
    assert!(closed);
    assert_eq!(
        reply.get(..4),
        Some(&[0x20, 0x03, 0x00, 0x95][..]),
        "{reply:?}"
    );
    let mut v3 = vec![0x10, 0x80, 0x80, 0x40];
    v3.extend_from_slice(b"\x00\x04MQTT\x04\x02\x00\x00");
    assert_eq!(exchange(b.addr, &v3).await, (Vec::new(), true));
}

#[tokio::test]
async fn a_connect_just_within_the_limit_is_accepted() {
    let cfg = BrokerConfig {
        max_connect_packet_size: 2048,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut raw = Raw::open(b.addr, Version::V5_0).await;
    raw.send(
        v5_connect_with(
            "big",
            Some("admin"),
            Some(("w", &[7u8; 1500], Qos::AtMostOnce, false, 0)),
            Opts::default(),
        )
        .into(),
    )
    .await;
    assert_eq!(v5_connack(&raw.recv(T).await.expect("connack")).0, 0);
    let too_big = v5_connect_with(
        "bigger",
        Some("admin"),
        Some(("w", &[7u8; 2100], Qos::AtMostOnce, false, 0)),
        Opts::default(),
    );
    let (reply, closed) = exchange(b.addr, &too_big.to_continuous_buffer()).await;
    assert!(closed);
    assert_eq!(reply.get(3), Some(&0x95));
}

#[tokio::test]
async fn unauthenticated_connections_share_one_memory_budget() {
    let cfg = BrokerConfig {
        max_connect_packet_size: 1000,
        max_pre_auth_bytes: 1500,
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    // Announces a 900-byte CONNECT and holds it: 900 of 1500 bytes taken.
    let mut holder = TcpStream::connect(b.addr).await.expect("connect");
    holder
        .write_all(&[0x10, 0x84, 0x07, 0x00, 0x04, b'M'])
        .await
        .expect("write");
    // A second such CONNECT does not fit: closed at once.
    let mut second = vec![0x10, 0x84, 0x07];
    second.extend_from_slice(b"\x00\x04MQTT\x05");
    let mut ok = false;
    for _ in 0..50 {
        // The holder's header may not have been read yet: retry a bounded number of times.
        let (reply, closed) = exchange(b.addr, &second).await;
        if closed && reply.is_empty() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the second large CONNECT was not refused");
    // A small CONNECT still fits, and the budget returns when the holder leaves.
    let _small = v5_ok(b.addr, "small", "admin", Opts::default()).await;
    drop(holder);
    let mut third = Raw::open(b.addr, Version::V5_0).await;
    let big = v5_connect_with(
        "third",
        Some("admin"),
        Some(("w", &[1u8; 850], Qos::AtMostOnce, false, 0)),
        Opts::default(),
    );
    assert!(big.size() <= 1000 && big.size() > 600);
    let mut accepted = false;
    for _ in 0..50 {
        third.send(big.clone().into()).await;
        if let Ok(p) = third.recv(T).await {
            accepted = v5_connack(&p).0 == 0;
            break;
        }
        third = Raw::open(b.addr, Version::V5_0).await;
    }
    assert!(accepted);
}

#[tokio::test(start_paused = true)]
async fn a_partial_packet_has_a_deadline_even_with_keep_alive_0() {
    let cfg = BrokerConfig {
        partial_packet_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let b = start(support::policy::lwt(), cfg).await;
    let mut s = v5_ok(b.addr, "slow", "admin", Opts::default()).await;
    // A PUBLISH announcing 100 bytes, of which 5 arrive.
    s.send_raw(&[0x30, 100, 0x00, 0x01, b't', 0x00, 0x00]).await;
    assert!(s.until_closed(T).await.is_ok(), "still open");
    // Whole packets sent slowly are not affected.
    let mut k = v5_ok(b.addr, "patient", "admin", Opts::default()).await;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(200)).await;
        k.send_raw(&[0xC0, 0x00]).await;
        assert!(matches!(k.recv(T).await, Ok(Packet::V5_0Pingresp(_))));
    }
}

/// mqtt-protocol-core 0.7.9 does not count packets restored from a resumed
/// session in its Receive Maximum window, so the client's PUBACK for a resent
/// message made its counter underflow: a panic in debug builds, a window that
/// never opens again in release. The Receive Maximum is enforced by the
/// broker instead (decision record 0015).
#[tokio::test]
async fn acknowledging_a_message_resent_after_resume_keeps_the_connection() {
    use mqtt_protocol_core::mqtt::packet::ReceiveMaximum;
    let b = lwt_broker().await;
    let o = |resume: bool| Opts {
        resume,
        props: vec![
            SessionExpiryInterval::new(60).unwrap().into(),
            ReceiveMaximum::new(2).unwrap().into(),
        ],
        ..Default::default()
    };
    let mut s = Raw::open(b.addr, Version::V5_0).await;
    s.mqtt.set_auto_pub_response(false);
    s.send(v5_connect_with("resumed", Some("admin"), None, o(false)).into())
        .await;
    s.recv(T).await.expect("connack");
    s.send(v5_sub(1, &[("r/#", Qos::AtLeastOnce)]).into()).await;
    s.recv(T).await.expect("suback");
    let mut p = v5_ok(b.addr, "p", "admin2", Opts::default()).await;
    p.send(v5_pub("r/1", b"once", Qos::AtLeastOnce, Some(1)).into())
        .await;
    s.recv(T).await.expect("first delivery");
    drop(s); // never acknowledged

    let mut s = Raw::open(b.addr, Version::V5_0).await;
    s.mqtt.set_auto_pub_response(false);
    let mut resent = None;
    for _ in 0..50 {
        // The old connection may still be detaching: retry, bounded.
        s.send(v5_connect_with("resumed", Some("admin"), None, o(true)).into())
            .await;
        if let Ok(Packet::V5_0Connack(c)) = s.recv(T).await {
            assert!(c.session_present());
            resent = s.recv(T).await.ok();
            break;
        }
        s = Raw::open(b.addr, Version::V5_0).await;
        s.mqtt.set_auto_pub_response(false);
    }
    let id = match resent.expect("resent") {
        Packet::V5_0Publish(m) => m.packet_id().expect("id"),
        other => panic!("{other:?}"),
    };
    let [hi, lo] = id.to_be_bytes();
    s.send_raw(&[0x40, 0x02, hi, lo]).await; // PUBACK
                                             // The window is open again: three more messages (Receive Maximum 2) arrive
                                             // as the client acknowledges them.
    for n in 0..3u16 {
        p.send(v5_pub("r/more", b"m", Qos::AtLeastOnce, Some(2 + n)).into())
            .await;
        match s.recv(T).await.expect("delivery after the PUBACK") {
            Packet::V5_0Publish(m) => {
                let [hi, lo] = m.packet_id().expect("id").to_be_bytes();
                s.send_raw(&[0x40, 0x02, hi, lo]).await;
            }
            other => panic!("{other:?}"),
        }
    }
}
