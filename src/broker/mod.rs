//! The enforcing MQTT 3.1.1 / 5 broker (`topicgate serve`). Its modules form
//! layers; each imports only from the layers below it (decision 0027):
//!
//! 1. leaf types: `message` (a message and one copy of it), `sub_options`,
//!    `will` (what a will is), `config`, `policy` (the swappable policy
//!    handle), `stats`, `limits`; the wire in front of the codec: `frame`,
//!    `encode`, `preauth` (the CONNECT before authentication); `tls`, `ws`;
//! 2. stores: `retained` (retained messages), `session` (a session's state
//!    and transitions, and the `registry` of sessions), `events` (lifecycle
//!    events and their sinks), `store` (the durable store of `--data`,
//!    decision 0024);
//! 3. `router`: the subscription trie, from a topic to sessions;
//! 4. `state`: what every connection shares, and routing a message;
//! 5. `lifecycle`: claiming, releasing and expiring sessions, firing wills;
//!    `reload`: what a policy swap revokes; `durable`: what is written to the
//!    store when, and the state restored from it at start (decision 0025);
//! 6. `connection`: one connection's task, packet by packet (CONNECT,
//!    PUBLISH, SUBSCRIBE), backpressure and the outbound queue;
//! 7. `server` (accept loop, shutdown), `listeners` (by transport),
//!    `metrics` (the Prometheus endpoint); `fuzzing` feeds one connection.
pub mod config;
pub mod connection;
pub mod durable;
pub mod encode;
pub mod events;
pub mod frame;
pub mod fuzzing;
pub mod lifecycle;
pub mod limits;
pub mod listeners;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod preauth;
pub mod reload;
pub mod retained;
pub mod router;
pub mod server;
pub mod session;
pub mod state;
pub mod stats;
pub mod store;
pub mod sub_options;
pub mod tls;
pub mod will;
pub mod ws;

pub use config::{BrokerConfig, IdentityMode};
pub use server::{Acceptor, Broker};
