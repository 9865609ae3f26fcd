//! MQTT over WebSockets: `--ws` (identity from the listener's mode) and `--wss`
//! (identity from the client certificate), subprotocol `mqtt`, binary frames that
//! need not align with packets, and the same enforcement and wills as TCP.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use support::tls::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use topicgate::broker::listeners::{self, Transport};
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};
use topicgate::certs::dev_ca::{self_signed_client, Validity};

struct WsClient<S> {
    ws: WebSocketStream<S>,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    async fn open(stream: S, subprotocol: Option<&str>) -> Result<(Self, Option<String>), String> {
        let mut req = "ws://localhost/mqtt"
            .into_client_request()
            .expect("request");
        if let Some(p) = subprotocol {
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(p).expect("header"),
            );
        }
        let (ws, resp) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(|e| e.to_string())?;
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((
            WsClient {
                ws,
                buf: Vec::new(),
            },
            chosen,
        ))
    }

    /// Sends `bytes` split into frames of at most `chunk` bytes.
    async fn send(&mut self, bytes: &[u8], chunk: usize) {
        for part in bytes.chunks(chunk) {
            self.ws
                .send(Message::Binary(part.to_vec().into()))
                .await
                .expect("send");
        }
    }

    /// The next whole MQTT packet, or `None` when the connection closed.
    async fn packet(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(p) = take_packet(&mut self.buf) {
                return Some(p);
            }
            match tokio::time::timeout(T, self.ws.next())
                .await
                .expect("packet in time")
            {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Text(_))) => panic!("the broker sent a text frame"),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

fn take_packet(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
    loop {
        let b = *buf.get(i)?;
        len += (b & 0x7f) as usize * mult;
        mult *= 128;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < i + len {
        return None;
    }
    Some(buf.drain(..i + len).collect())
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend(s.as_bytes());
    v
}

fn with_header(first: u8, body: Vec<u8>) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut p = vec![first, body.len() as u8];
    p.extend(body);
    p
}

/// 3.1.1 CONNECT with username and a QoS 1 will.
fn connect_with_will(client_id: &str, user: &str, will_topic: &str, will: &str) -> Vec<u8> {
    let mut b = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x80 | 0x08 | 0x04 | 0x02,
        0,
        60,
    ];
    for s in [client_id, will_topic, will, user] {
        b.extend(string(s));
    }
    with_header(0x10, b)
}

fn subscribe(filter: &str) -> Vec<u8> {
    let mut b = vec![0, 1];
    b.extend(string(filter));
    b.push(1);
    with_header(0x82, b)
}

async fn ws_broker(identity: IdentityMode) -> (Broker, SocketAddr) {
    log();
    let policy = lwt_policy(&[("sensor1", None), ("actuator1", None)], &[]);
    let broker = Broker::new(compile(&policy), BrokerConfig::default(), identity);
    let (addr, _task) =
        listeners::listen(&broker, "127.0.0.1:0".parse().expect("addr"), Transport::Ws)
            .await
            .expect("bind");
    (broker, addr)
}

async fn ws_client(addr: SocketAddr) -> WsClient<TcpStream> {
    let (c, chosen) = WsClient::open(TcpStream::connect(addr).await.expect("tcp"), Some("mqtt"))
        .await
        .expect("ws");
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    c
}

#[tokio::test]
async fn websocket_without_subprotocol_mqtt_is_refused() {
    let (_broker, addr) = ws_broker(IdentityMode::Dev { anonymous: None }).await;
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let err = WsClient::open(tcp, None).await.err().expect("refused");
    assert!(err.contains("400"), "{err}");
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let err = WsClient::open(tcp, Some("wamp"))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("400"), "{err}");
}

#[tokio::test]
async fn websocket_clients_are_enforced_and_their_wills_fire() {
    let (_broker, addr) = ws_broker(IdentityMode::Dev { anonymous: None }).await;
    let mut actuator = ws_client(addr).await;
    actuator
        .send(&connect_packet(false, "act1", Some("actuator1")), 1024)
        .await;
    assert_eq!(actuator.packet().await, Some(vec![0x20, 2, 0, 0]));
    actuator.send(&subscribe("clients/+/status"), 1024).await;
    assert_eq!(actuator.packet().await, Some(vec![0x90, 3, 0, 1, 1]));

    // Frames split in the middle of packets: the stream is reassembled.
    let mut sensor = ws_client(addr).await;
    sensor
        .send(
            &connect_with_will("s1", "sensor1", "clients/sensor1/status", "offline"),
            5,
        )
        .await;
    assert_eq!(sensor.packet().await, Some(vec![0x20, 2, 0, 0]));
    // Enforcement as over TCP: a sensor may not subscribe to the actuators' filter.
    sensor.send(&subscribe("clients/+/status"), 3).await;
    assert_eq!(sensor.packet().await, Some(vec![0x90, 3, 0, 1, 0x80]));

    // An unknown username is refused (3.1.1 bad user name or password).
    let mut stranger = ws_client(addr).await;
    stranger
        .send(&connect_packet(false, "x", Some("nobody")), 1024)
        .await;
    assert_eq!(stranger.packet().await, Some(vec![0x20, 2, 0, 4]));

    // The sensor's socket dies without DISCONNECT: the will reaches the actuator.
    drop(sensor);
    let p = actuator.packet().await.expect("will");
    assert_eq!(p[0], 0x32, "a QoS 1 PUBLISH: {p:02x?}");
    let topic_len = u16::from_be_bytes([p[2], p[3]]) as usize;
    assert_eq!(&p[4..4 + topic_len], b"clients/sensor1/status");
    assert_eq!(&p[4 + topic_len + 2..], b"offline"); // after the packet identifier
}

#[tokio::test]
async fn secure_websocket_takes_identity_from_the_client_certificate() {
    let pki = Pki::new();
    let sensor1 = pki.ca.issue_client("sensor1").expect("sensor1");
    let policy = lwt_policy(
        &[("sensor1", Some(pinned(&sensor1))), ("actuator1", None)],
        &[],
    );
    let broker = start(&policy, &pki, true).await;

    let tls = tls_connect(broker.addr, client_config(&pki, Some(&sensor1), false))
        .await
        .expect("tls");
    let (mut c, chosen) = WsClient::open(tls, Some("mqtt")).await.expect("ws");
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    c.send(&connect_packet(true, "s1", None), 1024).await;
    let connack = c.packet().await.expect("connack");
    assert_eq!(&connack[..4], &[0x20, connack[1], 0, 0x00]);

    // The username must be the name the certificate proves (MQTT 5: 0x86).
    let tls = tls_connect(broker.addr, client_config(&pki, Some(&sensor1), false))
        .await
        .expect("tls");
    let (mut c, _) = WsClient::open(tls, Some("mqtt")).await.expect("ws");
    c.send(&connect_packet(true, "s1b", Some("actuator1")), 1024)
        .await;
    assert_eq!(c.packet().await.map(|p| p[3]), Some(0x86));

    // A certificate the policy does not know (MQTT 5: 0x87).
    let stranger = self_signed_client("sensor1", Validity::days_from_now(1)).expect("stranger");
    let tls = tls_connect(broker.addr, client_config(&pki, Some(&stranger), false))
        .await
        .expect("tls");
    let (mut c, _) = WsClient::open(tls, Some("mqtt")).await.expect("ws");
    c.send(&connect_packet(true, "s1c", None), 1024).await;
    assert_eq!(c.packet().await.map(|p| p[3]), Some(0x87));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_upgrades_is_closed_after_the_connect_timeout() {
    use tokio::io::AsyncReadExt;
    log();
    let config = BrokerConfig {
        connect_timeout: std::time::Duration::from_millis(200),
        ..BrokerConfig::default()
    };
    let policy = lwt_policy(&[("sensor1", None)], &[]);
    let broker = Broker::new(
        compile(&policy),
        config,
        IdentityMode::Dev { anonymous: None },
    );
    let (addr, _task) =
        listeners::listen(&broker, "127.0.0.1:0".parse().expect("addr"), Transport::Ws)
            .await
            .expect("bind");
    let mut tcp = TcpStream::connect(addr).await.expect("tcp");
    // Half an HTTP request, then silence.
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET /mqtt HTTP/1.1\r\n")
        .await
        .expect("write");
    let start = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(T, tcp.read_to_end(&mut buf))
        .await
        .expect("closed by the server");
    assert!(n.is_ok_and(|n| n == 0) || buf.is_empty(), "{buf:?}");
    // Exact on the paused clock: at the connect timeout, not before.
    let waited = start.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(190)
            && waited <= std::time::Duration::from_millis(200),
        "{waited:?}"
    );
}
