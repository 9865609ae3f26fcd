//! `connect`: open N idle connections (each a full CONNECT/CONNACK handshake), hold
//! them, and measure the connection rate and the broker's memory per connection.

use super::client::Conn;
use super::procstat::Proc;
use super::progress::Progress;
use super::report::{latency_histogram, Latency, Report};
use super::{BenchConfig, BenchError, ErrorTally, Role, UsageMeter};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

pub async fn run(cfg: &BenchConfig, broker: Option<&Proc>) -> Result<Report, BenchError> {
    let n = cfg.count.max(1);
    let rss_before = broker.and_then(|p| p.sample().ok()).map(|s| s.rss_kib);
    let meter = UsageMeter::start(broker);
    let permits = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let d = done.clone();
        Progress::start(cfg.progress, "connect", move || {
            format!("connections {}/{n}", d.load(Relaxed))
        })
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.deadline;
    let mut set = JoinSet::new();
    for i in 0..n {
        let mut spec = cfg.spec(Role::Idle, i);
        // Idle connections send nothing for the whole run.
        spec.keep_alive_secs =
            (cfg.hold.as_secs() + cfg.deadline.as_secs() + 60).min(u16::MAX as u64) as u16;
        let (addr, permits, done) = (cfg.addr, permits.clone(), done.clone());
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            let t = Instant::now();
            let r = Conn::connect(addr, &spec).await;
            done.fetch_add(1, Relaxed);
            Some(r.map(|c| (c, t.elapsed())))
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut errors = ErrorTally::default();
    let mut latency = latency_histogram();
    let mut attempted = 0u64;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Some(Ok((c, took)))) => {
                attempted += 1;
                let _ = latency.record((took.as_nanos() as u64).max(1));
                held.push(c);
            }
            Ok(Some(Err(e))) => {
                attempted += 1;
                errors.add(e);
            }
            Ok(None) => {}
            Err(e) => errors.add(format!("connect task failed: {e}")),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    drop(progress);

    tokio::time::sleep(cfg.hold).await;
    let usage = meter.finish();
    let rss_after = broker.and_then(|p| p.sample().ok()).map(|s| s.rss_kib);
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if !held.is_empty() => {
            Some((a.saturating_sub(b) * 1024) as f64 / held.len() as f64)
        }
        _ => None,
    };
    let established = held.len() as u64;
    // Close politely, so that no will or error is logged for them.
    let mut closing = JoinSet::new();
    for c in held {
        closing.spawn(c.disconnect());
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while closing.join_next().await.is_some() {}
    })
    .await;

    Ok(Report {
        duration_secs: (connect_secs * 1000.0).round() / 1000.0,
        stopped_by: Some(
            if attempted < n as u64 {
                "deadline"
            } else {
                "count"
            }
            .into(),
        ),
        connections_attempted: Some(attempted),
        connections_established: Some(established),
        connections_per_sec: (connect_secs > 0.0).then(|| established as f64 / connect_secs),
        latency: Latency::from_nanos(&latency),
        broker_rss_per_connection_bytes: per_conn.map(|b| b.round()),
        broker: usage,
        errors: errors.into_lines(),
        ..Report::default()
    })
}
