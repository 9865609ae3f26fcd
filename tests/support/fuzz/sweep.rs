//! Every MQTT 5 property at 0, 1, its maximum and one past it, in every packet
//! a client sends (also where the property is not allowed): one connection each.

use super::gen::Knobs;
use super::wire::{kind, prop_value, Field, Packet, Prop, PROPERTIES};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the property goes.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    Connect,
    Will,
    Publish,
    Subscribe,
    Unsubscribe,
    Ack(u8),
    Auth,
    Disconnect,
}

pub const PLACES: &[Place] = &[
    Place::Connect,
    Place::Will,
    Place::Publish,
    Place::Subscribe,
    Place::Unsubscribe,
    Place::Ack(kind::PUBACK),
    Place::Ack(kind::PUBREC),
    Place::Ack(kind::PUBREL),
    Place::Ack(kind::PUBCOMP),
    Place::Auth,
    Place::Disconnect,
];

/// One sweep item: what is sent, and a name for the failure message.
pub struct Probe {
    pub name: String,
    pub bytes: Vec<u8>,
}

fn connect(id: &str, props: Vec<Prop>, will: Option<Vec<Prop>>) -> Packet {
    let mut flags = 0x80 | 0x02; // username, clean start
    if will.is_some() {
        flags |= 0x04;
    }
    let mut fields = vec![
        Field::str("MQTT"),
        Field::U8(5),
        Field::U8(flags),
        Field::U16(0),
        Field::props(props),
        Field::str(id),
    ];
    if let Some(wp) = will {
        fields.extend([Field::props(wp), Field::str("a/will"), Field::str("x")]);
    }
    fields.push(Field::str("admin"));
    Packet::new(kind::CONNECT, fields)
}

/// Every (property, boundary value, place), in a fixed order.
pub fn probes(knobs: Knobs) -> Vec<Probe> {
    let mut out = Vec::new();
    for &(id, t, max) in PROPERTIES {
        for v in [0, 1, max, max + 1] {
            for (n, &place) in PLACES.iter().enumerate() {
                if matches!(place, Place::Connect)
                    && id == 0x22
                    && v == 0
                    && !knobs.topic_alias_maximum_zero
                {
                    continue; // today's known crash (see Knobs::topic_alias_maximum_zero)
                }
                let p = || {
                    vec![Prop {
                        id,
                        value: prop_value(t, v),
                    }]
                };
                let client = format!("sweep-{id:02x}-{v}-{n}");
                let mut bytes = match place {
                    Place::Connect => connect(&client, p(), None).encode(),
                    Place::Will => connect(&client, vec![], Some(p())).encode(),
                    _ => connect(&client, vec![], None).encode(),
                };
                let packet = match place {
                    Place::Connect | Place::Will => None,
                    Place::Publish => Some(Packet::new(
                        kind::PUBLISH | 0x02,
                        vec![
                            Field::str("a/b"),
                            Field::U16(1),
                            Field::props(p()),
                            Field::Raw(b"x".to_vec()),
                        ],
                    )),
                    Place::Subscribe => Some(Packet::new(
                        kind::SUBSCRIBE,
                        vec![
                            Field::U16(2),
                            Field::props(p()),
                            Field::str("a/#"),
                            Field::U8(1),
                        ],
                    )),
                    Place::Unsubscribe => Some(Packet::new(
                        kind::UNSUBSCRIBE,
                        vec![Field::U16(3), Field::props(p()), Field::str("a/#")],
                    )),
                    Place::Ack(k) => Some(Packet::new(
                        k,
                        vec![Field::U16(1), Field::U8(0), Field::props(p())],
                    )),
                    Place::Auth => Some(Packet::new(
                        kind::AUTH,
                        vec![Field::U8(0x18), Field::props(p())],
                    )),
                    Place::Disconnect => Some(Packet::new(
                        kind::DISCONNECT,
                        vec![Field::U8(0x04), Field::props(p())],
                    )),
                };
                if let Some(packet) = packet {
                    bytes.extend(packet.encode());
                }
                out.push(Probe {
                    name: format!("property 0x{id:02X} = {v} in {place:?}"),
                    bytes,
                });
            }
        }
    }
    out
}

/// Sends one probe on a fresh connection, closes the write side and reads
/// until the broker closes (bounded).
pub async fn send(addr: SocketAddr, probe: &Probe) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.write_all(&probe.bytes).await;
    let _ = s.shutdown().await;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}
