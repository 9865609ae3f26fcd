//! Arbitrary bytes into one broker connection: `cargo +nightly fuzz run connection`.
//! The body is `topicgate::broker::fuzzing::fuzz_one`, which the proptest in
//! `tests/broker_proptest.rs` also drives in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| topicgate::broker::fuzzing::fuzz_one(data));
