//! `topicgate bench SCENARIO [--host H] [--port P] ...`: load-test an MQTT broker.

use super::exit;
use crate::bench::{self, BenchConfig, Names, Scenario};
use clap::Args;
use rumqttc::mqttbytes::QoS;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

const AFTER_HELP: &str = "\
Scenarios:
  fanout       --publishers N publish to their own topic BENCH/USER/data; --subscribers M all
               subscribe to BENCH/+/data, so every message is delivered M times.
  pair         --publishers N pairs: subscriber i subscribes only to publisher i's topic.
  will-kill    connect a client with a will, close its socket without DISCONNECT, and time the
               will's arrival; --count clients, one at a time.
  will-silent  connect --count clients with a will and --keep-alive SECS, then send nothing;
               the broker must notice within 1.5x keep-alive. Reports wills later than that +100 ms.
  will-storm   connect --count clients with wills, close them all at once: all wills delivered?
               time to the last one?
  connect      open --count idle connections (--concurrency handshakes at once): connection
               rate, and with --broker-pid the broker's memory per connection.

Every run is bounded: publishers stop after --messages each or at --duration, whichever comes
first; subscribers then wait at most --drain for what is still on its way. Messages carry a
stamp (run, sender, sequence, send time) in the first 24 bytes of the payload; latency is measured
from just before the write to the moment the subscriber reads it (same clock, same machine).

Identities: each connection sends a username (templates below; `{i}` becomes its number in
its role) and a client id PREFIX-ROLE-i. Make them match the clients of the policy the broker
enforces, e.g. policy clients bench-pub-0.. with a publisher template
bench/$<client.authenticationName>/data.

Only loopback brokers are accepted unless --allow-remote is given: a load test is traffic.

Examples:
  topicgate bench fanout --port 1883 --publishers 4 --subscribers 4
  topicgate bench fanout --qos 1 --rate 10000 --duration 10 --broker-pid $(pidof mosquitto)
  topicgate bench will-silent --keep-alive 2 --count 5
  topicgate bench connect --count 20000 --broker-pid 1234 --json";

/// Load-test an MQTT broker (ours or any other): throughput, latency, wills, connections.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// What to measure (see the list below).
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The broker's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The broker's MQTT port (plain TCP, MQTT 3.1.1).
    #[arg(long, short, default_value_t = 1883)]
    pub port: u16,
    /// Allow a broker that is not on this machine's loopback interface.
    #[arg(long)]
    pub allow_remote: bool,
    /// QoS of messages, subscriptions and wills [default: 0 for fanout/pair, 1 for the will scenarios].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: Option<u8>,
    /// Publishers (fanout, pair: also the number of pairs).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Subscribers (fanout).
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    /// Payload size in bytes (at least 24: the stamp).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Messages per publisher.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Deadline in seconds: publishing (or connecting) stops then even if --messages was not reached.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds subscribers keep receiving after the publishers stop.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub drain: f64,
    /// Total publish rate in messages per second over all publishers [default: full speed].
    #[arg(long, value_name = "MSG_PER_SEC")]
    pub rate: Option<f64>,
    /// QoS 1 messages each publisher may have unacknowledged.
    #[arg(long, default_value_t = 1000)]
    pub inflight: usize,
    /// Will clients or connections [default: will-kill 20, will-silent 5, will-storm 1000, connect 1000].
    #[arg(long)]
    pub count: Option<usize>,
    /// Keep-alive in seconds of the will-silent clients.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub keep_alive: u16,
    /// Connection handshakes in progress at once (connect, will-storm).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to hold the idle connections before measuring the broker's memory (connect).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub hold: f64,
    /// The broker's process id: report its CPU use and resident memory (from /proc).
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Username of publisher i.
    #[arg(long, default_value = "bench-pub-{i}", help_heading = "Identities")]
    pub publisher_user: String,
    /// Username of subscriber i (and of the will watcher, i = 0).
    #[arg(long, default_value = "bench-sub-{i}", help_heading = "Identities")]
    pub subscriber_user: String,
    /// Username of will client i.
    #[arg(long, default_value = "bench-will", help_heading = "Identities")]
    pub will_user: String,
    /// Username of idle connection i.
    #[arg(long, default_value = "bench-idle", help_heading = "Identities")]
    pub idle_user: String,
    /// Password sent by every connection [default: none]. Also read from TOPICGATE_BENCH_PASSWORD.
    #[arg(
        long,
        env = "TOPICGATE_BENCH_PASSWORD",
        hide_env_values = true,
        help_heading = "Identities"
    )]
    pub password: Option<String>,
    /// Client ids are PREFIX-ROLE-i (ROLE: pub, sub, watch, will, idle).
    #[arg(long, default_value = "bench", help_heading = "Identities")]
    pub client_id_prefix: String,
    /// First topic level of every bench topic.
    #[arg(long, default_value = "bench", help_heading = "Identities")]
    pub topic_prefix: String,
    /// Publishers and subscribers connect with clean session 0, so that a broker
    /// with durable state (`serve --data`) stores what it queues for them.
    #[arg(long)]
    pub persistent: bool,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    fn config(&self) -> Result<BenchConfig, String> {
        let addr = resolve(&self.host, self.port, self.allow_remote).map_err(|e| e.to_string())?;
        let secs = |name: &str, v: f64| {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "--{name} must be a number of seconds between 0 and 86400, not {v}"
                ))
            }
        };
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--rate must be a positive number of messages per second, not {r}"
                ));
            }
        }
        if self.publishers == 0 || self.publishers > 10_000 {
            return Err("--publishers must be between 1 and 10000".into());
        }
        if self.subscribers > 10_000 {
            return Err("--subscribers must be at most 10000".into());
        }
        if self.payload > 1 << 20 {
            return Err("--payload must be at most 1048576 bytes".into());
        }
        let qos = match self.qos {
            Some(1) => QoS::AtLeastOnce,
            Some(_) => QoS::AtMostOnce,
            None => match self.scenario {
                Scenario::Fanout | Scenario::Pair | Scenario::Connect => QoS::AtMostOnce,
                _ => QoS::AtLeastOnce,
            },
        };
        let count = self.count.unwrap_or(match self.scenario {
            Scenario::WillKill => 20,
            Scenario::WillSilent => 5,
            _ => 1000,
        });
        if count == 0 || count > 1_000_000 {
            return Err("--count must be between 1 and 1000000".into());
        }
        Ok(BenchConfig {
            scenario: self.scenario,
            addr,
            qos,
            publishers: self.publishers,
            subscribers: self.subscribers,
            payload: self.payload,
            messages: self.messages,
            deadline: secs("duration", self.duration)?,
            drain: secs("drain", self.drain)?,
            rate: self.rate,
            inflight: self.inflight.clamp(1, 65_000),
            count,
            keep_alive: self.keep_alive,
            concurrency: self.concurrency,
            hold: secs("hold", self.hold)?,
            broker_pid: self.broker_pid,
            names: Names {
                publisher_user: self.publisher_user.clone(),
                subscriber_user: self.subscriber_user.clone(),
                will_user: self.will_user.clone(),
                idle_user: self.idle_user.clone(),
                password: self.password.clone(),
                client_id_prefix: self.client_id_prefix.clone(),
                topic_prefix: self.topic_prefix.clone(),
            },
            persistent: self.persistent,
            progress: true,
        })
    }
}

/// Why the broker address was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("cannot resolve broker host `{host}`: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("broker host `{host}` has no address")]
    NoAddress { host: String },
    #[error("`{host}` ({ip}) is not a loopback address; a benchmark is a lot of traffic, so pass --allow-remote if you mean it")]
    NotLoopback { host: String, ip: std::net::IpAddr },
}

/// Resolves the broker address; refuses anything but loopback unless allowed.
pub fn resolve(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr, AddrError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| AddrError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let addr = addrs.first().copied().ok_or_else(|| AddrError::NoAddress {
        host: host.to_string(),
    })?;
    if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(AddrError::NotLoopback {
            host: host.to_string(),
            ip: addr.ip(),
        });
    }
    Ok(addr)
}

pub fn run(args: BenchArgs) -> u8 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::ERROR;
        }
    };
    match rt.block_on(bench::run(&cfg)) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return exit::ERROR;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_accepted() {
        assert!(resolve("127.0.0.1", 1883, false).is_ok());
        assert!(resolve("::1", 1883, false).is_ok());
        assert!(resolve("localhost", 1883, false).is_ok());
    }

    #[test]
    fn other_addresses_are_refused_without_the_flag() {
        let e = resolve("192.0.2.1", 1883, false).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(resolve("192.0.2.1", 1883, true).is_ok());
        assert!(resolve("0.0.0.0", 1883, false).is_err());
    }
}
