//! `topicgate bench`: a load generator for any MQTT 3.1.1 broker. It measures what
//! users choose a broker by: message throughput and latency (`fanout`, `pair`), how
//! fast and how reliably wills arrive (`will-kill`, `will-silent`, `will-storm`), and
//! what connections cost (`connect`). Every run is bounded by a message or
//! connection count and by a deadline. This is a tool, not a pipeline stage: it
//! talks to a broker over TCP like any client would.

pub mod client;
pub mod connect;
pub mod procstat;
pub mod progress;
pub mod receive;
pub mod report;
pub mod stamp;
pub mod throughput;
pub mod will;

use client::{ClientError, ConnectSpec};
use report::{BrokerUsage, Report};
use rumqttc::mqttbytes::QoS;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// N publishers, M subscribers on one wildcard filter: every message reaches every subscriber.
    Fanout,
    /// N publisher/subscriber pairs: subscriber i follows publisher i's topic only.
    Pair,
    /// Connect with a will, close the socket without DISCONNECT: time until the will arrives.
    WillKill,
    /// Connect with a will, then send nothing: time until the broker notices (1.5x keep-alive) and publishes the will.
    WillSilent,
    /// Connect N clients with wills and close them all at once: are all wills delivered, and when is the last?
    WillStorm,
    /// Open N idle connections: connection rate, and the broker's memory per connection.
    Connect,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Pair => "pair",
            Scenario::WillKill => "will-kill",
            Scenario::WillSilent => "will-silent",
            Scenario::WillStorm => "will-storm",
            Scenario::Connect => "connect",
        }
    }
}

/// The role a connection plays; it picks the username template and the client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
    /// The subscriber that receives wills in the will scenarios.
    Watcher,
    /// A client that connects with a will and then dies.
    Will,
    /// An idle connection of the `connect` scenario.
    Idle,
}

impl Role {
    fn short(self) -> &'static str {
        match self {
            Role::Publisher => "pub",
            Role::Subscriber => "sub",
            Role::Watcher => "watch",
            Role::Will => "will",
            Role::Idle => "idle",
        }
    }
}

/// The identities and topics the bench uses, so that they can match the clients
/// and topic templates of the policy a broker enforces. In username templates,
/// `{i}` is replaced by the connection's number within its role (0, 1, ...).
#[derive(Debug, Clone)]
pub struct Names {
    pub publisher_user: String,
    pub subscriber_user: String,
    pub will_user: String,
    pub idle_user: String,
    pub password: Option<String>,
    pub client_id_prefix: String,
    pub topic_prefix: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            publisher_user: "bench-pub-{i}".into(),
            subscriber_user: "bench-sub-{i}".into(),
            will_user: "bench-will".into(),
            idle_user: "bench-idle".into(),
            password: None,
            client_id_prefix: "bench".into(),
            topic_prefix: "bench".into(),
        }
    }
}

impl Names {
    pub fn username(&self, role: Role, i: usize) -> String {
        let template = match role {
            Role::Publisher => &self.publisher_user,
            Role::Subscriber | Role::Watcher => &self.subscriber_user,
            Role::Will => &self.will_user,
            Role::Idle => &self.idle_user,
        };
        template.replace("{i}", &i.to_string())
    }

    /// Unique per connection within a run: `PREFIX-ROLE-i`.
    pub fn client_id(&self, role: Role, i: usize) -> String {
        format!("{}-{}-{i}", self.client_id_prefix, role.short())
    }

    /// The topic publisher `i` publishes to: `PREFIX/USERNAME/data`.
    pub fn data_topic(&self, i: usize) -> String {
        format!(
            "{}/{}/data",
            self.topic_prefix,
            self.username(Role::Publisher, i)
        )
    }

    /// The filter every fan-out subscriber uses: `PREFIX/+/data`.
    pub fn data_filter(&self) -> String {
        format!("{}/+/data", self.topic_prefix)
    }

    /// The will topic of will client `i`: `PREFIX/USERNAME/will`.
    pub fn will_topic(&self, i: usize) -> String {
        format!(
            "{}/{}/will",
            self.topic_prefix,
            self.username(Role::Will, i)
        )
    }

    /// The filter the will watcher uses: `PREFIX/+/will`.
    pub fn will_filter(&self) -> String {
        format!("{}/+/will", self.topic_prefix)
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scenario: Scenario,
    pub addr: SocketAddr,
    pub qos: QoS,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload: usize,
    /// Messages per publisher.
    pub messages: u64,
    /// The run stops publishing (or connecting) at this deadline even if the count
    /// was not reached.
    pub deadline: Duration,
    /// How long subscribers keep receiving after the publishers stopped.
    pub drain: Duration,
    /// Total publish rate over all publishers; `None` for full speed.
    pub rate: Option<f64>,
    /// QoS 1 messages a publisher may have unacknowledged.
    pub inflight: usize,
    /// Will clients (`will-*`) or connections (`connect`).
    pub count: usize,
    pub keep_alive: u16,
    /// Connection handshakes in progress at once.
    pub concurrency: usize,
    /// `connect`: how long to hold the connections before measuring memory.
    pub hold: Duration,
    pub broker_pid: Option<u32>,
    pub names: Names,
    /// Publishers and subscribers connect with clean session 0 (fanout, pair).
    pub persistent: bool,
    /// Print a progress line on stderr.
    pub progress: bool,
}

impl BenchConfig {
    pub fn spec(&self, role: Role, i: usize) -> ConnectSpec {
        ConnectSpec {
            client_id: self.names.client_id(role, i),
            username: Some(self.names.username(role, i)),
            password: self.names.password.clone(),
            keep_alive_secs: 60,
            will: None,
            persistent: self.persistent,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Proc(#[from] procstat::ProcError),
}

/// Runs one scenario to completion.
pub async fn run(cfg: &BenchConfig) -> Result<Report, BenchError> {
    // Many connections need many file descriptors.
    crate::broker::limits::raise_open_file_limit();
    let broker = match cfg.broker_pid {
        Some(pid) => Some(procstat::Proc::open(pid)?),
        None => None,
    };
    let mut report = match cfg.scenario {
        Scenario::Fanout | Scenario::Pair => throughput::run(cfg, broker.as_ref()).await?,
        Scenario::WillKill | Scenario::WillSilent | Scenario::WillStorm => {
            will::run(cfg, broker.as_ref()).await?
        }
        Scenario::Connect => connect::run(cfg, broker.as_ref()).await?,
    };
    report.scenario = cfg.scenario.name().to_string();
    report.target = cfg.addr.to_string();
    Ok(report)
}

/// Samples the broker before a measured phase; `finish` turns it into usage.
pub(crate) struct UsageMeter<'a> {
    proc: Option<&'a procstat::Proc>,
    before: Option<procstat::ProcSample>,
    started: std::time::Instant,
}

impl<'a> UsageMeter<'a> {
    pub fn start(proc: Option<&'a procstat::Proc>) -> Self {
        UsageMeter {
            proc,
            before: proc.and_then(|p| p.sample().ok()),
            started: std::time::Instant::now(),
        }
    }
    pub fn finish(&self) -> Option<BrokerUsage> {
        let p = self.proc?;
        let before = self.before?;
        let after = p.sample().ok()?;
        Some(BrokerUsage {
            pid: p.pid,
            cpu_percent: (procstat::cpu_percent(
                &before,
                &after,
                self.started.elapsed().as_secs_f64(),
            ) * 10.0)
                .round()
                / 10.0,
            cpu_seconds: (procstat::cpu_seconds(&before, &after) * 1000.0).round() / 1000.0,
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            peak_rss_kib: after.peak_rss_kib,
        })
    }
}

/// Counts distinct error messages, for the report.
#[derive(Debug, Default)]
pub(crate) struct ErrorTally(BTreeMap<String, u64>);

impl ErrorTally {
    pub fn add(&mut self, e: impl ToString) {
        *self.0.entry(e.to_string()).or_default() += 1;
    }
    pub fn merge(&mut self, other: ErrorTally) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
    pub fn into_lines(self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .0
            .into_iter()
            .map(|(e, n)| if n == 1 { e } else { format!("{e} (x{n})") })
            .collect();
        if lines.len() > 8 {
            let more = lines.len() - 8;
            lines.truncate(8);
            lines.push(format!("... and {more} other errors"));
        }
        lines
    }
}

/// A per-run tag carried in every stamp, so that a message or will left over from
/// an earlier run (a broker may deliver it late) is not counted in this one.
pub(crate) fn run_tag() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1);
    (nanos ^ (nanos >> 32) ^ std::process::id() as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_templates() {
        let n = Names::default();
        assert_eq!(n.username(Role::Publisher, 3), "bench-pub-3");
        assert_eq!(n.username(Role::Will, 3), "bench-will");
        assert_eq!(n.client_id(Role::Will, 3), "bench-will-3");
        assert_eq!(n.data_topic(2), "bench/bench-pub-2/data");
        assert_eq!(n.will_topic(9), "bench/bench-will/will");
        assert_eq!(n.data_filter(), "bench/+/data");
    }

    #[test]
    fn client_ids_differ_across_roles_with_the_same_username() {
        let n = Names {
            publisher_user: "same".into(),
            subscriber_user: "same".into(),
            ..Names::default()
        };
        assert_ne!(
            n.client_id(Role::Publisher, 0),
            n.client_id(Role::Subscriber, 0)
        );
    }
}
