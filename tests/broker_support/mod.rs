//! Shared helpers for the broker integration tests: a broker on an ephemeral
//! loopback port, a raw MQTT client driven by mqtt-protocol-core, and timeouts.
#![allow(dead_code)]

pub mod packets;
pub mod policy;

use mqtt_protocol_core::mqtt::connection::Event;
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

pub const T: Duration = Duration::from_secs(5);

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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "topicgate=warn".into()),
        )
        .with_test_writer()
        .try_init();
    let broker = Broker::new(policy, config, identity);
    let (addr, _task) = broker
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    TestBroker { broker, addr }
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

    /// Asserts that no PUBLISH arrives for `d` (acknowledgements are ignored).
    pub async fn expect_nothing(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Err(RecvError::Timeout) => return,
                Ok(p @ (Packet::V5_0Publish(_) | Packet::V3_1_1Publish(_))) => {
                    panic!("expected no message, got {p:?}")
                }
                Ok(_) => {}
                Err(RecvError::Closed) => panic!("connection closed unexpectedly"),
            }
        }
    }
}

/// Waits until `f` is true or fails after `T`.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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

/// The port a `topicgate serve` child printed on its first stdout line
/// (`listening on mqtt://127.0.0.1:PORT`); takes the child's stdout.
pub fn listening_port(child: &mut std::process::Child) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("listening line");
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
}
