//! The operations endpoint of `topicgate serve --metrics ADDR`: Prometheus
//! metrics at `/metrics` (OpenMetrics text, encoded by prometheus-client),
//! liveness at `/healthz`, readiness at `/readyz`.
//!
//! The broker counts in `stats.rs` atomics; this module reads them only when
//! scraped (a prometheus-client `Collector`), so the packet path never touches
//! a registry or a label map.

use super::state::Shared;
use super::stats::{Action, DenialCode, DropReason};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::debug;

/// Scrapes served at once; more connections wait in the accept queue.
const CONCURRENT_REQUESTS: usize = 16;
/// A scrape connection (slow or idle) is closed after this.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the broker is ready for clients: set once every listener is open,
/// cleared when it starts shutting down.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads the broker's counters at scrape time.
struct BrokerCollector(Arc<Shared>);

impl fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl prometheus_client::collector::Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let shared = &self.0;
        let stats = &shared.stats;

        let mut m = e.encode_descriptor(
            "topicgate_connections",
            "Open client connections, by listener",
            None,
            MetricType::Gauge,
        )?;
        for g in stats.listeners() {
            let labels = [("listener", g.name.as_str())];
            ConstGauge::new(g.get()).encode(m.encode_family(&labels)?)?;
        }

        for (name, help, by_qos) in [
            (
                "topicgate_messages_received",
                "PUBLISH packets received from clients, by QoS",
                &*stats.received,
            ),
            (
                "topicgate_messages_delivered",
                "PUBLISH packets sent to clients, by QoS",
                &*stats.delivered,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (qos, c) in ["0", "1", "2"].iter().zip(by_qos) {
                ConstCounter::new(c.get()).encode(m.encode_family(&[("qos", *qos)])?)?;
            }
        }

        let mut m = e.encode_descriptor(
            "topicgate_messages_dropped",
            "Message copies dropped instead of delivered, by reason",
            None,
            MetricType::Counter,
        )?;
        for r in DropReason::ALL {
            let v = stats.dropped[r as usize].get();
            ConstCounter::new(v).encode(m.encode_family(&[("reason", r.label())])?)?;
        }
        let v = stats.publish_denied_qos0_dropped.get();
        ConstCounter::new(v).encode(m.encode_family(&[("reason", "not_authorized")])?)?;

        let mut m = e.encode_descriptor(
            "topicgate_authorization_denials",
            "Requests the broker refused, by action and MQTT 5 reason code",
            None,
            MetricType::Counter,
        )?;
        for a in Action::ALL {
            for c in DenialCode::ALL {
                let labels = [("action", a.label()), ("reason_code", c.label())];
                ConstCounter::new(stats.denials(a, c)).encode(m.encode_family(&labels)?)?;
            }
        }

        counter(
            &mut e,
            "topicgate_wills_published",
            "Wills published after an abnormal disconnect",
            stats.wills_published.get(),
        )?;
        counter(
            &mut e,
            "topicgate_wills_discarded",
            "Wills dropped when due because the policy in force no longer allows them",
            stats.wills_dropped.get(),
        )?;
        counter(
            &mut e,
            "topicgate_connections_accepted",
            "Network connections accepted",
            stats.connections_accepted.get(),
        )?;
        counter(
            &mut e,
            "topicgate_connections_refused",
            "Connections refused (connection limit or CONNACK refusal)",
            stats.connections_refused.get(),
        )?;
        counter(
            &mut e,
            "topicgate_protocol_errors",
            "Connections closed for a protocol error",
            stats.protocol_errors.get(),
        )?;
        counter(
            &mut e,
            "topicgate_events_dropped",
            "Lifecycle events dropped because the sink's queue was full",
            shared.events.dropped.get(),
        )?;
        counter(
            &mut e,
            "topicgate_events_failed",
            "Lifecycle events the sink could not write",
            shared.events.failed.get(),
        )?;
        gauge(
            &mut e,
            "topicgate_events_queued",
            "Lifecycle events waiting in the fullest sink's queue",
            i64::try_from(shared.events.queued()).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "topicgate_sessions",
            "Sessions held (connected or not)",
            i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "topicgate_retained_messages",
            "Retained messages held",
            i64::try_from(shared.retained.len()).unwrap_or(i64::MAX),
        )?;

        let mut m = e.encode_descriptor(
            "topicgate_policy_reloads",
            "Policy reloads (SIGHUP, --watch), by result: ok = put in force, error = refused",
            None,
            MetricType::Counter,
        )?;
        for (result, c) in [
            ("ok", &stats.policy_reloads_ok),
            ("error", &stats.policy_reloads_failed),
        ] {
            ConstCounter::new(c.get()).encode(m.encode_family(&[("result", result)])?)?;
        }
        counter(
            &mut e,
            "topicgate_subscriptions_revoked",
            "Subscriptions removed because a reloaded policy no longer grants them",
            stats.subscriptions_revoked.get(),
        )?;
        // Summed over the sessions at scrape time: the packet path keeps no
        // shared counter for them (each connection stores its own depth).
        let (queued, inflight) = shared
            .sessions
            .all()
            .iter()
            .map(|s| s.depth())
            .fold((0usize, 0usize), |(q, i), d| (q + d.queued, i + d.inflight));
        gauge(
            &mut e,
            "topicgate_queued_messages",
            "Message copies waiting for their subscriber (mailboxes, offline queues, behind the inflight window)",
            i64::try_from(queued).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "topicgate_inflight_messages",
            "QoS 1/2 PUBLISHes sent to clients and not yet acknowledged",
            i64::try_from(inflight).unwrap_or(i64::MAX),
        )?;

        let hash = shared.policy.current().policy_hash();
        let mut m = e.encode_descriptor(
            "topicgate_policy",
            "The policy in force, by the SHA-256 of its source",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[("policy_sha256", hash.as_str())])?;
        Ok(())
    }
}

/// The registry of one broker: every metric comes from its collector.
fn registry(shared: Arc<Shared>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(BrokerCollector(shared)));
    r
}

/// The metrics text of `shared` now (what `/metrics` answers).
pub fn render(shared: &Arc<Shared>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(shared.clone()));
    out
}

/// Binds `addr` and serves the operations endpoint until the broker shuts down.
/// Returns the bound address (port 0 picks one).
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    ready: Readiness,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let registry = Arc::new(registry(shared.clone()));
    let mut shutdown = shared.shutdown.clone();
    let slots = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
    let task = tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        debug!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let registry = registry.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = answer(&req, &registry, &ready);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(permit);
            });
        }
    });
    Ok((local, task))
}

fn answer(
    req: &Request<Incoming>,
    registry: &Registry,
    ready: &Readiness,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut out = String::new();
            if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
            }
            let mut r = Response::new(Full::new(Bytes::from(out)));
            if let Ok(v) = hyper::header::HeaderValue::from_str(OPENMETRICS) {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        }
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/readyz" if ready.get() => plain(StatusCode::OK, "ready\n"),
        "/readyz" => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}
