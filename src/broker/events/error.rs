//! The errors of starting the lifecycle event sinks.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot open the events file `{0}`: {1}")]
    Open(PathBuf, #[source] std::io::Error),
    #[error("the events sink is already started")]
    AlreadyStarted,
    #[error("--events-webhook `{0}`: {1}")]
    Webhook(String, String),
}
