//! The artifact round-trips the resolved policy exactly, and decoding arbitrary bytes
//! never panics.

mod support;
use proptest::prelude::*;
use topicgate::compiler::artifact;

#[test]
fn round_trip_keeps_the_policy_and_its_hash() {
    let p = support::policy::compiled(include_str!("../policies/lwt.yaml"));
    let bytes = artifact::encode(&p.policy, &p.source_hash).unwrap();
    let (back, hash) = artifact::decode(&bytes).unwrap();
    assert_eq!(back, p.policy);
    assert_eq!(hash, p.source_hash);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn decoding_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512), valid_header in any::<bool>()) {
        let mut bytes = Vec::new();
        if valid_header {
            bytes.extend_from_slice(&artifact::MAGIC);
            bytes.extend_from_slice(&artifact::FORMAT_VERSION.to_le_bytes());
        }
        bytes.extend_from_slice(&body);
        let _ = artifact::decode(&bytes);
    }
}
