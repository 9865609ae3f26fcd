//! The receiving side shared by subscribers and the will watcher: read packets in
//! batches, acknowledge QoS 1 messages once per batch, keep the connection alive.

use super::client::{encode_pingreq, encode_puback, next_packet, ClientError, Conn};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Packet, Publish};
use rumqttc::mqttbytes::QoS;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How often the loop wakes up to check whether it should stop.
const TICK: Duration = Duration::from_millis(20);
/// Send PINGREQ when nothing was sent for this long (connections use keep-alive 60 s).
const PING_AFTER: Duration = Duration::from_secs(20);

/// Receives until `should_stop` says so (checked at least every 20 ms) or the broker
/// closes the connection (an error). Calls `on_publish` for every message.
pub async fn receive_loop(
    conn: &mut Conn,
    mut on_publish: impl FnMut(&Publish),
    mut should_stop: impl FnMut() -> bool,
) -> Result<(), ClientError> {
    let mut out = BytesMut::with_capacity(1024);
    let mut last_sent = Instant::now();
    conn.buf.reserve(64 * 1024);
    loop {
        while let Some(packet) = next_packet(&mut conn.buf)? {
            if let Packet::Publish(p) = packet {
                if p.qos == QoS::AtLeastOnce {
                    encode_puback(&mut out, p.pkid);
                }
                on_publish(&p);
            }
        }
        if last_sent.elapsed() >= PING_AFTER {
            encode_pingreq(&mut out);
        }
        if !out.is_empty() {
            conn.stream.write_all(&out).await?;
            out.clear();
            last_sent = Instant::now();
        }
        if should_stop() {
            return Ok(());
        }
        if conn.buf.capacity() - conn.buf.len() < 16 * 1024 {
            conn.buf.reserve(64 * 1024);
        }
        match tokio::time::timeout(TICK, conn.stream.read_buf(&mut conn.buf)).await {
            Ok(Ok(0)) => return Err(ClientError::Closed),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}
