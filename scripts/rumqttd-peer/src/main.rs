//! rumqttd 0.20 as a peer broker for `scripts/bench-vs-mosquitto.sh`.
//!
//! Usage: `rumqttd-peer CONFIG.toml`. The config is rumqttd's own format (the one its
//! binary reads); the script writes one for loopback listeners with limits that fit
//! the load. No authorization and no authentication: rumqttd 0.20 has no ACL, so
//! every client may publish and subscribe anywhere.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: rumqttd-peer CONFIG.toml");
        return ExitCode::from(2);
    };
    let config: rumqttd::Config = match config::Config::builder()
        .add_source(config::File::new(&path, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rumqttd-peer: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    // Blocks while the broker runs: one thread for the router, one per listener.
    match rumqttd::Broker::new(config).start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rumqttd-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
