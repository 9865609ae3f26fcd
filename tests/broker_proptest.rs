//! Random byte streams into a connection: no panic, no wedge (runs in CI).
//! Same path as the cargo-fuzz target in `fuzz/`.

mod support;

use mqtt_protocol_core::mqtt::packet::Qos;
use proptest::prelude::*;
use support::packets::*;
use topicgate::broker::fuzzing::{self, CONNECT_V3, CONNECT_V5};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run(input: Vec<u8>) {
    let rt = rt();
    rt.block_on(async {
        let b = fuzzing::broker();
        if let Err(e) = fuzzing::feed(&b, &input).await {
            panic!("{e} on {input:02x?}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_crash_or_wedge(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::fuzz_one(&data);
    }

    #[test]
    fn mutated_valid_streams_never_crash_or_wedge(
        v5 in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut input = if v5 { CONNECT_V5.to_vec() } else { CONNECT_V3.to_vec() };
        if v5 {
            input.extend(v5_sub(1, &[("a/+", Qos::AtLeastOnce)]).to_continuous_buffer());
            input.extend(v5_pub("a/b", b"hello", Qos::ExactlyOnce, Some(2)).to_continuous_buffer());
        } else {
            input.extend(v3_sub(1, &[("a/+", Qos::AtLeastOnce)]).to_continuous_buffer());
            input.extend(v3_pub("a/b", b"hello", Qos::ExactlyOnce, Some(2)).to_continuous_buffer());
        }
        input.extend([0xe0, 0x00]);
        for (i, v) in flips {
            let at = i.index(input.len());
            input[at] = v;
        }
        run(input);
    }
}

#[test]
fn valid_session_through_the_fuzz_path_ends_cleanly() {
    let mut input = CONNECT_V5.to_vec();
    input.extend(v5_sub(1, &[("a/+", Qos::AtLeastOnce)]).to_continuous_buffer());
    input.extend([0xe0, 0x00]);
    run(input);
}

#[tokio::test]
async fn the_fuzz_prefixes_are_accepted_connects() {
    let b = fuzzing::broker();
    let (addr, _t) = b.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut r5 = support::Raw::open(addr, mqtt_protocol_core::mqtt::Version::V5_0).await;
    r5.mqtt = mqtt_protocol_core::mqtt::Connection::new(mqtt_protocol_core::mqtt::Version::V5_0);
    // Let the client state machine see a CONNECT first, then send the raw bytes.
    r5.send_raw(CONNECT_V5).await;
    let mut buf = [0u8; 64];
    use tokio::io::AsyncReadExt;
    let n = r5.stream.read(&mut buf).await.unwrap();
    assert!(
        n >= 4 && buf[0] == 0x20 && buf[3] == 0x00,
        "{:02x?}",
        &buf[..n]
    );
    let mut r3 = support::Raw::open(addr, mqtt_protocol_core::mqtt::Version::V3_1_1).await;
    r3.send_raw(CONNECT_V3).await;
    let n = r3.stream.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &[0x20, 0x02, 0x00, 0x00]);
}
