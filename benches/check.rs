//! `policy check` at scale: the seed scenario grown to 100,000 clients, every sensor
//! with a will and intents, so that every rule (wills, intents, variables, hygiene)
//! has work to do. The figure goes in docs/performance.md ("policy check").
//!
//! Run: `cargo bench --bench check`.

// Benchmarks fail loudly on a broken setup: unwrap, expect and panic (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::time::Duration;
use topicgate::analysis::{analyze, Options};
use topicgate::pipeline::compile_text_with;
use topicgate::source::yaml::{event_tree, serde_tree};

/// `n` clients: nine in ten are sensors publishing their own status (their will
/// topic) and telemetry under their line; one in ten are actuators subscribing to
/// every status.
pub fn lwt_at_scale(n: usize) -> String {
    let mut y = String::from("namespace: lwt-scale\nclients:\n");
    for i in 0..n {
        let floor = i % 10;
        let line = i % 50;
        if i % 10 == 9 {
            let _ = writeln!(y, "  act-{i:06}: {{ attributes: {{ type: actuator, floor: {floor} }}, subscribes: [ \"clients/+/status\" ] }}");
        } else {
            let _ = writeln!(
                y,
                "  sen-{i:06}: {{ attributes: {{ type: sensor, floor: {floor}, line: l{line} }}, will: {{ topic: clients/sen-{i:06}/status, qos: 1 }}, publishes: [ \"telemetry/l{line}/sen-{i:06}/#\" ] }}"
            );
        }
    }
    y.push_str(
        "clientGroups:\n\
         \x20 sensors: { query: \"attributes.type = 'sensor'\" }\n\
         \x20 actuators: { query: \"attributes.type = 'actuator'\" }\n\
         \x20 upper-floors: { query: \"attributes.floor >= 5 AND attributes.type = 'sensor'\" }\n\
         topicSpaces:\n\
         \x20 status: { topicTemplates: [ \"clients/$<client.authenticationName>/status\" ] }\n\
         \x20 all-status: { topicTemplates: [ \"clients/+/status\" ] }\n\
         \x20 telemetry: { topicTemplates: [ \"telemetry/$<client.attributes.line>/$<client.authenticationName>/#\" ] }\n\
         \x20 upper-alarms: { topicTemplates: [ \"alarms/upper/$<client.authenticationName>\" ] }\n\
         permissionBindings:\n\
         \x20 sensors-pub: { clientGroup: sensors, topicSpace: status, permission: publisher }\n\
         \x20 sensors-telemetry: { clientGroup: sensors, topicSpace: telemetry, permission: publisher }\n\
         \x20 actuators-sub: { clientGroup: actuators, topicSpace: all-status, permission: subscriber }\n\
         \x20 upper-alarms-pub: { clientGroup: upper-floors, topicSpace: upper-alarms, permission: publisher }\n",
    );
    y
}

fn check(c: &mut Criterion) {
    let text = lwt_at_scale(100_000);
    let compiled = compile_text_with("lwt-scale.yaml", &text, None, Options::default());
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        &compiled.diagnostics[..compiled.diagnostics.len().min(3)]
    );
    let resolved = compiled.resolved().cloned().expect("resolves");
    let mut g = c.benchmark_group("policy check 100k clients");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(3));
    g.bench_function("whole check (parse, resolve, rules)", |b| {
        b.iter(|| compile_text_with("lwt-scale.yaml", &text, None, Options::default()))
    });
    g.bench_function("rules only (index build included)", |b| {
        b.iter(|| analyze(&compiled.file, &resolved, Options::default()))
    });
    // The YAML text to the spanned tree, both paths (decision 0013): the event path
    // is what `parse_tree` takes on this file; the serde path is its fallback.
    g.bench_function("YAML tree, event path", |b| {
        b.iter(|| event_tree(&text).expect("plain policy"))
    });
    g.bench_function("YAML tree, serde path", |b| {
        b.iter(|| serde_tree(&text).expect("valid YAML"))
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
