//! The one set of helpers the integration tests share. A test file declares
//! `mod support;` and imports the parts it uses:
//! - [`wait`]: the test timeout, bounded polling, and how tests wait (decision 0028);
//! - [`policy`]: real compiled policies from YAML text;
//! - [`decide`]: publish/subscribe decisions checked against the reference evaluator;
//! - [`broker`]: an in-process broker on a loopback port and a raw MQTT client;
//! - [`packets`]: builders and accessors for the packets tests send and receive;
//! - [`serve`]: `topicgate serve` children (their announced ports, kill on drop);
//! - [`tls`]: certificates, TLS listeners and clients;
//! - [`peers`], [`mosquitto`]: third-party MQTT peers for the interop targets.
//!
//! Each target uses a part of this; the rest is dead code there, hence the allow.
#![allow(dead_code)]

pub mod broker;
pub mod decide;
pub mod mosquitto;
pub mod packets;
pub mod peers;
pub mod policy;
pub mod serve;
pub mod tls;
pub mod wait;

// What most broker tests use, at `support::`; a target that uses none of it
// would warn.
#[allow(unused_imports)]
pub use broker::*;
#[allow(unused_imports)]
pub use wait::*;

/// Sends the broker's `warn` logs (or `RUST_LOG`'s choice) to the test output once
/// per process.
pub fn log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "topicgate=warn".into()),
        )
        .with_test_writer()
        .try_init();
}
