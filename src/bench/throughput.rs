//! `fanout` and `pair`: publishers send stamped messages as fast as they can (or at
//! a fixed total rate), subscribers count them and record their latency.

use super::client::{next_packet, ClientError, Conn, MAX_PACKET};
use super::procstat::Proc;
use super::progress::Progress;
use super::receive::receive_loop;
use super::report::{latency_histogram, Latency, Report};
use super::stamp::{Clock, Stamp, STAMP_LEN};
use super::{run_tag, BenchConfig, BenchError, ErrorTally, Role, Scenario, UsageMeter};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::v4::{Packet, Publish};
use rumqttc::mqttbytes::QoS;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Messages per write at full speed: one syscall carries many publishes.
const BATCH: u64 = 64;

/// Counters the tasks share while running.
struct Shared {
    clock: Clock,
    run: u32,
    /// Messages written, per publisher.
    sent: Vec<AtomicU64>,
    /// Messages received, per subscriber.
    received: Vec<AtomicU64>,
    publishers_done: AtomicBool,
    /// When subscribers give up waiting (set when the publishers are done).
    drain_until_nanos: AtomicU64,
}

struct PubResult {
    stopped_by_deadline: bool,
    end_nanos: u64,
    errors: ErrorTally,
}

struct SubResult {
    delivered: u64,
    duplicates: u64,
    last_nanos: u64,
    latency: Histogram<u64>,
    errors: ErrorTally,
}

pub async fn run(cfg: &BenchConfig, broker: Option<&Proc>) -> Result<Report, BenchError> {
    if cfg.payload < STAMP_LEN {
        return Err(BenchError::Setup(format!(
            "--payload must be at least {STAMP_LEN} bytes (the bench's stamp)"
        )));
    }
    let pair = cfg.scenario == Scenario::Pair;
    let n_pub = cfg.publishers.max(1);
    let n_sub = if pair { n_pub } else { cfg.subscribers };

    // Subscribers first, so that nothing published is missed.
    let mut subs = Vec::with_capacity(n_sub);
    for i in 0..n_sub {
        let mut c = Conn::connect(cfg.addr, &cfg.spec(Role::Subscriber, i)).await?;
        let filter = if pair {
            cfg.names.data_topic(i)
        } else {
            cfg.names.data_filter()
        };
        c.subscribe(&filter, cfg.qos).await?;
        subs.push(c);
    }
    let mut pubs = Vec::with_capacity(n_pub);
    for i in 0..n_pub {
        pubs.push(Conn::connect(cfg.addr, &cfg.spec(Role::Publisher, i)).await?);
    }

    let shared = Arc::new(Shared {
        clock: Clock::start(),
        run: run_tag(),
        sent: (0..n_pub).map(|_| AtomicU64::new(0)).collect(),
        received: (0..n_sub).map(|_| AtomicU64::new(0)).collect(),
        publishers_done: AtomicBool::new(false),
        drain_until_nanos: AtomicU64::new(u64::MAX),
    });
    let meter = UsageMeter::start(broker);
    let deadline_nanos = cfg.deadline.as_nanos() as u64;

    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let shared = shared.clone();
            tokio::spawn(subscriber(
                conn,
                i,
                if pair { Some(i) } else { None },
                shared,
            ))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let shared = shared.clone();
            let cfg = cfg.clone();
            tokio::spawn(
                async move { publisher(conn, i, &cfg, n_pub, deadline_nanos, shared).await },
            )
        })
        .collect();

    let progress = {
        let s = shared.clone();
        Progress::start(cfg.progress, cfg.scenario.name(), move || {
            let sent: u64 = s.sent.iter().map(|a| a.load(Relaxed)).sum();
            let got: u64 = s.received.iter().map(|a| a.load(Relaxed)).sum();
            format!("sent {sent}  delivered {got}")
        })
    };

    let mut errors = ErrorTally::default();
    let mut stopped_by_deadline = false;
    let mut pub_end = 0;
    for t in pub_tasks {
        match t.await {
            Ok(r) => {
                stopped_by_deadline |= r.stopped_by_deadline;
                pub_end = pub_end.max(r.end_nanos);
                errors.merge(r.errors);
            }
            Err(e) => errors.add(format!("publisher task failed: {e}")),
        }
    }
    shared
        .drain_until_nanos
        .store(shared.clock.nanos() + cfg.drain.as_nanos() as u64, Relaxed);
    shared.publishers_done.store(true, Relaxed);

    let mut latency = latency_histogram();
    let mut delivered = 0;
    let mut duplicates = 0;
    let mut last = 0;
    for t in sub_tasks {
        match t.await {
            Ok(r) => {
                delivered += r.delivered;
                duplicates += r.duplicates;
                last = last.max(r.last_nanos);
                let _ = latency.add(&r.latency);
                errors.merge(r.errors);
            }
            Err(e) => errors.add(format!("subscriber task failed: {e}")),
        }
    }
    drop(progress);
    let usage = meter.finish();

    let sent: u64 = shared.sent.iter().map(|a| a.load(Relaxed)).sum();
    let expected = if pair { sent } else { sent * n_sub as u64 };
    let secs = |n: u64| n as f64 / 1e9;
    Ok(Report {
        qos: Some(cfg.qos as u8),
        publishers: Some(n_pub),
        subscribers: Some(n_sub),
        payload_bytes: Some(cfg.payload),
        rate_target: cfg.rate,
        duration_secs: (secs(pub_end.max(last)) * 1000.0).round() / 1000.0,
        stopped_by: Some(
            if stopped_by_deadline {
                "deadline"
            } else {
                "messages"
            }
            .into(),
        ),
        sent: Some(sent),
        expected: Some(expected),
        delivered: Some(delivered),
        lost: Some(expected.saturating_sub(delivered)),
        duplicates: Some(duplicates),
        sent_per_sec: (pub_end > 0).then(|| sent as f64 / secs(pub_end)),
        delivered_per_sec: (last > 0).then(|| delivered as f64 / secs(last)),
        latency: Latency::from_nanos(&latency),
        broker: usage,
        errors: errors.into_lines(),
        ..Report::default()
    })
}

/// One publisher: writes batches of pre-encoded PUBLISH packets, stamping each.
async fn publisher(
    conn: Conn,
    i: usize,
    cfg: &BenchConfig,
    n_pub: usize,
    deadline_nanos: u64,
    s: Arc<Shared>,
) -> PubResult {
    let mut errors = ErrorTally::default();
    let qos1 = cfg.qos == QoS::AtLeastOnce;
    let mut template = BytesMut::new();
    let mut p = Publish::from_bytes(
        cfg.names.data_topic(i),
        cfg.qos,
        Bytes::from(vec![0u8; cfg.payload]),
    );
    p.pkid = if qos1 { 1 } else { 0 };
    if let Err(e) = Packet::Publish(p).write(&mut template, MAX_PACKET) {
        errors.add(format!("cannot encode PUBLISH: {e}"));
        return PubResult {
            stopped_by_deadline: false,
            end_nanos: s.clock.nanos(),
            errors,
        };
    }
    let plen = template.len();
    let payload_at = plen - cfg.payload;
    let pkid_at = payload_at - 2;

    let Conn {
        stream,
        buf: read_buf,
    } = conn;
    let (rd, mut wr) = stream.into_split();
    let window = Arc::new(Semaphore::new(cfg.inflight.max(1)));
    let acked = Arc::new(AtomicU64::new(0));
    let ack_reader =
        qos1.then(|| tokio::spawn(read_acks(rd, read_buf, window.clone(), acked.clone())));

    let per_pub_rate = cfg.rate.map(|r| r / n_pub as f64);
    let mut batch = BytesMut::with_capacity(plen * BATCH as usize);
    let mut seq: u64 = 0;
    let mut pkid: u16 = 0;
    let mut stopped_by_deadline = false;
    let start = s.clock.nanos();
    loop {
        if seq >= cfg.messages {
            break;
        }
        let now = s.clock.nanos();
        if now >= deadline_nanos {
            stopped_by_deadline = true;
            break;
        }
        let mut n = BATCH.min(cfg.messages - seq);
        if let Some(rate) = per_pub_rate {
            let due = (((now - start) as f64 * rate / 1e9) as u64 + 1).saturating_sub(seq);
            if due == 0 {
                let next_at = start + ((seq as f64 / rate) * 1e9) as u64;
                tokio::time::sleep(Duration::from_nanos(
                    next_at.saturating_sub(now).max(200_000),
                ))
                .await;
                continue;
            }
            n = n.min(due);
        }
        if qos1 {
            let remaining = Duration::from_nanos(deadline_nanos.saturating_sub(now));
            match tokio::time::timeout(remaining, window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                Ok(Err(_)) => {
                    errors.add("the broker closed a publisher's connection");
                    break;
                }
                Err(_) => {
                    stopped_by_deadline = true;
                    break;
                }
            }
            let mut got = 1;
            while got < n {
                match window.try_acquire() {
                    Ok(permit) => {
                        permit.forget();
                        got += 1;
                    }
                    Err(_) => break,
                }
            }
            n = got;
        }
        batch.clear();
        for k in 0..n as usize {
            batch.extend_from_slice(&template);
            let msg = &mut batch[k * plen..(k + 1) * plen];
            if qos1 {
                pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                msg[pkid_at..pkid_at + 2].copy_from_slice(&pkid.to_be_bytes());
            }
            Stamp {
                run: s.run,
                sender: i as u32,
                seq: seq + k as u64,
                sent_nanos: s.clock.nanos(),
            }
            .write(&mut msg[payload_at..]);
        }
        let remaining =
            Duration::from_nanos(deadline_nanos.saturating_sub(s.clock.nanos())) + cfg.drain;
        match tokio::time::timeout(remaining, wr.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors.add(format!("publishing failed: {e}"));
                break;
            }
            Err(_) => {
                errors.add("a publisher was still blocked writing at the deadline: the broker had stopped reading (saturated)");
                stopped_by_deadline = true;
                break;
            }
        }
        seq += n;
        s.sent[i].store(seq, Relaxed);
    }
    let end_nanos = s.clock.nanos();
    if let Some(reader) = ack_reader {
        // Wait for the broker to acknowledge what was sent, within the drain time.
        let until = tokio::time::Instant::now() + cfg.drain;
        while acked.load(Relaxed) < seq
            && tokio::time::Instant::now() < until
            && !reader.is_finished()
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if acked.load(Relaxed) < seq {
            errors.add(format!(
                "{} QoS 1 messages were not acknowledged",
                seq - acked.load(Relaxed)
            ));
        }
        reader.abort();
    }
    let mut disconnect = BytesMut::new();
    let _ = Packet::Disconnect.write(&mut disconnect, MAX_PACKET);
    let _ = wr.write_all(&disconnect).await;
    let _ = wr.shutdown().await;
    PubResult {
        stopped_by_deadline,
        end_nanos,
        errors,
    }
}

/// Counts PUBACKs and opens the publisher's in-flight window for each.
async fn read_acks(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut buf: BytesMut,
    window: Arc<Semaphore>,
    acked: Arc<AtomicU64>,
) {
    loop {
        loop {
            match next_packet(&mut buf) {
                Ok(Some(Packet::PubAck(_))) => {
                    acked.fetch_add(1, Relaxed);
                    window.add_permits(1);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    window.close();
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                window.close();
                return;
            }
            Ok(_) => {}
        }
    }
}

/// One subscriber: counts stamped messages (from publisher `only` in `pair`).
async fn subscriber(mut conn: Conn, i: usize, only: Option<usize>, s: Arc<Shared>) -> SubResult {
    let mut latency = latency_histogram();
    let mut delivered = 0u64;
    let mut duplicates = 0u64;
    // MQTT keeps one publisher's messages in order: a sequence number below the
    // next expected one is a duplicate.
    let mut next_seq = vec![0u64; s.sent.len()];
    let mut last_nanos = 0u64;
    let mut errors = ErrorTally::default();
    let clock = s.clock;
    let result = receive_loop(
        &mut conn,
        |p| {
            if let Some(stamp) = Stamp::read(&p.payload) {
                let from = stamp.sender as usize;
                if stamp.run != s.run || from >= next_seq.len() || only.is_some_and(|o| o != from) {
                    return;
                }
                if stamp.seq < next_seq[from] {
                    duplicates += 1;
                    return;
                }
                next_seq[from] = stamp.seq + 1;
                let now = clock.nanos();
                let _ = latency.record(now.saturating_sub(stamp.sent_nanos).max(1));
                delivered += 1;
                last_nanos = now;
                s.received[i].store(delivered, Relaxed);
            }
        },
        || {
            if !s.publishers_done.load(Relaxed) {
                return false;
            }
            let expected: u64 = match only {
                Some(p) => s.sent[p].load(Relaxed),
                None => s.sent.iter().map(|a| a.load(Relaxed)).sum(),
            };
            s.received[i].load(Relaxed) >= expected
                || clock.nanos() >= s.drain_until_nanos.load(Relaxed)
        },
    )
    .await;
    match result {
        Ok(()) => conn.disconnect().await,
        Err(ClientError::Closed) => errors.add("the broker closed a subscriber's connection"),
        Err(e) => errors.add(format!("subscriber: {e}")),
    }
    SubResult {
        delivered,
        duplicates,
        last_nanos,
        latency,
        errors,
    }
}
