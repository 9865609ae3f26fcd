//! Runs the decisions of `benches/decisions.rs` in a plain loop, for counting their
//! instructions with callgrind (steady on a loaded machine, unlike wall time):
//!
//! ```text
//! cargo build --release --example decision_cost
//! valgrind --tool=callgrind --toggle-collect='*decide_publish*' \
//!     target/release/examples/decision_cost 100000 1000 100000
//! ```
//!
//! Instructions per decision = the collected total / the decisions made. Arguments:
//! clients, templates, decisions of each kind, and optionally which kinds to make
//! (`publish`, `denied`, `subscribe`; all three by default).

use std::hint::black_box;
use std::process::ExitCode;
use topicgate::compiler::compile_text;
use topicgate::compiler::load::from_compilation;
use topicgate::source::synth::{device_name, device_topic, generate, SynthSpec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args
        .iter()
        .take(3)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let [clients, templates, n] = numbers.as_slice() else {
        eprintln!("usage: decision_cost CLIENTS TEMPLATES DECISIONS [publish|denied|subscribe]");
        return ExitCode::from(2);
    };
    let only = args.get(3).map(String::as_str);
    let make = |kind: &str| only.is_none_or(|o| o == kind);
    let (publish, deny, subscribe) = (make("publish"), make("denied"), make("subscribe"));
    let (clients, templates, n) = (*clients, (*templates).max(1), *n);
    let yaml = generate(SynthSpec {
        clients,
        templates,
        bench_clients: 0,
    });
    let p = match from_compilation(compile_text("synthetic.yaml", &yaml, None)) {
        Ok(l) => l.policy,
        Err(e) => {
            eprintln!("synthetic policy does not compile: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same client, topic and filter as the criterion bench.
    let who = clients / 2 + 1;
    let Some(id) = p.client_by_authentication_name(&device_name(who)) else {
        eprintln!("no client {}", device_name(who));
        return ExitCode::FAILURE;
    };
    let topic = device_topic(who, templates - 1);
    let denied = format!("{topic}x/y");
    let sub = (0..clients).find(|i| i % 4 == 2).unwrap_or(0);
    let Some(sub_id) = p.client_by_authentication_name(&device_name(sub)) else {
        eprintln!("no client {}", device_name(sub));
        return ExitCode::FAILURE;
    };
    let t = (0..templates)
        .rev()
        .find(|t| t % 4 == 1 && (t / 10) % 2 == 1)
        .unwrap_or(1);
    let filter = format!("fleet/{t}/+/status");

    let mut allowed = [0usize; 3];
    for _ in 0..n {
        if publish {
            allowed[0] += black_box(p.decide_publish(id, black_box(&topic))).allowed as usize;
        }
        if deny {
            allowed[1] += black_box(p.decide_publish(id, black_box(&denied))).allowed as usize;
        }
        if subscribe {
            allowed[2] +=
                black_box(p.decide_subscribe(sub_id, black_box(&filter))).allowed as usize;
        }
    }
    println!(
        "{n} x publish `{topic}`: {} allowed; publish `{denied}`: {} allowed; subscribe `{filter}`: {} allowed",
        allowed[0], allowed[1], allowed[2]
    );
    ExitCode::SUCCESS
}
