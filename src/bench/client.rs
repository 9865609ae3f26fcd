//! A minimal MQTT 3.1.1 client connection for load generation: TCP with
//! TCP_NODELAY, CONNECT/CONNACK, SUBSCRIBE/SUBACK, and packet framing. Encoding and
//! decoding are rumqttc's codec (`rumqttc::mqttbytes::v4`); the connection logic is
//! ours because the bench needs what a general client hides: many publishes per
//! write, a socket that can go silent or be dropped mid-session, and idle
//! connections that cost nothing but a socket (decision 0009).

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PingReq, PubAck, Subscribe,
    SubscribeReasonCode,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest packet the bench accepts from a broker.
pub const MAX_PACKET: usize = 1 << 20;

/// How long a broker may take to answer CONNECT or SUBSCRIBE.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who connects, and how.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u16,
    pub will: Option<LastWill>,
    /// Clean session 0: the broker keeps the session (and, with durable
    /// state, stores what is queued for it).
    pub persistent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection to the broker failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker refused CONNECT of client `{client_id}` (user `{username}`): {code}")]
    Refused {
        client_id: String,
        username: String,
        code: String,
    },
    #[error("the broker refused the subscription to `{filter}`")]
    SubscribeRefused { filter: String },
    #[error("the broker sent a malformed packet: {0}")]
    Protocol(String),
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker did not answer {what} within {secs} s")]
    Timeout { what: &'static str, secs: u64 },
}

/// An open MQTT connection with its read buffer.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Conn {
    /// Opens TCP, sends CONNECT and waits for a successful CONNACK.
    pub async fn connect(addr: SocketAddr, spec: &ConnectSpec) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
        };
        let mut connect = Connect::new(spec.client_id.clone());
        connect.keep_alive = spec.keep_alive_secs;
        connect.clean_session = !spec.persistent;
        connect.last_will = spec.will.clone();
        if let Some(user) = &spec.username {
            connect.set_login(user.clone(), spec.password.clone().unwrap_or_default());
        }
        conn.send(&Packet::Connect(connect)).await?;
        let ack = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.read_packet())
            .await
            .map_err(|_| ClientError::Timeout {
                what: "CONNECT",
                secs: HANDSHAKE_TIMEOUT.as_secs(),
            })??;
        match ack {
            Some(Packet::ConnAck(ConnAck {
                code: ConnectReturnCode::Success,
                ..
            })) => Ok(conn),
            Some(Packet::ConnAck(ConnAck { code, .. })) => Err(ClientError::Refused {
                client_id: spec.client_id.clone(),
                username: spec.username.clone().unwrap_or_default(),
                code: format!("{code:?}"),
            }),
            Some(other) => Err(ClientError::Protocol(format!(
                "expected CONNACK, got {other:?}"
            ))),
            None => Err(ClientError::Refused {
                client_id: spec.client_id.clone(),
                username: spec.username.clone().unwrap_or_default(),
                code: "connection closed without CONNACK".into(),
            }),
        }
    }

    /// Subscribes to one filter and waits for a SUBACK that grants it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), ClientError> {
        let mut sub = Subscribe::new(filter, qos);
        sub.pkid = 1;
        self.send(&Packet::Subscribe(sub)).await?;
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.read_packet())
                .await
                .map_err(|_| ClientError::Timeout {
                    what: "SUBSCRIBE",
                    secs: HANDSHAKE_TIMEOUT.as_secs(),
                })??;
            match packet {
                Some(Packet::SubAck(ack)) => {
                    return match ack.return_codes.first() {
                        Some(SubscribeReasonCode::Success(_)) => Ok(()),
                        _ => Err(ClientError::SubscribeRefused {
                            filter: filter.to_string(),
                        }),
                    };
                }
                // Retained messages may arrive before the SUBACK; they are not ours.
                Some(_) => continue,
                None => {
                    return Err(ClientError::SubscribeRefused {
                        filter: filter.to_string(),
                    })
                }
            }
        }
    }

    pub async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, MAX_PACKET)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// The next whole packet, or `None` when the broker closed the connection.
    pub async fn read_packet(&mut self) -> Result<Option<Packet>, ClientError> {
        loop {
            if let Some(p) = next_packet(&mut self.buf)? {
                return Ok(Some(p));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Sends DISCONNECT (so that no will is published) and closes.
    pub async fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Takes one whole packet off the front of `buf`, if there is one.
pub fn next_packet(buf: &mut BytesMut) -> Result<Option<Packet>, ClientError> {
    if buf.is_empty() {
        return Ok(None);
    }
    match Packet::read(buf, MAX_PACKET) {
        Ok(p) => Ok(Some(p)),
        Err(CodecError::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// Writes a PUBACK for `pkid` into `out`.
pub fn encode_puback(out: &mut BytesMut, pkid: u16) {
    // Encoding a fixed-size PUBACK cannot fail.
    let _ = PubAck::new(pkid).write(out);
}

/// Writes a PINGREQ into `out`.
pub fn encode_pingreq(out: &mut BytesMut) {
    let _ = PingReq.write(out);
}
