//! Client session lifecycle events, shaped as Event Grid emits them: CloudEvents
//! 1.0 JSON of type `Microsoft.EventGrid.MQTTClientSessionConnected` and
//! `...Disconnected`, with the same `subject` and `data` fields.
//!
//! Sinks: a file of JSON lines, and a webhook (CloudEvents HTTP batched mode).
//! Connections only enqueue a small record (`try_send` on a bounded channel
//! per sink); a task per sink builds the JSON and writes or sends it, so a slow
//! disk or a dead endpoint never slows the broker: what does not fit in the
//! queue is counted and dropped.

use super::connection::End;
use super::stats::Counter;
use mqtt_protocol_core::mqtt::result_code::DisconnectReasonCode;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

pub const CONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionConnected";
pub const DISCONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionDisconnected";
/// The namespace name when the policy declares none.
pub const DEFAULT_NAMESPACE: &str = "topicgate";
/// Events waiting for the sink; more are dropped (and counted).
pub const QUEUE: usize = 4096;

/// Why a session disconnected: Event Grid's `disconnectionReason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DisconnectionReason {
    ClientAuthenticationError,
    ClientAuthorizationError,
    ClientError,
    ClientInitiatedDisconnect,
    ConnectionLost,
    QuotaExceeded,
    ServerError,
    ServerInitiatedDisconnect,
    SessionOverflow,
    SessionTakenOver,
}

impl DisconnectionReason {
    /// The reason behind a DISCONNECT the broker sends (or would send, to a 3.1.1 client).
    pub fn of_server_code(code: DisconnectReasonCode) -> Self {
        use DisconnectReasonCode as C;
        match code {
            C::SessionTakenOver => Self::SessionTakenOver,
            C::NotAuthorized => Self::ClientAuthorizationError,
            C::ServerShuttingDown
            | C::AdministrativeAction
            | C::ServerBusy
            | C::UseAnotherServer
            | C::ServerMoved => Self::ServerInitiatedDisconnect,
            C::KeepAliveTimeout => Self::ConnectionLost,
            C::QuotaExceeded | C::MessageRateTooHigh | C::ConnectionRateExceeded => {
                Self::QuotaExceeded
            }
            C::UnspecifiedError | C::ImplementationSpecificError => Self::ServerError,
            _ => Self::ClientError,
        }
    }

    /// The reason of a connection that ended as `end`, unless one was noted on the way.
    pub fn at_end(end: Option<End>, noted: Option<Self>) -> Self {
        noted.unwrap_or(match end {
            Some(End::Normal) => Self::ClientInitiatedDisconnect,
            Some(End::Shutdown) => Self::ServerInitiatedDisconnect,
            Some(End::Abnormal) | None => Self::ConnectionLost,
        })
    }
}

/// One lifecycle change, as a connection reports it (cheap to build).
#[derive(Debug, Clone)]
pub(super) struct Change {
    disconnected: Option<DisconnectionReason>,
    auth_name: String,
    client_id: String,
    sequence: u64,
    time: OffsetDateTime,
}

type BoxedTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a sink puts in every event besides the change.
#[derive(Clone)]
struct Shape {
    namespace: String,
    source: String,
}

pub(super) enum Msg {
    Change(Change),
    /// Write everything before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// Where lifecycle events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Appended to a file, one JSON event per line.
    File(PathBuf),
    /// POSTed in batches to an `http://` URL (CloudEvents HTTP batched mode).
    Webhook(hyper::Uri),
}

/// Where connections send lifecycle changes. Disabled until [`start`](Self::start).
#[derive(Default)]
pub struct EventSink {
    /// One queue per sink, so that a slow sink holds up no other.
    tx: OnceLock<Vec<mpsc::Sender<Msg>>>,
    /// Increasing for every event of this broker, so also per session; seeded
    /// with the start time in microseconds so that it keeps increasing across
    /// restarts (Event Grid: the latest event has the highest number).
    sequence: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: Counter,
    /// Events the sink could not write.
    pub failed: Arc<Counter>,
}

impl EventSink {
    /// Starts sending events of namespace `namespace` to `sinks`. Call within
    /// a tokio runtime; files are opened now.
    pub async fn start(&self, namespace: &str, sinks: &[Sink]) -> Result<(), EventsError> {
        let shape = Shape {
            namespace: namespace.to_string(),
            source: format!("/namespaces/{namespace}"),
        };
        let mut tasks = Vec::new();
        let mut txs = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel(QUEUE);
            txs.push(tx);
            match sink {
                Sink::File(path) => {
                    let file = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await
                        .map_err(|e| EventsError::Open(path.clone(), e))?;
                    let writer = FileWriter {
                        shape: shape.clone(),
                        file: tokio::io::BufWriter::new(file),
                        path: path.clone(),
                        failed: self.failed.clone(),
                    };
                    tasks.push(Box::pin(writer.run(rx)) as BoxedTask);
                }
                Sink::Webhook(uri) => {
                    let hook = super::webhook::Webhook::new(uri.clone(), self.failed.clone())?;
                    let shape = shape.clone();
                    let task = hook.run(rx, move |c: &Change| {
                        serde_json::to_value(cloud_event(&shape.namespace, &shape.source, c))
                            .unwrap_or_default()
                    });
                    tasks.push(Box::pin(task) as BoxedTask);
                }
            }
        }
        if self.tx.set(txs).is_err() {
            return Err(EventsError::AlreadyStarted);
        }
        let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        self.sequence
            .store(u64::try_from(micros).unwrap_or(0), Ordering::Relaxed);
        for task in tasks {
            tokio::spawn(task);
        }
        Ok(())
    }

    /// Events waiting in the fullest sink's queue.
    pub fn queued(&self) -> usize {
        self.tx
            .get()
            .map(|txs| {
                txs.iter()
                    .map(|tx| tx.max_capacity() - tx.capacity())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Whether a sink was started.
    pub fn enabled(&self) -> bool {
        self.tx.get().is_some()
    }

    /// A session connected (after a successful CONNACK).
    pub fn connected(&self, auth_name: &str, client_id: &str) {
        self.emit(None, auth_name, client_id);
    }

    /// A connected session's network connection ended.
    pub fn disconnected(&self, auth_name: &str, client_id: &str, why: DisconnectionReason) {
        self.emit(Some(why), auth_name, client_id);
    }

    fn emit(&self, disconnected: Option<DisconnectionReason>, auth_name: &str, client_id: &str) {
        let Some(txs) = self.tx.get() else { return };
        let change = Change {
            disconnected,
            auth_name: auth_name.to_string(),
            client_id: client_id.to_string(),
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            time: OffsetDateTime::now_utc(),
        };
        for tx in txs {
            if tx.try_send(Msg::Change(change.clone())).is_err() {
                self.dropped.inc();
            }
        }
    }

    /// Waits (at most `limit`) until every event sent so far is written or sent.
    pub async fn flush(&self, limit: Duration) {
        let Some(txs) = self.tx.get() else { return };
        let _ = tokio::time::timeout(limit, async {
            for tx in txs {
                let (done, wait) = oneshot::channel();
                if tx.send(Msg::Flush(done)).await.is_ok() {
                    let _ = wait.await;
                }
            }
        })
        .await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot open the events file `{0}`: {1}")]
    Open(PathBuf, #[source] std::io::Error),
    #[error("the events sink is already started")]
    AlreadyStarted,
    #[error("--events-webhook `{0}`: {1}")]
    Webhook(String, String),
}

/// A CloudEvents 1.0 event in structured JSON mode.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    subject: String,
    datacontenttype: &'static str,
    data: EventData<'a>,
}

/// The `data` of Event Grid's MQTT client session events.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    namespace_name: &'a str,
    client_authentication_name: &'a str,
    client_session_name: &'a str,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnection_reason: Option<DisconnectionReason>,
}

fn cloud_event<'a>(namespace: &'a str, source: &'a str, c: &'a Change) -> CloudEvent<'a> {
    CloudEvent {
        specversion: "1.0",
        id: c.sequence.to_string(),
        time: c.time.format(&Rfc3339).unwrap_or_default(),
        kind: if c.disconnected.is_some() {
            DISCONNECTED
        } else {
            CONNECTED
        },
        source,
        subject: format!("clients/{}/sessions/{}", c.auth_name, c.client_id),
        datacontenttype: "application/json",
        data: EventData {
            namespace_name: namespace,
            client_authentication_name: &c.auth_name,
            client_session_name: &c.client_id,
            sequence_number: c.sequence,
            disconnection_reason: c.disconnected,
        },
    }
}

/// Appends events to a file as JSON lines.
struct FileWriter {
    shape: Shape,
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: PathBuf,
    failed: Arc<Counter>,
}

impl FileWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut line = Vec::new();
        while let Some(msg) = rx.recv().await {
            let mut waiting = Vec::new();
            let mut next = Some(msg);
            // Write what is queued, then flush once.
            while let Some(msg) = next {
                match msg {
                    Msg::Change(c) => {
                        line.clear();
                        let event = cloud_event(&self.shape.namespace, &self.shape.source, &c);
                        if serde_json::to_writer(&mut line, &event).is_err() {
                            self.failed.inc();
                        } else {
                            line.push(b'\n');
                            if let Err(e) = self.file.write_all(&line).await {
                                self.fail(&e);
                            }
                        }
                    }
                    Msg::Flush(done) => waiting.push(done),
                }
                next = rx.try_recv().ok();
            }
            if let Err(e) = self.file.flush().await {
                self.fail(&e);
            }
            for done in waiting {
                let _ = done.send(());
            }
        }
    }

    fn fail(&self, e: &std::io::Error) {
        self.failed.inc();
        warn!(path = %self.path.display(), error = %e, "cannot write lifecycle event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_codes_map_to_event_grid_reasons() {
        use DisconnectReasonCode as C;
        let r = DisconnectionReason::of_server_code;
        assert_eq!(
            r(C::SessionTakenOver),
            DisconnectionReason::SessionTakenOver
        );
        assert_eq!(
            r(C::NotAuthorized),
            DisconnectionReason::ClientAuthorizationError
        );
        assert_eq!(
            r(C::ServerShuttingDown),
            DisconnectionReason::ServerInitiatedDisconnect
        );
        assert_eq!(r(C::KeepAliveTimeout), DisconnectionReason::ConnectionLost);
        assert_eq!(r(C::ProtocolError), DisconnectionReason::ClientError);
        assert_eq!(r(C::QuotaExceeded), DisconnectionReason::QuotaExceeded);
        let end = DisconnectionReason::at_end;
        assert_eq!(
            end(Some(End::Normal), None),
            DisconnectionReason::ClientInitiatedDisconnect
        );
        assert_eq!(
            end(Some(End::Abnormal), None),
            DisconnectionReason::ConnectionLost
        );
        assert_eq!(
            end(Some(End::Abnormal), Some(DisconnectionReason::ClientError)),
            DisconnectionReason::ClientError
        );
    }

    #[tokio::test]
    async fn a_dead_webhook_never_blocks_and_overflow_is_counted() {
        // Accepts connections into its backlog and never answers.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url: hyper::Uri = format!("http://{}/", dead.local_addr().unwrap())
            .parse()
            .unwrap();
        let sink = EventSink::default();
        sink.start("ns", &[Sink::Webhook(url)]).await.unwrap();
        let sent = QUEUE + super::super::webhook::MAX_BATCH + 500;
        // `connected` is synchronous: it cannot wait for the endpoint.
        for i in 0..sent {
            sink.connected("client1", &format!("s{i}"));
        }
        let dropped = sink.dropped.get() as usize;
        assert!(sink.queued() >= QUEUE - super::super::webhook::MAX_BATCH);
        assert!(dropped >= 500, "dropped {dropped}");
        assert!(dropped <= sent - QUEUE, "dropped {dropped}");
    }

    #[test]
    fn events_have_event_grid_fields() {
        let c = Change {
            disconnected: Some(DisconnectionReason::ConnectionLost),
            auth_name: "client1".into(),
            client_id: "session1".into(),
            sequence: 7,
            time: OffsetDateTime::UNIX_EPOCH,
        };
        let v = serde_json::to_value(cloud_event("myns", "/namespaces/myns", &c)).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], DISCONNECTED);
        assert_eq!(v["subject"], "clients/client1/sessions/session1");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["namespaceName"], "myns");
        assert_eq!(v["data"]["clientAuthenticationName"], "client1");
        assert_eq!(v["data"]["clientSessionName"], "session1");
        assert_eq!(v["data"]["sequenceNumber"], 7);
        assert_eq!(v["data"]["disconnectionReason"], "ConnectionLost");
    }
}
