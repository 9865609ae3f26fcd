//! Using topicgate as a library: compile a policy and ask it questions.
//!
//! `cargo run --example decide -- policies/lwt.yaml sensor1 clients/sensor1/status`

// Examples keep to the point: unwrap, expect and panic stand in for error handling (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;
use topicgate::pipeline::load;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policy, client, topic] = args.as_slice() else {
        eprintln!("usage: decide POLICY CLIENT TOPIC");
        return ExitCode::from(2);
    };
    let loaded = match load(std::path::Path::new(policy)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let p = &loaded.policy;
    let Some(id) = p.client_by_authentication_name(client) else {
        eprintln!("no client `{client}`");
        return ExitCode::from(1);
    };
    for (what, d) in [
        ("publish", p.decide_publish(id, topic)),
        ("subscribe", p.decide_subscribe(id, topic)),
    ] {
        println!(
            "{what:9} {topic}: {} ({})",
            if d.allowed { "allow" } else { "deny" },
            d.reason
        );
    }
    ExitCode::SUCCESS
}
