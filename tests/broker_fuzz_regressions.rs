//! Failures found by the broker fuzzer and the Paho interoperability runs
//! (docs/reliability.md), each kept as a minimal regression test.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use support::packets::*;
use support::{policy, Raw, T};
use topicgate::broker::BrokerConfig;

/// A PUBLISH (QoS 0, "a/b", "first") followed, in the same TCP segment, by `bad`.
async fn publish_then(bad: &[u8]) -> (Option<Packet>, Vec<Packet>) {
    let b = support::start(policy::lwt(), BrokerConfig::default()).await;
    let mut sub = Raw::open(b.addr, Version::V5_0).await;
    sub.send(v5_connect("sub", Some("admin2")).into()).await;
    sub.recv(T).await.expect("CONNACK");
    sub.send(v5_sub(1, &[("a/b", Qos::AtMostOnce)]).into())
        .await;
    sub.recv(T).await.expect("SUBACK");

    let mut publisher = Raw::open(b.addr, Version::V5_0).await;
    publisher
        .send(v5_connect("pub", Some("admin")).into())
        .await;
    publisher.recv(T).await.expect("CONNACK");
    let mut burst = v5_pub("a/b", b"first", Qos::AtMostOnce, None).to_continuous_buffer();
    burst.extend_from_slice(bad);
    publisher.send_raw(&burst).await;
    let replies = publisher.until_closed(T).await.unwrap_or_else(|seen| seen);
    let delivered = sub.recv(std::time::Duration::from_millis(500)).await.ok();
    (delivered, replies)
}

/// Packets that arrive before a protocol error are acted on, in order (MQTT 5
/// §4.6): a PUBLISH in the same TCP segment as a second CONNECT, or as a PUBLISH
/// with Topic Alias 0, is delivered before the broker disconnects (0x82).
///
/// Found by the fuzzer: `Conn::feed_codec` decodes a whole read before acting,
/// and the codec's error on the bad packet used to end the connection at once,
/// so the packets decoded before it were dropped (now `decode_failed` waits for
/// them).
#[tokio::test]
async fn packets_before_a_protocol_error_in_the_same_read_are_acted_on() {
    let second_connect = v5_connect("pub", Some("admin")).to_continuous_buffer();
    let alias_zero = [0x30, 0x08, 0x00, 0x01, b'a', 0x03, 0x23, 0x00, 0x00, b'x'];
    for (name, bad) in [
        ("second CONNECT", &second_connect[..]),
        ("Topic Alias 0", &alias_zero[..]),
    ] {
        let (delivered, replies) = publish_then(bad).await;
        let Some(p) = delivered else {
            panic!("{name}: the PUBLISH sent before it was never delivered");
        };
        assert_eq!(publish_parts(&p).1, b"first", "{name}");
        let last = replies
            .last()
            .unwrap_or_else(|| panic!("{name}: no DISCONNECT"));
        // 0x82 Protocol Error; for the alias, 0x94 Topic Alias invalid would do too.
        let code = disconnect_code(last);
        assert!(
            code == 0x82 || (code == 0x94 && name == "Topic Alias 0"),
            "{name}: 0x{code:02x}"
        );
    }
}
