//! `policy query` and `policy diff` on a 10,000-client policy (the synthetic fleet of
//! `policy generate`, 100 templates in 10 topic spaces), including loading the policy
//! text, which is what the commands do. `docs/performance.md` holds the measured table.

// Benchmarks fail loudly on a broken setup: unwrap, expect and panic (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use topicgate::analysis::diff::diff;
use topicgate::analysis::flow::flow;
use topicgate::analysis::query::{client_summary, who_may, Ask};
use topicgate::compiler::CompiledPolicy;
use topicgate::pipeline::compile_text;
use topicgate::pipeline::from_compilation;
use topicgate::source::synth::{device_name, device_topic, generate, SynthSpec};

const CLIENTS: usize = 10_000;
const TEMPLATES: usize = 100;

fn policy_text() -> String {
    generate(SynthSpec {
        clients: CLIENTS,
        templates: TEMPLATES,
        bench_clients: 0,
    })
}

/// The same fleet where every device may publish every other device's `cmd/2/...` topic.
fn widened_text() -> String {
    let old = policy_text();
    let new = old.replace("\"cmd/2/$<client.authenticationName>\"", "\"cmd/2/+\"");
    assert_ne!(old, new, "the template to widen is in the generated policy");
    new
}

fn load(text: &str) -> CompiledPolicy {
    match from_compilation(compile_text("fleet.yaml", text, None)) {
        Ok(l) => l.policy,
        Err(e) => panic!("synthetic policy does not compile: {e}"),
    }
}

fn query(c: &mut Criterion) {
    let text = policy_text();
    let p = load(&text);
    let who = device_name(CLIENTS / 2 + 1);
    let id = p.client_by_authentication_name(&who).expect("client");
    let topic = device_topic(CLIENTS / 2 + 1, TEMPLATES - 1);
    let mut g = c.benchmark_group("query-10k");
    g.sample_size(10);
    g.bench_function("load", |b| b.iter(|| black_box(load(black_box(&text)))));
    g.bench_function("publish", |b| {
        b.iter(|| black_box(who_may(&p, &Ask::Publish(topic.clone())).clients.len()))
    });
    g.bench_function("subscribe", |b| {
        b.iter(|| {
            black_box(
                who_may(&p, &Ask::Subscribe("fleet/1/+/status".into()))
                    .clients
                    .len(),
            )
        })
    });
    g.bench_function("receive", |b| {
        b.iter(|| black_box(who_may(&p, &Ask::Receive(topic.clone())).clients.len()))
    });
    g.bench_function("client", |b| {
        b.iter(|| black_box(client_summary(&p, id).publish.len()))
    });
    let other = p
        .client_by_authentication_name(&device_name(2))
        .expect("client");
    g.bench_function("flow", |b| {
        b.iter(|| black_box(flow(&p, id, other).paths.len()))
    });
    g.bench_function("load+publish", |b| {
        b.iter(|| {
            let p = load(&text);
            black_box(who_may(&p, &Ask::Publish(topic.clone())).clients.len())
        })
    });
    g.finish();
}

fn diffs(c: &mut Criterion) {
    let (old_text, new_text) = (policy_text(), widened_text());
    let (old, new) = (load(&old_text), load(&new_text));
    let d = diff(&old, &new);
    assert_eq!(
        d.clients_changed.len(),
        CLIENTS,
        "every device gains access"
    );
    let mut g = c.benchmark_group("diff-10k");
    g.sample_size(10);
    g.bench_function("identical", |b| {
        b.iter(|| black_box(diff(&old, &old).has_changes()))
    });
    g.bench_function("widened-template", |b| {
        b.iter(|| black_box(diff(&old, &new).clients_changed.len()))
    });
    g.bench_function("load+widened-template", |b| {
        b.iter(|| {
            let (o, n) = (load(&old_text), load(&new_text));
            black_box(diff(&o, &n).clients_changed.len())
        })
    });
    g.finish();
}

criterion_group!(benches, query, diffs);
criterion_main!(benches);
