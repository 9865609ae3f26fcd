//! Plays a case against a broker over loopback TCP, and checks that a
//! well-behaved client is still served afterwards.

use super::case::{Case, Ending, Script, Step};
use super::wire::{kind, Field, Packet};
use crate::support::packets::{v3_connect, v3_pub, v3_sub, v5_connect, v5_pub, v5_sub};
use crate::support::{Raw, RecvError};
use mqtt_protocol_core::mqtt::packet::{Packet as CodecPacket, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Longest a single write may block (the broker may stop reading a publisher
/// whose subscribers are full); the connection is then dropped.
const WRITE_LIMIT: Duration = Duration::from_secs(3);
/// How long a closing connection waits for the broker to close its side.
const CLOSE_WAIT: Duration = Duration::from_millis(300);
/// Bound of one case as a whole (every step above is bounded; this is a backstop).
pub const CASE_LIMIT: Duration = Duration::from_secs(60);
/// How long the broker has to serve the health check.
const HEALTH_LIMIT: Duration = Duration::from_secs(10);

/// What the cases sent, for the run's figures.
#[derive(Debug, Default)]
pub struct Tally {
    pub connections: u64,
    pub packets: u64,
    pub mutated: u64,
    pub bytes: u64,
    pub acks: u64,
    pub write_stalls: u64,
}

/// Packet identifiers the broker sent that wait for our answer: (answer type, id).
type Pending = Arc<Mutex<VecDeque<(u8, u16)>>>;

/// Runs every script of `case` at once; connections left open are dropped at the end.
pub async fn play(addr: SocketAddr, case: &Case, tally: &mut Tally) {
    let tasks: Vec<_> = case
        .scripts
        .iter()
        .cloned()
        .map(|s| tokio::spawn(play_script(addr, s)))
        .collect();
    let mut left_open = Vec::new();
    for t in tasks {
        if let Ok((t2, kept)) = t.await {
            tally.connections += 1;
            tally.packets += t2.packets;
            tally.mutated += t2.mutated;
            tally.bytes += t2.bytes;
            tally.acks += t2.acks;
            tally.write_stalls += t2.write_stalls;
            left_open.extend(kept);
        }
    }
    drop(left_open);
}

async fn play_script(addr: SocketAddr, s: Script) -> (Tally, Option<TcpStream>) {
    let mut tally = Tally::default();
    tokio::time::sleep(Duration::from_millis(s.start_delay_ms)).await;
    let Ok(stream) = TcpStream::connect(addr).await else {
        return (tally, None);
    };
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let pending: Pending = Arc::default();
    let (stop_tx, stop_rx) = oneshot::channel();
    let reader = tokio::spawn(drain(rd, pending.clone(), stop_rx));
    for step in &s.steps {
        let bytes = match step {
            Step::Pause(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                continue;
            }
            Step::Send { bytes, mutated } => {
                tally.mutated += u64::from(*mutated);
                bytes.clone()
            }
            Step::Ack { fallback } => {
                tally.acks += 1;
                answer(fallback, &pending).encode()
            }
        };
        tally.packets += 1;
        tally.bytes += bytes.len() as u64;
        match tokio::time::timeout(WRITE_LIMIT, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break, // the broker closed the connection
            Err(_) => {
                tally.write_stalls += 1;
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    match s.ending {
        Ending::Close => {
            let _ = wr.shutdown().await;
            let _ = tokio::time::timeout(CLOSE_WAIT, reader).await;
            (tally, None)
        }
        Ending::Reset => {
            let _ = stop_tx.send(());
            if let Ok(Some(rd)) = reader.await {
                if let Ok(stream) = rd.reunite(wr) {
                    let _ = stream.set_zero_linger();
                }
            }
            (tally, None)
        }
        Ending::Leave => {
            let _ = stop_tx.send(());
            match reader.await {
                Ok(Some(rd)) => (tally, rd.reunite(wr).ok()),
                _ => (tally, None),
            }
        }
    }
}

/// The acknowledgement of the oldest packet the broker sent that waits for one,
/// with `fallback`'s reason code and properties; `fallback` itself when none waits.
fn answer(fallback: &Packet, pending: &Pending) -> Packet {
    let next = pending.lock().ok().and_then(|mut p| p.pop_front());
    let Some((first, pid)) = next else {
        return fallback.clone();
    };
    let mut fields = vec![Field::U16(pid)];
    fields.extend(fallback.fields.iter().skip(1).cloned());
    Packet::new(first, fields)
}

/// Reads and discards what the broker sends, noting the packet identifiers
/// that wait for an answer. Gives the read half back when told to stop.
async fn drain(
    mut rd: OwnedReadHalf,
    pending: Pending,
    mut stop: oneshot::Receiver<()>,
) -> Option<OwnedReadHalf> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = &mut stop => return Some(rd),
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    note_pending(&mut buf, &pending);
                }
            }
        }
    }
}

/// Consumes the whole packets at the front of `buf`; records what they ask us to answer.
fn note_pending(buf: &mut Vec<u8>, pending: &Pending) {
    loop {
        let Some((len, header)) = remaining_length(buf) else {
            return;
        };
        let end = header + len;
        if buf.len() < end {
            return;
        }
        let body = &buf[header..end];
        let pid = |at: usize| {
            body.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let answer = match buf[0] & 0xF0 {
            0x30 => {
                let topic_len = pid(0).unwrap_or(0) as usize;
                match (buf[0] >> 1) & 3 {
                    1 => pid(2 + topic_len).map(|p| (kind::PUBACK, p)),
                    2 => pid(2 + topic_len).map(|p| (kind::PUBREC, p)),
                    _ => None,
                }
            }
            0x50 => pid(0).map(|p| (kind::PUBREL, p)),
            0x60 => pid(0).map(|p| (kind::PUBCOMP, p)),
            _ => None,
        };
        if let (Some(a), Ok(mut p)) = (answer, pending.lock()) {
            if p.len() < 1_000 {
                p.push_back(a);
            }
        }
        buf.drain(..end);
    }
}

/// (Remaining Length, length of the fixed header) once enough bytes are there.
fn remaining_length(buf: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        v |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, 2 + i));
        }
    }
    None
}

/// Connects a well-behaved client of `version`, subscribes, publishes at QoS 1
/// and waits for its own message. Err says what did not happen.
pub async fn health_check(addr: SocketAddr, n: u64, version: Version) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_LIMIT, health(addr, n, version)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the broker did not serve a healthy client within {HEALTH_LIMIT:?}"
        )),
    }
}

async fn health(addr: SocketAddr, n: u64, version: Version) -> Result<(), String> {
    let id = format!("health-{n}");
    let topic = format!("health/{n}");
    let mut c = Raw::open(addr, version).await;
    let v5 = version == Version::V5_0;
    if v5 {
        c.send(v5_connect(&id, Some("admin")).into()).await;
    } else {
        c.send(v3_connect(&id, Some("admin"), None).into()).await;
    }
    match c.recv(HEALTH_LIMIT).await {
        Ok(CodecPacket::V5_0Connack(a)) if a.reason_code() as u8 == 0 => {}
        Ok(CodecPacket::V3_1_1Connack(a)) if a.return_code() as u8 == 0 => {}
        other => return Err(format!("healthy CONNECT not accepted: {other:?}")),
    }
    if v5 {
        c.send(v5_sub(1, &[(&topic, Qos::AtLeastOnce)]).into())
            .await;
    } else {
        c.send(v3_sub(1, &[(&topic, Qos::AtLeastOnce)]).into())
            .await;
    }
    match c.recv(HEALTH_LIMIT).await {
        Ok(CodecPacket::V5_0Suback(_) | CodecPacket::V3_1_1Suback(_)) => {}
        other => return Err(format!("healthy SUBSCRIBE not answered: {other:?}")),
    }
    let payload = format!("alive {n}");
    if v5 {
        c.send(v5_pub(&topic, payload.as_bytes(), Qos::AtLeastOnce, Some(2)).into())
            .await;
    } else {
        c.send(v3_pub(&topic, payload.as_bytes(), Qos::AtLeastOnce, Some(2)).into())
            .await;
    }
    loop {
        match c.recv(HEALTH_LIMIT).await {
            Ok(p @ (CodecPacket::V5_0Publish(_) | CodecPacket::V3_1_1Publish(_))) => {
                let (t, body, _, _) = crate::support::packets::publish_parts(&p);
                if t == topic && body == payload.as_bytes() {
                    break;
                }
            }
            Ok(_) => {}
            Err(RecvError::Timeout) => return Err("healthy PUBLISH never delivered".into()),
            Err(RecvError::Closed) => return Err("healthy client disconnected".into()),
        }
    }
    c.send_raw(&[0xe0, 0x00]).await;
    Ok(())
}
