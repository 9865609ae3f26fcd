//! The will scenarios. A watcher subscribes to every bench will topic; will
//! clients connect with a stamped will and then die: `will-kill` closes the socket
//! without DISCONNECT, one client at a time; `will-silent` stops sending so that
//! the broker's keep-alive check must notice; `will-storm` connects many clients
//! and closes them all at once.

use super::client::{ClientError, Conn};
use super::procstat::Proc;
use super::progress::Progress;
use super::receive::receive_loop;
use super::report::{latency_histogram, Latency, Report};
use super::stamp::{Clock, Stamp, STAMP_LEN};
use super::{run_tag, BenchConfig, BenchError, ErrorTally, Role, Scenario, UsageMeter};
use bytes::Bytes;
use rumqttc::mqttbytes::v4::LastWill;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// What the watcher saw, shared with the scenario.
struct Wills {
    clock: Clock,
    run: u32,
    /// When client i's socket was closed (or its CONNECT sent, for will-silent), in
    /// clock nanoseconds; 0 = not yet.
    start: Vec<AtomicU64>,
    /// When client i's will arrived; 0 = not yet.
    arrived: Vec<AtomicU64>,
    count: AtomicUsize,
    stop: AtomicBool,
}

impl Wills {
    fn all_arrived(&self, n: usize) -> bool {
        self.count.load(Relaxed) >= n
    }
}

pub async fn run(cfg: &BenchConfig, broker: Option<&Proc>) -> Result<Report, BenchError> {
    let n = cfg.count.max(1);
    let wills = Arc::new(Wills {
        clock: Clock::start(),
        run: run_tag(),
        start: (0..n).map(|_| AtomicU64::new(0)).collect(),
        arrived: (0..n).map(|_| AtomicU64::new(0)).collect(),
        count: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });

    let mut watcher = Conn::connect(cfg.addr, &cfg.spec(Role::Watcher, 0)).await?;
    watcher.subscribe(&cfg.names.will_filter(), cfg.qos).await?;
    let watch_task = {
        let w = wills.clone();
        tokio::spawn(async move {
            let r = receive_loop(
                &mut watcher,
                |p| {
                    let Some(stamp) = Stamp::read(&p.payload) else {
                        return;
                    };
                    let i = stamp.sender as usize;
                    if stamp.run != w.run || i >= w.arrived.len() {
                        return;
                    }
                    if w.arrived[i]
                        .compare_exchange(0, w.clock.nanos().max(1), Relaxed, Relaxed)
                        .is_ok()
                    {
                        w.count.fetch_add(1, Relaxed);
                    }
                },
                || w.stop.load(Relaxed),
            )
            .await;
            if r.is_ok() {
                watcher.disconnect().await;
            }
            r
        })
    };

    let progress = {
        let w = wills.clone();
        Progress::start(cfg.progress, cfg.scenario.name(), move || {
            format!("wills {}/{n}", w.count.load(Relaxed))
        })
    };
    let meter = UsageMeter::start(broker);
    let mut errors = ErrorTally::default();
    let mut report = Report {
        qos: Some(cfg.qos as u8),
        ..Report::default()
    };
    let started = std::time::Instant::now();
    let attempted = match cfg.scenario {
        Scenario::WillKill => kill_one_by_one(cfg, n, &wills, &mut errors).await,
        Scenario::WillSilent => {
            let limit = Duration::from_millis(cfg.keep_alive as u64 * 1500 + 100);
            report.will_limit_ms = Some(limit.as_millis() as f64);
            go_silent(cfg, n, &wills, &mut errors).await
        }
        _ => storm(cfg, n, &wills, &mut errors, &mut report).await,
    };
    report.duration_secs = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    wills.stop.store(true, Relaxed);
    match watch_task.await {
        Ok(Ok(())) => {}
        Ok(Err(ClientError::Closed)) => {
            errors.add("the broker closed the will watcher's connection")
        }
        Ok(Err(e)) => errors.add(format!("will watcher: {e}")),
        Err(e) => errors.add(format!("will watcher task failed: {e}")),
    }
    drop(progress);

    let mut latency = latency_histogram();
    let mut delivered = 0u64;
    let mut late = 0u64;
    let limit_nanos = report.will_limit_ms.map(|ms| (ms * 1e6) as u64);
    for i in 0..attempted {
        let (s, a) = (wills.start[i].load(Relaxed), wills.arrived[i].load(Relaxed));
        if s == 0 {
            continue;
        }
        if a == 0 {
            late += 1;
            continue;
        }
        delivered += 1;
        let d = a.saturating_sub(s).max(1);
        let _ = latency.record(d);
        if limit_nanos.is_some_and(|l| d > l) {
            late += 1;
        }
    }
    let expected = (0..attempted)
        .filter(|&i| wills.start[i].load(Relaxed) != 0)
        .count() as u64;
    report.sent = Some(expected);
    report.expected = Some(expected);
    report.delivered = Some(delivered);
    report.lost = Some(expected - delivered);
    if report.will_limit_ms.is_some() {
        report.wills_late = Some(late);
    }
    report.latency = Latency::from_nanos(&latency);
    report.broker = meter.finish();
    report.errors = errors.into_lines();
    Ok(report)
}

fn will_spec(cfg: &BenchConfig, i: usize, run: u32, keep_alive: u16) -> super::client::ConnectSpec {
    let mut payload = vec![0u8; cfg.payload.max(STAMP_LEN)];
    Stamp {
        run,
        sender: i as u32,
        seq: 0,
        sent_nanos: 0,
    }
    .write(&mut payload);
    let mut spec = cfg.spec(Role::Will, i);
    spec.keep_alive_secs = keep_alive;
    spec.persistent = false;
    spec.will = Some(LastWill {
        topic: cfg.names.will_topic(i),
        message: Bytes::from(payload),
        qos: cfg.qos,
        retain: false,
    });
    spec
}

/// Waits until `done()` or the timeout.
async fn wait_for(timeout: Duration, done: impl Fn() -> bool) {
    let until = tokio::time::Instant::now() + timeout;
    while !done() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// will-kill: one client at a time, so each measurement is undisturbed.
async fn kill_one_by_one(
    cfg: &BenchConfig,
    n: usize,
    w: &Arc<Wills>,
    errors: &mut ErrorTally,
) -> usize {
    let deadline = tokio::time::Instant::now() + cfg.deadline;
    for i in 0..n {
        if tokio::time::Instant::now() >= deadline {
            return i;
        }
        let conn = match Conn::connect(cfg.addr, &will_spec(cfg, i, w.run, 60)).await {
            Ok(c) => c,
            Err(e) => {
                errors.add(e);
                continue;
            }
        };
        // Let the broker finish setting up the session before it is torn down.
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.start[i].store(w.clock.nanos().max(1), Relaxed);
        drop(conn); // close(2) without DISCONNECT
        wait_for(Duration::from_secs(5), || w.arrived[i].load(Relaxed) != 0).await;
    }
    n
}

/// will-silent: all clients connect (20 ms apart) with the keep-alive and then send
/// nothing; the measurement runs from each CONNECT to its will.
async fn go_silent(cfg: &BenchConfig, n: usize, w: &Arc<Wills>, errors: &mut ErrorTally) -> usize {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = w.clock.nanos().max(1);
        match Conn::connect(cfg.addr, &will_spec(cfg, i, w.run, cfg.keep_alive.max(1))).await {
            Ok(c) => {
                w.start[i].store(t0, Relaxed);
                held.push(c);
            }
            Err(e) => errors.add(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broker that never notices is reported as lost after 4x keep-alive.
    let limit = Duration::from_secs(cfg.keep_alive.max(1) as u64 * 4 + 2);
    wait_for(limit, || w.all_arrived(held.len())).await;
    drop(held);
    n
}

/// will-storm: connect all clients, then close every socket at once.
async fn storm(
    cfg: &BenchConfig,
    n: usize,
    w: &Arc<Wills>,
    errors: &mut ErrorTally,
    report: &mut Report,
) -> usize {
    let permits = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let spec = will_spec(cfg, i, w.run, 60);
        let addr = cfg.addr;
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            (i, Conn::connect(addr, &spec).await)
        });
    }
    let mut held = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, Ok(c))) => held.push((i, c)),
            Ok((_, Err(e))) => errors.add(e),
            Err(e) => errors.add(format!("connect task failed: {e}")),
        }
    }
    report.connections_attempted = Some(n as u64);
    report.connections_established = Some(held.len() as u64);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first_close = w.clock.nanos().max(1);
    for (i, c) in held.drain(..) {
        w.start[i].store(w.clock.nanos().max(1), Relaxed);
        drop(c);
    }
    let expected = report.connections_established.unwrap_or(0) as usize;
    wait_for(cfg.deadline.max(Duration::from_secs(5)), || {
        w.all_arrived(expected)
    })
    .await;
    let last = w.arrived.iter().map(|a| a.load(Relaxed)).max().unwrap_or(0);
    if last > 0 {
        report.time_to_last_will_ms =
            Some(((last.saturating_sub(first_close)) as f64 / 1e3).round() / 1e3);
    }
    n
}
