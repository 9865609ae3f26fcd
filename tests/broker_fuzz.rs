//! Structure-aware fuzzing of the broker over real loopback TCP (docs/reliability.md).
//!
//! `cargo test --test broker_fuzz` runs a small fixed budget (250 cases, at most
//! 20 s). A long run: `TOPICGATE_FUZZ_SECS=600 cargo test --release --test
//! broker_fuzz -- --nocapture`. Replay a failure with the seeds it prints.

mod support;

#[path = "support/fuzz/mod.rs"]
mod fuzz;

use fuzz::{case, gen, wire, Budget};

#[test]
fn broker_survives_fuzzed_connections() {
    let budget = Budget::from_env();
    eprintln!("broker_fuzz: {budget:?}");
    let rt = fuzz::runtime();
    match rt.block_on(fuzz::fuzz(&budget)) {
        Ok(figures) => eprintln!("broker_fuzz: {figures}"),
        Err((failure, figures)) => {
            panic!("broker_fuzz found a failure: {failure}\n  after: {figures}")
        }
    }
}

/// Every MQTT 5 property at 0, 1, its maximum and one past it, in every packet
/// a client sends: no panic, and the broker still serves a healthy client.
#[test]
fn every_property_at_its_boundaries_in_every_packet() {
    let knobs = Budget::from_env().knobs;
    match fuzz::runtime().block_on(fuzz::sweep_properties(knobs)) {
        Ok(n) => eprintln!("broker_fuzz: {n} property probes"),
        Err(e) => panic!("{e}"),
    }
}

/// The same seed gives the same case (what makes a printed seed a replay).
#[test]
fn a_seed_determines_its_case() {
    let a = case::generate(42, fuzz::KNOWN_CRASHES);
    let b = case::generate(42, fuzz::KNOWN_CRASHES);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let c = case::generate(43, fuzz::KNOWN_CRASHES);
    assert_ne!(format!("{a:?}"), format!("{c:?}"));
}

/// With the known-crash generators off, no topic or filter is deeper than
/// SHALLOW_LEVELS (plus a prefix), and no CONNECT, mutated or not, carries
/// Topic Alias Maximum 0 (seed 1883093862450211 of a 10-minute run made one by
/// a mutation before mutations were checked too).
#[test]
fn known_crash_generators_stay_off_while_switched_off() {
    for seed in (0..1_500).chain([1_883_093_862_450_211]) {
        let mut rng = case::rng(seed);
        let mut g = gen::Gen::new(&mut rng, gen::Knobs::OFF);
        for t in [g.topic(), g.filter()] {
            let levels = t.split(|&b| b == b'/').count();
            assert!(
                levels <= gen::SHALLOW_LEVELS + 20,
                "seed {seed}: {levels} levels"
            );
        }
        for s in &case::generate(seed, gen::Knobs::OFF).scripts {
            for step in &s.steps {
                if let case::Step::Send { bytes, .. } = step {
                    if bytes.first().map(|b| b & 0xF0) == Some(wire::kind::CONNECT) {
                        assert!(
                            !case::has_alias_maximum_zero(bytes),
                            "seed {seed}: Topic Alias Maximum 0"
                        );
                    }
                }
            }
        }
    }
}
