//! A one-line progress report on stderr for long runs, redrawn in place. Only
//! shown when stderr is a terminal, so logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Draws `line()` every half second until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(
        enabled: bool,
        label: &'static str,
        line: impl Fn() -> String + Send + 'static,
    ) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { stop, handle: None };
        }
        let s = stop.clone();
        let started = Instant::now();
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[K{label} {:>5.1}s  {}",
                    started.elapsed().as_secs_f64(),
                    line()
                );
                let _ = err.flush();
            }
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
