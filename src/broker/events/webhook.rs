//! The webhook sink of lifecycle events: CloudEvents HTTP batched mode
//! (`POST`, `Content-Type: application/cloudevents-batch+json`, a JSON array),
//! retried with exponential backoff. It runs in a task of its own behind a
//! bounded queue (`events`): while it retries, events that do not fit in
//! the queue are dropped and counted, and the broker never waits for it.

use super::error::EventsError;
use super::record::{Change, Msg};
use crate::broker::stats::Counter;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::warn;

/// Events per POST at most.
pub const MAX_BATCH: usize = 100;
/// Tries per batch before it is dropped (and counted as failed).
pub const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// One attempt: connect, send, read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body read (and ignored).
const MAX_ANSWER: usize = 64 * 1024;
pub const CONTENT_TYPE: &str = "application/cloudevents-batch+json; charset=utf-8";

/// Where batches go.
pub struct Webhook {
    uri: Uri,
    host: String,
    port: u16,
    failed: Arc<Counter>,
}

impl Webhook {
    /// A webhook for an `http://` URL (https is not supported yet).
    pub fn new(uri: Uri, failed: Arc<Counter>) -> Result<Self, EventsError> {
        let bad = |why: &str| EventsError::Webhook(uri.to_string(), why.to_string());
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// URLs are supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad("the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        Ok(Webhook {
            uri,
            host,
            port,
            failed,
        })
    }

    /// Sends what `rx` brings, in batches, until the broker drops the queue.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Msg>,
        to_json: impl Fn(&Change) -> Value + Send + 'static,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut waiting = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Change(c) => batch.push(to_json(&c)),
                    Msg::Flush(done) => waiting.push(done),
                }
                next = if batch.len() < MAX_BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() {
                self.deliver(&batch).await;
            }
            for done in waiting {
                let _ = done.send(());
            }
        }
    }

    /// POSTs one batch, retrying with backoff; counts it as failed after the last try.
    async fn deliver(&self, batch: &[Value]) {
        let body = Bytes::from(serde_json::to_vec(batch).unwrap_or_default());
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, self.post(body.clone())).await;
            let why = match outcome {
                Ok(Ok(status)) if status.is_success() => return,
                Ok(Ok(status)) => format!("answered {status}"),
                Ok(Err(e)) => e,
                Err(_) => "timed out".to_string(),
            };
            warn!(url = %self.uri, attempt, events = batch.len(), reason = %why, "lifecycle events not delivered");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        for _ in batch {
            self.failed.inc();
        }
    }

    async fn post(&self, body: Bytes) -> Result<StatusCode, String> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        // Drives the connection; ends when the exchange is over and `sender` is dropped.
        tokio::spawn(conn);
        let path = self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let authority = self.uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        // Read (a bounded part of) the answer so the exchange completes.
        let _ = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
        Ok(status)
    }
}
