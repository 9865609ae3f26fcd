//! The file sink of lifecycle events: one JSON event per line, appended.

use super::record::{cloud_event, Msg, Shape};
use crate::broker::stats::Counter;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::warn;

/// Appends events to a file as JSON lines.
pub(super) struct FileWriter {
    pub(super) shape: Shape,
    pub(super) file: tokio::io::BufWriter<tokio::fs::File>,
    pub(super) path: PathBuf,
    pub(super) failed: Arc<Counter>,
}

impl FileWriter {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
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
