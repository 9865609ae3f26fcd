//! Backpressure: a subscriber that falls behind slows its publishers down (their
//! sockets are not read) instead of losing messages, for as long as
//! `maxPublisherWait`; a subscriber that stops reading altogether is given up
//! on, its copies dropped, and nobody else waits for it.
//!
//! On the paused clock (decision 0028): `maxPublisherWait` is a broker timer, and a
//! sleep of the test ends only when no task can run, that is once mailboxes are
//! full and publishers wait. A mutual wait shows as the publisher wait expiring
//! (drops), at once rather than after real seconds.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::Duration;
use support::packets::*;
use support::*;
use topicgate::broker::BrokerConfig;

/// Enough bytes that they cannot all wait in loopback socket buffers: the broker
/// must hold the publisher back for nothing to be lost.
const MESSAGES: u32 = 6_000;
const PAYLOAD: usize = 1024;

/// A broker with mailboxes of `max_queued` and publishers waiting up to `wait`.
async fn broker(max_queued: usize, wait: Duration) -> TestBroker {
    let cfg = BrokerConfig {
        max_queued_messages: max_queued,
        max_publisher_wait: wait,
        ..Default::default()
    };
    start(support::policy::lwt(), cfg).await
}

async fn v3_client(addr: SocketAddr, id: &str, user: &str) -> Raw {
    let mut raw = Raw::open(addr, Version::V3_1_1).await;
    raw.send(v3_connect(id, Some(user), None).into()).await;
    assert_eq!(v3_connack(&raw.recv(T).await.expect("connack")), 0);
    raw
}

async fn subscribe(raw: &mut Raw, filter: &str, qos: Qos) {
    raw.send(v3_sub(1, &[(filter, qos)]).into()).await;
    assert!(matches!(raw.recv(T).await, Ok(Packet::V3_1_1Suback(_))));
}

fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.resize(PAYLOAD, 0x5a);
    p
}

/// Publishes MESSAGES numbered payloads to `topic` from a task of its own (its
/// writes block while the broker holds it back).
fn publish_all(mut publisher: Raw, topic: &'static str, qos: Qos) -> tokio::task::JoinHandle<Raw> {
    tokio::spawn(async move {
        for seq in 0..MESSAGES {
            let id = (qos != Qos::AtMostOnce).then_some((seq % 60_000) as u16 + 1);
            publisher
                .send(v3_pub(topic, &payload(seq), qos, id).into())
                .await;
        }
        publisher
    })
}

/// Reads until `count` messages arrived; returns their sequence numbers.
async fn receive(raw: &mut Raw, count: u32, within: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seqs = Vec::new();
    while seqs.len() < count as usize {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match raw.recv(left).await {
            Ok(p @ Packet::V3_1_1Publish(_)) => {
                let (_, body, _, _) = publish_parts(&p);
                seqs.push(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
            }
            Ok(_) => {}
            Err(e) => panic!("after {} messages: {e:?}", seqs.len()),
        }
    }
    seqs
}

async fn slow_subscriber_loses_nothing(qos: Qos) {
    let b = broker(16, Duration::from_secs(10)).await;
    let mut sub = v3_client(b.addr, "slow", "admin").await;
    subscribe(&mut sub, "bp/#", qos).await;
    let publisher = v3_client(b.addr, "fast", "admin2").await;
    let sending = publish_all(publisher, "bp/1", qos);
    // The subscriber does not read until its mailbox is full and the publisher
    // waits: on the paused clock this sleep ends only when nothing else can run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seqs = receive(&mut sub, MESSAGES, Duration::from_secs(30)).await;
    assert_eq!(seqs, (0..MESSAGES).collect::<Vec<_>>(), "all, in order");
    sending.await.expect("publisher");
    assert_eq!(b.broker.stats().messages_dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_qos0_subscriber_slows_the_publisher_and_loses_nothing() {
    slow_subscriber_loses_nothing(Qos::AtMostOnce).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_qos1_subscriber_slows_the_publisher_and_loses_nothing() {
    slow_subscriber_loses_nothing(Qos::AtLeastOnce).await;
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_stops_reading_holds_nobody_back() {
    let b = broker(16, Duration::from_millis(200)).await;
    // Never reads after SUBACK.
    let mut stuck = v3_client(b.addr, "stuck", "admin").await;
    subscribe(&mut stuck, "bp/#", Qos::AtMostOnce).await;
    let mut healthy = v3_client(b.addr, "healthy", "admin").await;
    subscribe(&mut healthy, "bp/#", Qos::AtMostOnce).await;
    let publisher = v3_client(b.addr, "fast", "admin2").await;
    let sending = publish_all(publisher, "bp/1", Qos::AtMostOnce);
    // The healthy subscriber gets everything, in order, although the publisher
    // shares it with a subscriber that takes nothing.
    let seqs = receive(&mut healthy, MESSAGES, Duration::from_secs(30)).await;
    assert_eq!(seqs, (0..MESSAGES).collect::<Vec<_>>());
    sending.await.expect("publisher");
    // The stuck subscriber's copies beyond its buffers were dropped.
    assert!(b.broker.stats().messages_dropped() > 0);
    // And the broker still serves a newcomer.
    let mut probe = v3_client(b.addr, "probe", "admin").await;
    probe.send_raw(&[0xC0, 0x00]).await;
    assert!(matches!(probe.recv(T).await, Ok(Packet::V3_1_1Pingresp(_))));
    drop(stuck);
}

/// Reads QoS 0 PUBLISH packets (MQTT 3.1.1) straight off a socket half until
/// `count` arrived; returns their sequence numbers.
async fn read_publishes(
    mut r: tokio::net::tcp::OwnedReadHalf,
    count: u32,
    within: Duration,
) -> Vec<u32> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut seqs = Vec::new();
    while seqs.len() < count as usize {
        let n = tokio::time::timeout_at(deadline, r.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("timed out after {} messages", seqs.len()))
            .expect("read");
        assert!(n > 0, "closed after {} messages", seqs.len());
        buf.extend_from_slice(&chunk[..n]);
        // Whole packets: header, remaining length, then topic length + topic + payload.
        loop {
            let mut len = 0usize;
            let mut i = 1;
            let mut shift = 0;
            let complete = loop {
                let Some(&b) = buf.get(i) else { break false };
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                i += 1;
                if b & 0x80 == 0 {
                    break true;
                }
            };
            if !complete || buf.len() < i + len {
                break;
            }
            assert_eq!(buf[0] & 0xf0, 0x30, "a PUBLISH");
            let topic_len = usize::from(u16::from_be_bytes([buf[i], buf[i + 1]]));
            let body = i + 2 + topic_len;
            seqs.push(u32::from_be_bytes([
                buf[body],
                buf[body + 1],
                buf[body + 2],
                buf[body + 3],
            ]));
            buf.drain(..i + len);
        }
    }
    seqs
}

#[tokio::test(start_paused = true)]
async fn two_clients_publishing_to_each_other_do_not_wait_on_each_other() {
    // Longer than the test may take: a mutual wait would show as a hang and drops.
    let b = broker(8, Duration::from_secs(20)).await;
    let mut a = v3_client(b.addr, "a", "admin").await;
    subscribe(&mut a, "to/a", Qos::AtMostOnce).await;
    let mut c = v3_client(b.addr, "c", "admin2").await;
    subscribe(&mut c, "to/c", Qos::AtMostOnce).await;
    let (a_read, a_write) = a.stream.into_split();
    let (c_read, c_write) = c.stream.into_split();
    let send = |topic: &'static str| {
        move |mut w: tokio::net::tcp::OwnedWriteHalf| async move {
            use tokio::io::AsyncWriteExt;
            for seq in 0..MESSAGES {
                let mut bytes = Vec::new();
                topicgate::broker::encode::v3_qos0_publish(&mut bytes, topic, &payload(seq), false);
                w.write_all(&bytes).await.expect("write");
            }
            w
        }
    };
    let a_sending = tokio::spawn(send("to/c")(a_write));
    let c_sending = tokio::spawn(send("to/a")(c_write));
    // Neither reads until both mailboxes are full and both publishers wait (the
    // paused clock ends this sleep only when nothing else can run).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_a = tokio::spawn(read_publishes(a_read, MESSAGES, Duration::from_secs(15)));
    let at_c = tokio::spawn(read_publishes(c_read, MESSAGES, Duration::from_secs(15)));
    let all: Vec<u32> = (0..MESSAGES).collect();
    assert_eq!(at_a.await.expect("a reads"), all);
    assert_eq!(at_c.await.expect("c reads"), all);
    a_sending.await.expect("a sends");
    c_sending.await.expect("c sends");
    assert_eq!(b.broker.stats().messages_dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_publisher_waiting_on_a_subscriber_that_disconnects_resumes_at_once() {
    // Far longer than the test may take: only the subscriber leaving may end the wait.
    let b = broker(16, Duration::from_secs(60)).await;
    let mut leaving = v3_client(b.addr, "leaving", "admin").await;
    subscribe(&mut leaving, "bp/#", Qos::AtMostOnce).await;
    let mut healthy = v3_client(b.addr, "healthy", "admin").await;
    subscribe(&mut healthy, "bp/#", Qos::AtMostOnce).await;
    let publisher = v3_client(b.addr, "fast", "admin2").await;
    let sending = publish_all(publisher, "bp/1", Qos::AtMostOnce);
    // The leaving subscriber reads nothing, so its mailbox fills and the publisher
    // waits on it (the paused clock ends this sleep only when nothing else can run).
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(leaving);
    let seqs = receive(&mut healthy, MESSAGES, Duration::from_secs(20)).await;
    assert_eq!(seqs, (0..MESSAGES).collect::<Vec<_>>());
    sending.await.expect("publisher");
}
