//! An in-process broker on an ephemeral loopback port, and a raw MQTT client
//! driven by mqtt-protocol-core.

use super::packets::{publish_parts, v3_pub, v5_pub};
use super::policy;
use super::wait::T;
use mqtt_protocol_core::mqtt::connection::Event;
use mqtt_protocol_core::mqtt::packet::Qos;
use mqtt_protocol_core::mqtt::packet::{GenericPacketTrait, Packet};
use mqtt_protocol_core::mqtt::{role, Connection, Version};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};
use topicgate::decisions::access::AccessPolicy;

pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
}

pub async fn start(policy: Arc<dyn AccessPolicy>, config: BrokerConfig) -> TestBroker {
    start_with(policy, config, IdentityMode::Dev { anonymous: None }).await
}

pub async fn start_with(
    policy: Arc<dyn AccessPolicy>,
    config: BrokerConfig,
    identity: IdentityMode,
) -> TestBroker {
    super::log();
    let broker = Broker::new(policy, config, identity);
    let (addr, _task) = broker
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    TestBroker { broker, addr }
}

impl TestBroker {
    /// Waits until `client_id`'s session is held offline: its connection ended and
    /// the broker detached it (bounded polling of the registry).
    pub async fn offline(&self, client_id: &str) {
        let sessions = &self.broker.shared().sessions;
        super::wait::eventually(|| {
            sessions
                .all()
                .iter()
                .any(|s| *s.client_id == *client_id && !s.is_online())
        })
        .await;
    }
}

impl TestBroker {
    /// Waits until `client_id` has no session any more (ended, expired or
    /// discarded; bounded polling of the registry).
    pub async fn gone(&self, client_id: &str) {
        let sessions = &self.broker.shared().sessions;
        super::wait::eventually(|| !sessions.contains(client_id)).await;
    }
}

pub async fn lwt_broker() -> TestBroker {
    start(policy::lwt(), BrokerConfig::default()).await
}

#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    Closed,
}

/// A byte-level MQTT client: packets are encoded and decoded by mqtt-protocol-core's
/// client state machine, raw bytes can be written as they are.
pub struct Raw {
    pub stream: TcpStream,
    pub mqtt: Connection<role::Client>,
    inbox: VecDeque<Packet>,
    pub closed: bool,
}

impl Raw {
    pub async fn open(addr: SocketAddr, version: Version) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut mqtt = Connection::<role::Client>::new(version);
        mqtt.set_auto_pub_response(true);
        Raw {
            stream,
            mqtt,
            inbox: VecDeque::new(),
            closed: false,
        }
    }

    /// Sends through the client state machine.
    pub async fn send(&mut self, p: Packet) {
        let id = match &p {
            Packet::V5_0Publish(x) => x.packet_id(),
            Packet::V3_1_1Publish(x) => x.packet_id(),
            Packet::V5_0Subscribe(x) => Some(x.packet_id()),
            Packet::V3_1_1Subscribe(x) => Some(x.packet_id()),
            Packet::V5_0Unsubscribe(x) => Some(x.packet_id()),
            Packet::V3_1_1Unsubscribe(x) => Some(x.packet_id()),
            _ => None,
        };
        if let Some(id) = id {
            let _ = self.mqtt.register_packet_id(id);
        }
        let events = self.mqtt.send(p);
        for e in events {
            match e {
                Event::RequestSendPacket { packet, .. } => {
                    let _ = self.stream.write_all(&packet.to_continuous_buffer()).await;
                }
                Event::NotifyError(e) => panic!("client refused to send: {e:?}"),
                _ => {}
            }
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet from the broker.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Packet, RecvError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(p) = self.inbox.pop_front() {
                return Ok(p);
            }
            if self.closed {
                return Err(RecvError::Closed);
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Err(RecvError::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                    continue;
                }
                Ok(Ok(n)) => n,
            };
            let mut cur = mqtt_protocol_core::mqtt::common::Cursor::new(&buf[..n]);
            while (cur.position() as usize) < n {
                let before = cur.position();
                let events = self.mqtt.recv(&mut cur);
                for e in events {
                    match e {
                        Event::NotifyPacketReceived(p) => self.inbox.push_back(p),
                        Event::RequestSendPacket { packet, .. } => {
                            let _ = self.stream.write_all(&packet.to_continuous_buffer()).await;
                        }
                        _ => {}
                    }
                }
                if cur.position() == before {
                    break;
                }
            }
        }
    }

    /// Reads until the broker closes the connection; returns the packets seen.
    pub async fn until_closed(&mut self, timeout: Duration) -> Result<Vec<Packet>, Vec<Packet>> {
        let mut seen = Vec::new();
        loop {
            match self.recv(timeout).await {
                Ok(p) => seen.push(p),
                Err(RecvError::Closed) => return Ok(seen),
                Err(RecvError::Timeout) => return Err(seen),
            }
        }
    }

    /// Reads up to the next SUBACK, past other acknowledgements; a PUBLISH
    /// before it fails the test (a barrier's subscription must not swallow one).
    pub async fn suback(&mut self) -> Packet {
        loop {
            match self.recv(T).await.expect("SUBACK") {
                p @ (Packet::V5_0Suback(_) | Packet::V3_1_1Suback(_)) => return p,
                p @ (Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_)) => {
                    panic!("a message arrived before the SUBACK: {p:?}")
                }
                _ => {}
            }
        }
    }

    /// A PINGREQ answered by a PINGRESP as the next packet that is not a
    /// PUBLISH: the connection is open and was not closed or taken over.
    pub async fn ping(&mut self) {
        self.send_raw(&[0xC0, 0x00]).await;
        let mut kept = VecDeque::new();
        loop {
            match self.recv(T).await.expect("PINGRESP") {
                Packet::V5_0Pingresp(_) | Packet::V3_1_1Pingresp(_) => break,
                p @ (Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_)) => kept.push_back(p),
                other => panic!("expected PINGRESP, got {other:?}"),
            }
        }
        kept.append(&mut self.inbox);
        self.inbox = kept;
    }

    /// For a "nothing was sent" that no marker can prove (a full inflight window
    /// holds a marker back as well). On the paused clock a sleep ends only when no
    /// task can run and no I/O is ready, so once it ends the broker has written all
    /// it was going to; then no PUBLISH may be waiting on this socket.
    pub async fn expect_nothing_once_idle(&mut self) {
        super::wait::paused();
        tokio::time::sleep(Duration::from_millis(1)).await;
        match self.recv(Duration::ZERO).await {
            Err(RecvError::Timeout) => {}
            Err(RecvError::Closed) => panic!("connection closed unexpectedly"),
            Ok(p) => panic!("expected nothing, got {p:?}"),
        }
    }

    /// Proves that no PUBLISH reached this client before now, by ordering rather
    /// than by waiting: `via` publishes a marker at QoS 1 on `topic` (which this
    /// client is subscribed to) and waits for its PUBACK, then the next PUBLISH this
    /// client reads must be that marker. The broker routes a PUBLISH before it
    /// acknowledges it, and a session's deliveries leave in order, so a message
    /// routed here before the marker arrives before it and fails the test.
    /// Acknowledgements in between are skipped.
    pub async fn expect_marker_first(&mut self, via: &mut Raw, topic: &str) {
        via.publish_marker(topic).await;
        self.expect_marker(topic).await;
    }

    /// [`Self::expect_marker_first`] with this client as the marker's publisher: it
    /// must be allowed to publish on `topic` and subscribed to it without No Local.
    pub async fn expect_own_marker_first(&mut self, topic: &str) {
        self.publish_marker(topic).await;
        self.expect_marker(topic).await;
    }

    /// Publishes the marker at QoS 1 and waits for its PUBACK (the PUBACK proves it
    /// was routed). Packets read meanwhile stay queued for the next `recv`.
    pub async fn publish_marker(&mut self, topic: &str) {
        const MARKER_ID: u16 = 65_000;
        let p: Packet = match self.mqtt.get_protocol_version() {
            Version::V5_0 => v5_pub(topic, MARKER, Qos::AtLeastOnce, Some(MARKER_ID)).into(),
            _ => v3_pub(topic, MARKER, Qos::AtLeastOnce, Some(MARKER_ID)).into(),
        };
        self.send(p).await;
        let mut kept = VecDeque::new();
        loop {
            match self.recv(T).await.expect("the marker's PUBACK") {
                Packet::V5_0Puback(a) if a.packet_id() == MARKER_ID => {
                    let code = a.reason_code().map(|c| c as u8).unwrap_or(0);
                    assert_eq!(code, 0, "the marker on {topic} was not accepted");
                    break;
                }
                Packet::V3_1_1Puback(a) if a.packet_id() == MARKER_ID => break,
                other => kept.push_back(other),
            }
        }
        kept.append(&mut self.inbox);
        self.inbox = kept;
    }

    async fn expect_marker(&mut self, topic: &str) {
        loop {
            let p = self.recv(T).await.expect("the marker");
            if !matches!(p, Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_)) {
                continue;
            }
            let (t, payload, _, _) = publish_parts(&p);
            assert!(
                t == topic && payload == MARKER,
                "a message arrived before the marker on {topic}: {p:?}"
            );
            return;
        }
    }
}

/// The payload of a barrier marker.
pub const MARKER: &[u8] = b"marker";

/// Writes `bytes` on a fresh socket and reads until the broker closes it (or `T`
/// passes); returns what the broker sent and whether it closed. For byte
/// sequences the codec would refuse to build.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}
