//! The operations flags of `topicgate serve`: the metrics endpoint, the
//! lifecycle events sinks and the log format.

use crate::broker::events::{self, EventsError, Sink};
use crate::broker::metrics::{self, Readiness};
use crate::broker::Broker;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracing::info;

#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, and /healthz and /readyz.
    #[arg(long = "metrics", value_name = "ADDR", env = "TOPICGATE_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Append client session lifecycle events (Event Grid's
    /// MQTTClientSessionConnected/Disconnected, CloudEvents JSON) to FILE, one per line.
    #[arg(
        long = "events-file",
        value_name = "FILE",
        env = "TOPICGATE_EVENTS_FILE"
    )]
    pub events_file: Option<PathBuf>,
    /// POST the same events to an http:// URL, in batches (CloudEvents HTTP
    /// batched mode), retrying with backoff; events beyond the queue are dropped.
    #[arg(
        long = "events-webhook",
        value_name = "URL",
        env = "TOPICGATE_EVENTS_WEBHOOK"
    )]
    pub events_webhook: Option<hyper::Uri>,
    /// Logs on stderr as human-readable text, or as one JSON object per line
    /// [default: text].
    #[arg(long = "log-format", value_enum, env = "TOPICGATE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `topicgate=info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "topicgate=info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // One object per line; an event's fields at the top level, beside
        // `timestamp`, `level` and `target`.
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// What the operations side needs to hear from the serve loop.
pub struct Ops {
    pub ready: Readiness,
    /// Where the metrics endpoint listens.
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error("cannot serve metrics on {0}: {1}")]
    Metrics(SocketAddr, #[source] std::io::Error),
}

/// Starts the sinks and the endpoint `args` ask for, before any listener opens.
/// `namespace` is the policy's, if it declares one.
pub async fn start(
    args: &OpsArgs,
    broker: &Broker,
    namespace: Option<&str>,
) -> Result<Ops, OpsError> {
    let ready = Readiness::default();
    let mut metrics_addr = None;
    let mut sinks = Vec::new();
    if let Some(path) = &args.events_file {
        sinks.push(Sink::File(path.clone()));
    }
    if let Some(url) = &args.events_webhook {
        sinks.push(Sink::Webhook(url.clone()));
    }
    if !sinks.is_empty() {
        let namespace = namespace.unwrap_or(events::DEFAULT_NAMESPACE);
        broker.shared().events.start(namespace, &sinks).await?;
        info!(?sinks, namespace, "sending lifecycle events");
    }
    if let Some(addr) = args.metrics {
        let (local, _task) = metrics::serve(broker.shared().clone(), addr, ready.clone())
            .await
            .map_err(|e| OpsError::Metrics(addr, e))?;
        metrics_addr = Some(local);
    }
    Ok(Ops {
        ready,
        metrics: metrics_addr,
    })
}

impl Ops {
    /// Every listener is open.
    pub fn listening(&self) {
        // Ready before the line is printed: whoever read it may ask /readyz at once.
        self.ready.set(true);
        if let Some(local) = self.metrics {
            info!(metrics = %format!("http://{local}/metrics"), "serving metrics");
            // Scripts read this line to learn an ephemeral port (after the listeners').
            println!("metrics on http://{local}/metrics");
        }
    }

    /// The broker is stopping: not ready any more.
    pub fn stopping(&self) {
        self.ready.set(false);
    }

    /// The broker stopped: write the last events (bounded).
    pub async fn stopped(&self, broker: &Broker) {
        broker.shared().events.flush(Duration::from_secs(5)).await;
    }
}
