//! The enforcing MQTT 3.1.1 / 5 broker (`topicgate serve`).
//!
//! - `server`: accept loop, connection limit, graceful shutdown
//! - `connection`: one connection's task and framing (mqtt-protocol-core)
//! - `preauth`: the CONNECT read and checked before authentication
//! - `connect`, `publish`, `subscribe`: what each packet does, with authorization
//! - `session`: sessions that outlive connections; takeover rules
//! - `will`: Last Will and Testament
//! - `router`: the subscription trie; `retained`: retained messages;
//!   `retained_delivery`: sending them as flow control allows
//! - `policy`: the swappable policy handle; `config`: limits; `stats`: counters
//! - `events`: lifecycle events (CloudEvents); `metrics`: the Prometheus endpoint
pub mod config;
mod connect;
pub mod connection;
pub mod durable;
pub mod encode;
pub mod events;
pub mod frame;
pub mod fuzzing;
pub mod limits;
pub mod listeners;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod preauth;
mod publish;
pub mod reload;
pub mod retained;
mod retained_delivery;
pub mod router;
pub mod server;
pub mod session;
pub mod state;
pub mod stats;
pub mod store;
mod subscribe;
pub mod tls;
mod webhook;
pub mod will;
pub mod ws;

pub use config::{BrokerConfig, IdentityMode};
pub use server::{Acceptor, Broker};
