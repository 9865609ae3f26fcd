//! The structure-aware broker fuzzer (tests/broker_fuzz.rs; docs/reliability.md).
//!
//! Each case is a handful of concurrent connections to a real in-process broker
//! over loopback TCP, each sending valid MQTT 3.1.1 or 5 packets of which some
//! are mutated field by field or byte by byte. After every case a well-behaved
//! client must still be served, no broker task may have panicked, and the
//! process's resident memory must stay within a bound. Cases come from seeds:
//! case `i` of a run with base seed `S` has seed `S + i`, and replays alone with
//! `TOPICGATE_FUZZ_SEED=S+i TOPICGATE_FUZZ_CASES=1`.

pub mod case;
pub mod gen;
pub mod guard;
pub mod run;
pub mod sweep;
pub mod wire;

use crate::support::policy;
use gen::Knobs;
use mqtt_protocol_core::mqtt::Version;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};

/// Known-crash generators, each switched on once its fix is merged (see [`Knobs`]).
/// `TOPICGATE_FUZZ_KNOWN_CRASHES=1` (or `deep`, `alias0`) switches them on for one run.
pub const KNOWN_CRASHES: Knobs = Knobs {
    deep_topics: true,
    topic_alias_maximum_zero: true,
};

/// The users the cases connect as: two allowed everything, one allowed a
/// corner of the topic tree (so denials are exercised too); "nobody" is unknown.
pub const POLICY: &str = r##"namespace: fuzz
clients:
  admin: { attributes: { type: admin } }
  admin2: { attributes: { type: admin } }
  limited: { attributes: { type: limited } }
clientGroups:
  admins: { query: "attributes.type = 'admin'" }
  limited: { query: "attributes.type = 'limited'" }
topicSpaces:
  everything: { topicTemplates: [ "#" ] }
  corner:
    topicTemplates: [ "telemetry/f1/#", "clients/${client.authenticationName}/status" ]
permissionBindings:
  admins-pub: { clientGroup: admins, topicSpace: everything, permission: publisher }
  admins-sub: { clientGroup: admins, topicSpace: everything, permission: subscriber }
  limited-pub: { clientGroup: limited, topicSpace: corner, permission: publisher }
  limited-sub: { clientGroup: limited, topicSpace: corner, permission: subscriber }
"##;

/// Limits small enough that cases reach them (sessions and wills expire within
/// the run), large enough for 64 KiB topics and 70 KB payloads.
pub fn broker_config() -> BrokerConfig {
    BrokerConfig {
        connect_timeout: Duration::from_secs(1),
        max_queued_messages: 100,
        max_session_expiry: 3,
        max_will_delay: 2,
        max_publisher_wait: Duration::from_millis(200),
        ..BrokerConfig::default()
    }
}

/// How long and how hard to fuzz.
#[derive(Debug, Clone)]
pub struct Budget {
    pub base_seed: u64,
    pub max_cases: u64,
    pub max_time: Duration,
    /// Largest growth of resident memory over the run, after warm-up.
    pub rss_bound_mib: u64,
    /// Cases served by one broker before it is shut down and replaced.
    pub cases_per_broker: u64,
    pub knobs: Knobs,
}

impl Budget {
    /// From the environment: `TOPICGATE_FUZZ_SECS` (run that long; unset: the
    /// small CI budget), `TOPICGATE_FUZZ_CASES`, `TOPICGATE_FUZZ_SEED`,
    /// `TOPICGATE_FUZZ_RSS_MIB`, `TOPICGATE_FUZZ_KNOWN_CRASHES` (`1`, `deep`, `alias0`).
    pub fn from_env() -> Budget {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let secs = num("TOPICGATE_FUZZ_SECS");
        let (max_cases, max_time) = match secs {
            Some(s) => (u64::MAX, Duration::from_secs(s)),
            None => (250, Duration::from_secs(20)),
        };
        // "1" or "all": both; else a comma-separated list of "deep", "alias0".
        let known = std::env::var("TOPICGATE_FUZZ_KNOWN_CRASHES").unwrap_or_default();
        let on = |name: &str| {
            known == "1" || known == "all" || known.split(',').any(|k| k.trim() == name)
        };
        Budget {
            // A fixed seed in CI keeps its cases the same from run to run; a long
            // run starts where the clock says, so each explores new cases.
            base_seed: num("TOPICGATE_FUZZ_SEED").unwrap_or(if secs.is_some() {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() << 20)
                    .unwrap_or(1)
            } else {
                0x7061_686f_0011
            }),
            max_cases: num("TOPICGATE_FUZZ_CASES").unwrap_or(max_cases),
            max_time,
            rss_bound_mib: num("TOPICGATE_FUZZ_RSS_MIB").unwrap_or(512),
            cases_per_broker: 200,
            knobs: Knobs {
                deep_topics: KNOWN_CRASHES.deep_topics || on("deep"),
                topic_alias_maximum_zero: KNOWN_CRASHES.topic_alias_maximum_zero || on("alias0"),
            },
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Figures {
    pub cases: u64,
    pub brokers: u64,
    pub tally: run::Tally,
    pub health_checks: u64,
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    pub protocol_errors: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub wills_published: u64,
    pub elapsed: Duration,
}

/// A property the broker broke, with the case that showed it.
#[derive(Debug)]
pub struct Failure {
    pub base_seed: u64,
    pub case_index: u64,
    pub case_seed: u64,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n  case {} of base seed {} (case seed {}).\n  Replay the case alone: TOPICGATE_FUZZ_SEED={} TOPICGATE_FUZZ_CASES=1\n  Replay the run up to it: TOPICGATE_FUZZ_SEED={} TOPICGATE_FUZZ_CASES={}",
            self.what,
            self.case_index,
            self.base_seed,
            self.case_seed,
            self.case_seed,
            self.base_seed,
            self.case_index + 1
        )
    }
}

async fn start_broker() -> (Broker, SocketAddr) {
    let broker = Broker::new(
        policy::compile(POLICY),
        broker_config(),
        IdentityMode::Dev {
            anonymous: Some("admin".into()),
        },
    );
    let (addr, _accept) = broker
        .listen("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind a loopback port");
    (broker, addr)
}

fn add_counters(f: &mut Figures, b: &Broker) {
    let s = b.stats();
    f.protocol_errors += s.protocol_errors.get();
    f.connections_accepted += s.connections_accepted.get();
    f.connections_refused += s.connections_refused.get();
    f.wills_published += s.wills_published.get();
}

/// Runs cases until the budget is spent or a property fails.
pub async fn fuzz(budget: &Budget) -> Result<Figures, (Failure, Figures)> {
    guard::install();
    guard::BASE_SEED.store(budget.base_seed, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let mut fig = Figures::default();
    let (mut broker, mut addr) = start_broker().await;
    fig.brokers = 1;
    let mut rss_base = 0;
    let mut i = 0u64;
    while i < budget.max_cases && started.elapsed() < budget.max_time {
        let (index, seed) = (i, budget.base_seed.wrapping_add(i));
        let fail = move |what: String| Failure {
            base_seed: budget.base_seed,
            case_index: index,
            case_seed: seed,
            what,
        };
        guard::CASE_INDEX.store(i, std::sync::atomic::Ordering::Relaxed);
        let case = case::generate(seed, budget.knobs);
        if tokio::time::timeout(run::CASE_LIMIT, run::play(addr, &case, &mut fig.tally))
            .await
            .is_err()
        {
            return Err((
                fail(format!("the case did not end within {:?}", run::CASE_LIMIT)),
                fig,
            ));
        }
        let version = if i.is_multiple_of(2) {
            Version::V5_0
        } else {
            Version::V3_1_1
        };
        let health = run::health_check(addr, i, version).await;
        fig.health_checks += 1;
        let panics = guard::take_panics();
        if !panics.is_empty() {
            return Err((
                fail(format!("broker panicked:\n    {}", panics.join("\n    "))),
                fig,
            ));
        }
        if let Err(e) = health {
            return Err((fail(e), fig));
        }
        let rss = guard::rss_kib();
        if i == 2 {
            rss_base = rss; // after warm-up: the runtime's and allocator's first growth
            fig.rss_start_kib = rss;
        }
        fig.rss_max_kib = fig.rss_max_kib.max(rss);
        if rss_base > 0 && rss.saturating_sub(rss_base) > budget.rss_bound_mib * 1024 {
            return Err((
                fail(format!(
                    "resident memory grew from {rss_base} KiB to {rss} KiB (bound {} MiB)",
                    budget.rss_bound_mib
                )),
                fig,
            ));
        }
        i += 1;
        fig.cases = i;
        if i.is_multiple_of(100) {
            guard::progress(&format!(
                "broker_fuzz: {i} cases, {} connections, {:.0?}, RSS {} MiB",
                fig.tally.connections,
                started.elapsed(),
                rss / 1024
            ));
        }
        if i.is_multiple_of(budget.cases_per_broker) {
            add_counters(&mut fig, &broker);
            broker.shutdown().await;
            if let Err(e) = all_tasks_end().await {
                return Err((fail(e), fig));
            }
            (broker, addr) = start_broker().await;
            fig.brokers += 1;
        }
    }
    add_counters(&mut fig, &broker);
    broker.shutdown().await;
    let ended = all_tasks_end().await;
    fig.elapsed = started.elapsed();
    let panics = guard::take_panics();
    let last = i.saturating_sub(1);
    let problem = if !panics.is_empty() {
        Some(format!("broker panicked:\n    {}", panics.join("\n    ")))
    } else {
        ended.err()
    };
    if let Some(what) = problem {
        let f = Failure {
            base_seed: budget.base_seed,
            case_index: last,
            case_seed: budget.base_seed.wrapping_add(last),
            what,
        };
        return Err((f, fig));
    }
    Ok(fig)
}

/// After a broker's shutdown every task of the runtime ends: its connections
/// (and the fuzz clients' readers, which end when the broker closes), session
/// expiries (at most 3 s) and will delays (at most 2 s). One still alive after
/// 15 s is a connection that shutdown did not end.
async fn all_tasks_end() -> Result<(), String> {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + Duration::from_secs(15);
    while metrics.num_alive_tasks() > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "{} tasks still alive 15 s after the broker's shutdown",
                metrics.num_alive_tasks()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.tally;
        write!(
            f,
            "{} cases in {:.1?} on {} broker(s): {} connections, {} packets ({} mutated, {} acknowledgements), {} MB sent, {} write stalls; {} health checks passed; broker: {} connections accepted, {} refused, {} protocol errors, {} wills published; RSS {} MiB after warm-up, at most {} MiB",
            self.cases,
            self.elapsed,
            self.brokers,
            t.connections,
            t.packets,
            t.mutated,
            t.acks,
            t.bytes / 1_000_000,
            t.write_stalls,
            self.health_checks,
            self.connections_accepted,
            self.connections_refused,
            self.protocol_errors,
            self.wills_published,
            self.rss_start_kib / 1024,
            self.rss_max_kib / 1024,
        )
    }
}

/// The runtime the broker runs on: two workers (like the machines CI runs on),
/// named so the panic hook knows its threads, with the default 2 MiB stacks
/// the `serve` command's runtime has.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(guard::THREAD_NAME)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sends every probe of [`sweep::probes`], 16 connections at a time; after each
/// batch no panic, and at the end a healthy client is served. Returns the count.
pub async fn sweep_properties(knobs: Knobs) -> Result<usize, String> {
    guard::install();
    let (broker, addr) = start_broker().await;
    let probes = sweep::probes(knobs);
    for batch in probes.chunks(16) {
        let sends: Vec<_> = batch.iter().map(|p| sweep::send(addr, p)).collect();
        futures_util::future::join_all(sends).await;
        let panics = guard::take_panics();
        if !panics.is_empty() {
            // Replay the batch one probe at a time to name the culprit.
            for p in batch {
                sweep::send(addr, p).await;
                let again = guard::take_panics();
                if !again.is_empty() {
                    return Err(format!(
                        "broker panicked on {}:\n    {}",
                        p.name,
                        again.join("\n    ")
                    ));
                }
            }
            return Err(format!(
                "broker panicked in a batch:\n    {}",
                panics.join("\n    ")
            ));
        }
    }
    run::health_check(addr, 0, Version::V5_0).await?;
    broker.shutdown().await;
    Ok(probes.len())
}
