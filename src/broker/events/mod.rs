//! Client session lifecycle events, shaped as Event Grid emits them: CloudEvents
//! 1.0 JSON of type `Microsoft.EventGrid.MQTTClientSessionConnected` and
//! `...Disconnected`, with the same `subject` and `data` fields.
//!
//! Sinks: a file of JSON lines, and a webhook (CloudEvents HTTP batched mode).
//! Connections only enqueue a small record (`try_send` on a bounded channel
//! per sink); a task per sink builds the JSON and writes or sends it, so a slow
//! disk or a dead endpoint never slows the broker: what does not fit in the
//! queue is counted and dropped.

mod error;
mod file;
mod record;
mod webhook;

pub use error::EventsError;
pub use record::{DisconnectionReason, CONNECTED, DISCONNECTED};

use crate::broker::stats::Counter;
use file::FileWriter;
use record::{cloud_event, Change, Msg, Shape};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// The namespace name when the policy declares none.
pub const DEFAULT_NAMESPACE: &str = "topicgate";
/// Events waiting for the sink; more are dropped (and counted).
pub const QUEUE: usize = 4096;

type BoxedTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

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
                    let hook = webhook::Webhook::new(uri.clone(), self.failed.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_webhook_never_blocks_and_overflow_is_counted() {
        // Accepts connections into its backlog and never answers.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url: hyper::Uri = format!("http://{}/", dead.local_addr().unwrap())
            .parse()
            .unwrap();
        let sink = EventSink::default();
        sink.start("ns", &[Sink::Webhook(url)]).await.unwrap();
        let sent = QUEUE + webhook::MAX_BATCH + 500;
        // `connected` is synchronous: it cannot wait for the endpoint.
        for i in 0..sent {
            sink.connected("client1", &format!("s{i}"));
        }
        let dropped = sink.dropped.get() as usize;
        assert!(sink.queued() >= QUEUE - webhook::MAX_BATCH);
        assert!(dropped >= 500, "dropped {dropped}");
        assert!(dropped <= sent - QUEUE, "dropped {dropped}");
    }
}
