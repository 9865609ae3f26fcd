//! What a bench run measured, printed as a table or as JSON (`--json`). Fields that
//! a scenario does not measure are left out of both.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of nanoseconds; `None` when it is empty.
    pub fn from_nanos(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |v: u64| (v as f64 / 1e6 * 1000.0).round() / 1000.0;
        Some(Latency {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

/// A histogram for latencies from 1 ns to 10 minutes, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3)
        .expect("constant bounds that hdrhistogram accepts")
}

/// The broker's use of the machine during the measured phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerUsage {
    pub pid: u32,
    /// CPU time over wall time, in percent of one core (200 = both cores of two).
    pub cpu_percent: f64,
    /// CPU time (user + system) over the measured phase, in seconds: delivered
    /// messages per CPU-second compare what brokers spend per message.
    pub cpu_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Report {
    pub scenario: String,
    /// The broker address the run talked to.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publishers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// The requested total publish rate; absent at full speed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_target: Option<f64>,
    /// Wall time of the measured phase.
    pub duration_secs: f64,
    /// Why publishing stopped: `messages` (the count was reached) or `deadline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    /// Deliveries the broker owed the subscribers for what was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Messages received a second time (counted once in `delivered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Will scenarios: the limit a will must arrive within (will-silent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_limit_ms: Option<f64>,
    /// Will scenarios: wills that arrived after `will_limit_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wills_late: Option<u64>,
    /// will-storm: from the first socket closed to the last will received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_last_will_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_attempted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_established: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_per_sec: Option<f64>,
    /// connect: the broker's resident memory growth divided by the connections held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss_per_connection_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerUsage>,
    /// Distinct errors seen during the run (at most a few, with counts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(r: f64) -> String {
    format!("{}/s", count(r.round() as u64))
}

impl Report {
    /// The human table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.clone()),
            ("broker", self.target.clone()),
        ];
        let mut opt = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                rows.push((k, v));
            }
        };
        opt("qos", self.qos.map(|q| q.to_string()));
        opt("publishers", self.publishers.map(|n| n.to_string()));
        opt("subscribers", self.subscribers.map(|n| n.to_string()));
        opt("payload", self.payload_bytes.map(|n| format!("{n} B")));
        opt("rate target", self.rate_target.map(rate));
        opt("duration", Some(format!("{:.2} s", self.duration_secs)));
        opt("stopped by", self.stopped_by.clone());
        opt("sent", self.sent.map(count));
        opt("expected", self.expected.map(count));
        opt("delivered", self.delivered.map(count));
        opt(
            "lost",
            self.lost.map(|l| match self.expected {
                Some(e) if e > 0 => format!("{} ({:.3}%)", count(l), l as f64 * 100.0 / e as f64),
                _ => count(l),
            }),
        );
        opt("duplicates", self.duplicates.map(count));
        opt("sent rate", self.sent_per_sec.map(rate));
        opt("delivered rate", self.delivered_per_sec.map(rate));
        if let Some(l) = &self.latency {
            opt("latency samples", Some(count(l.samples)));
            opt("latency p50", Some(format!("{:.3} ms", l.p50_ms)));
            opt("latency p99", Some(format!("{:.3} ms", l.p99_ms)));
            opt("latency p99.9", Some(format!("{:.3} ms", l.p999_ms)));
            opt("latency max", Some(format!("{:.3} ms", l.max_ms)));
        }
        opt(
            "will limit",
            self.will_limit_ms.map(|v| format!("{v:.0} ms")),
        );
        opt("wills late", self.wills_late.map(count));
        opt(
            "time to last will",
            self.time_to_last_will_ms.map(|v| format!("{v:.1} ms")),
        );
        opt("connections tried", self.connections_attempted.map(count));
        opt("connections held", self.connections_established.map(count));
        opt("connect rate", self.connections_per_sec.map(rate));
        opt(
            "broker RSS / conn",
            self.broker_rss_per_connection_bytes
                .map(|b| format!("{:.0} B", b)),
        );
        if let Some(b) = &self.broker {
            opt("broker pid", Some(b.pid.to_string()));
            opt(
                "broker CPU",
                Some(format!(
                    "{:.0}% of one core ({:.2} CPU-s)",
                    b.cpu_percent, b.cpu_seconds
                )),
            );
            opt(
                "broker RSS",
                Some(format!(
                    "{} KiB -> {} KiB (peak {} KiB)",
                    b.rss_before_kib, b.rss_after_kib, b.peak_rss_kib
                )),
            );
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        for e in &self.errors {
            let _ = writeln!(out, "{:<width$}  {e}", "error");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
    }

    #[test]
    fn latency_percentiles_in_ms() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_nanos(&h).unwrap();
        assert_eq!(l.samples, 1000);
        assert!((l.p50_ms - 0.5).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 0.99).abs() < 0.01, "{l:?}");
        assert!(Latency::from_nanos(&latency_histogram()).is_none());
    }

    #[test]
    fn table_leaves_out_what_was_not_measured() {
        let r = Report {
            scenario: "pair".into(),
            target: "127.0.0.1:1883".into(),
            sent: Some(10),
            ..Default::default()
        };
        let t = r.table();
        assert!(t.contains("sent"));
        assert!(!t.contains("latency"));
    }
}
