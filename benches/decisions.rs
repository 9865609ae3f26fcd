//! Publish and subscribe decision latency on the template index, against clients and
//! templates, and the reference evaluator beside it. `docs/performance.md` holds the
//! measured table.

// Benchmarks fail loudly on a broken setup: unwrap, expect and panic (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use topicgate::compiler::CompiledPolicy;
use topicgate::decisions::reference;
use topicgate::pipeline::compile_text;
use topicgate::pipeline::from_compilation;
use topicgate::source::synth::{device_name, device_topic, generate, SynthSpec};

fn build(clients: usize, templates: usize) -> CompiledPolicy {
    let yaml = generate(SynthSpec {
        clients,
        templates,
        bench_clients: 0,
    });
    match from_compilation(compile_text("synthetic.yaml", &yaml, None)) {
        Ok(l) => l.policy,
        Err(e) => panic!("synthetic policy does not compile: {e}"),
    }
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    for clients in [10usize, 1_000, 100_000] {
        for templates in [10usize, 100, 1_000] {
            let p = build(clients, templates);
            let who = clients / 2 + 1;
            let id = p
                .client_by_authentication_name(&device_name(who))
                .expect("client");
            // The last template of policy order: the worst case for a linear scan.
            let topic = device_topic(who, templates - 1);
            assert!(p.decide_publish(id, &topic).allowed, "{topic}");
            let denied = format!("{topic}x/y");
            group.bench_with_input(
                BenchmarkId::new(format!("{clients}-clients"), templates),
                &topic,
                |b, t| b.iter(|| black_box(p.decide_publish(id, black_box(t)).allowed)),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{clients}-clients-denied"), templates),
                &denied,
                |b, t| b.iter(|| black_box(p.decide_publish(id, black_box(t)).allowed)),
            );
            if clients == 1_000 {
                group.bench_with_input(
                    BenchmarkId::new("reference-1000-clients", templates),
                    &topic,
                    |b, t| {
                        b.iter(|| {
                            black_box(reference::may_publish(&p.policy, id as usize, black_box(t)))
                        })
                    },
                );
            }
        }
    }
    group.finish();

    let mut group = c.benchmark_group("subscribe");
    for (clients, templates) in [(1_000usize, 1_000usize), (100_000, 1_000)] {
        let p = build(clients, templates);
        // Clients of type plc subscribe odd spaces; `fleet/{t}/+/status` with t odd.
        let who = (0..clients).find(|i| i % 4 == 2).unwrap_or(0);
        let id = p
            .client_by_authentication_name(&device_name(who))
            .expect("client");
        let t = (0..templates)
            .rev()
            .find(|t| t % 4 == 1 && (t / 10) % 2 == 1)
            .unwrap_or(1);
        let filter = format!("fleet/{t}/+/status");
        assert!(p.decide_subscribe(id, &filter).allowed, "{filter}");
        group.bench_with_input(
            BenchmarkId::new(format!("{clients}-clients"), templates),
            &filter,
            |b, f| b.iter(|| black_box(p.decide_subscribe(id, black_box(f)).allowed)),
        );
        if clients == 1_000 {
            group.bench_with_input(
                BenchmarkId::new("reference-1000-clients", templates),
                &filter,
                |b, f| {
                    b.iter(|| {
                        black_box(reference::may_subscribe(
                            &p.policy,
                            id as usize,
                            black_box(f),
                        ))
                    })
                },
            );
        }
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let yaml = generate(SynthSpec {
        clients: 100_000,
        templates: 1_000,
        bench_clients: 0,
    });
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("100000-clients-1000-templates", |b| {
        b.iter(|| {
            let c = compile_text("synthetic.yaml", black_box(&yaml), None);
            black_box(from_compilation(c).map(|l| l.policy.client_count()).ok())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = decisions, compile
}
criterion_main!(benches);
