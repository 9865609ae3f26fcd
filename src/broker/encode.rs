//! Direct encoding of the one packet the broker sends most: a QoS 0 PUBLISH
//! to an MQTT 3.1.1 client. It carries no packet identifier, no properties and
//! no codec state, so writing its bytes straight into the output buffer saves
//! building a packet object and a buffer per delivery. Every other packet goes
//! through mqtt-protocol-core; the test below holds this encoding to the codec's.

/// Appends PUBLISH (QoS 0, DUP 0) for `topic` and `payload` to `out`
/// (MQTT 3.1.1 §3.3). The topic was validated when it was published (at most
/// 65,535 bytes) and the payload fits the packet size limit.
pub fn v3_qos0_publish(out: &mut Vec<u8>, topic: &str, payload: &[u8], retain: bool) {
    let topic_len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
    let topic = &topic.as_bytes()[..usize::from(topic_len)];
    let remaining = 2 + topic.len() + payload.len();
    out.reserve(1 + 4 + remaining);
    out.push(0x30 | u8::from(retain));
    push_remaining_length(out, remaining);
    out.extend_from_slice(&topic_len.to_be_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(payload);
}

/// Appends a Remaining Length (MQTT §2.2.3: a variable byte integer, 7 bits per byte).
pub fn push_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::{v3_1_1, Qos};

    fn codec(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
        let p = v3_1_1::Publish::builder()
            .topic_name(topic)
            .expect("topic")
            .qos(Qos::AtMostOnce)
            .retain(retain)
            .payload(payload.to_vec())
            .build()
            .expect("publish");
        p.to_continuous_buffer()
    }

    #[test]
    fn matches_the_codec_across_length_boundaries() {
        // Remaining lengths around the 1-, 2- and 3-byte encodings.
        for payload_len in [0, 1, 60, 123, 124, 125, 200, 16_379, 16_380, 16_381, 70_000] {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
            for retain in [false, true] {
                let mut ours = Vec::new();
                v3_qos0_publish(&mut ours, "a/b", &payload, retain);
                assert_eq!(
                    ours,
                    codec("a/b", &payload, retain),
                    "payload {payload_len}"
                );
            }
        }
    }

    #[test]
    fn appends_after_what_is_already_there() {
        let mut out = vec![0xAA];
        v3_qos0_publish(&mut out, "t", b"x", false);
        assert_eq!(out, [0xAA, 0x30, 0x04, 0x00, 0x01, b't', b'x']);
    }
}
