//! Writing packets into the connection's output buffer. The packets the broker
//! sends most are written here directly: a QoS 0 PUBLISH to an MQTT 3.1.1 client
//! (no packet identifier, no properties, no codec state: no packet object at all),
//! and a QoS 1 one whose identifier the connection keeps (decision 0035),
//! and the bytes of an MQTT 3.1.1 PUBLISH or PUBACK the codec's state machine
//! passed (the codec's own `to_continuous_buffer` grows a fresh vector four times
//! per packet, a third of the cost of a QoS 1 delivery; decision 0033). Every
//! other packet is appended from the codec's slices. The tests below hold these
//! encodings to the codec's.

use mqtt_protocol_core::mqtt::packet::{GenericPacket, GenericPacketTrait, Packet, Qos};

/// Appends PUBLISH (QoS 0, DUP 0) for `topic` and `payload` to `out`
/// (MQTT 3.1.1 §3.3). The topic was validated when it was published (at most
/// 65,535 bytes) and the payload fits the packet size limit.
pub fn v3_qos0_publish(out: &mut Vec<u8>, topic: &str, payload: &[u8], retain: bool) {
    v3_publish(out, 0x30 | u8::from(retain), topic, None, payload);
}

/// Appends PUBLISH (QoS 1, DUP 0) for `topic` and `payload` under `packet_id`
/// to `out` (MQTT 3.1.1 §3.3): a first sending; the connection keeps the
/// identifier itself (decision 0035).
pub fn v3_qos1_publish(
    out: &mut Vec<u8>,
    topic: &str,
    packet_id: u16,
    payload: &[u8],
    retain: bool,
) {
    v3_publish(
        out,
        0x32 | u8::from(retain),
        topic,
        Some(packet_id),
        payload,
    );
}

/// Appends an MQTT 3.1.1 PUBLISH (§3.3) with the fixed-header byte `first`
/// (type, DUP, QoS, RETAIN) and, for QoS 1/2, its packet identifier.
fn v3_publish(out: &mut Vec<u8>, first: u8, topic: &str, packet_id: Option<u16>, payload: &[u8]) {
    let topic_len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
    let topic = &topic.as_bytes()[..usize::from(topic_len)];
    let id_len = if packet_id.is_some() { 2 } else { 0 };
    let remaining = 2 + topic.len() + id_len + payload.len();
    out.reserve(1 + 4 + remaining);
    out.push(first);
    push_remaining_length(out, remaining);
    out.extend_from_slice(&topic_len.to_be_bytes());
    out.extend_from_slice(topic);
    if let Some(id) = packet_id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Appends `packet`'s bytes, as the codec's `to_continuous_buffer` would give
/// them, without building a buffer per packet.
pub fn packet(out: &mut Vec<u8>, packet: &Packet) {
    match packet {
        GenericPacket::V3_1_1Publish(p) => {
            let first =
                0x30 | (u8::from(p.dup()) << 3) | (qos_bits(p.qos()) << 1) | u8::from(p.retain());
            let id = if p.qos() == Qos::AtMostOnce {
                None
            } else {
                p.packet_id()
            };
            v3_publish(out, first, p.topic_name(), id, p.payload().as_slice());
        }
        GenericPacket::V3_1_1Puback(p) => {
            out.extend_from_slice(&[0x40, 0x02]);
            out.extend_from_slice(&p.packet_id().to_be_bytes());
        }
        other => {
            out.reserve(other.size());
            for slice in other.to_buffers() {
                out.extend_from_slice(&slice);
            }
        }
    }
}

fn qos_bits(q: Qos) -> u8 {
    match q {
        Qos::AtMostOnce => 0,
        Qos::AtLeastOnce => 1,
        Qos::ExactlyOnce => 2,
    }
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
    use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0, ReasonString};
    use mqtt_protocol_core::mqtt::result_code::PubackReasonCode;

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
    fn v3_qos1_matches_the_codec() {
        for payload_len in [0, 1, 64, 121, 122, 123, 16_378, 16_379, 70_000] {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
            for retain in [false, true] {
                for id in [1u16, 255, 256, 0xABCD, 65_535] {
                    let mut ours = Vec::new();
                    v3_qos1_publish(&mut ours, "a/b", id, &payload, retain);
                    let codec = v3_1_1::Publish::builder()
                        .topic_name("a/b")
                        .expect("topic")
                        .qos(Qos::AtLeastOnce)
                        .retain(retain)
                        .packet_id(id)
                        .payload(payload.clone())
                        .build()
                        .expect("publish")
                        .to_continuous_buffer();
                    assert_eq!(ours, codec, "payload {payload_len} retain {retain} id {id}");
                }
            }
        }
    }

    #[test]
    fn appends_after_what_is_already_there() {
        let mut out = vec![0xAA];
        v3_qos0_publish(&mut out, "t", b"x", false);
        assert_eq!(out, [0xAA, 0x30, 0x04, 0x00, 0x01, b't', b'x']);
    }

    fn ours(p: &Packet) -> Vec<u8> {
        let mut out = vec![0xAA];
        packet(&mut out, p);
        assert_eq!(out.remove(0), 0xAA, "appended after what was there");
        out
    }

    #[test]
    fn v3_publish_of_every_qos_and_flag_matches_the_codec() {
        for payload_len in [0, 1, 60, 123, 124, 125, 16_380, 70_000] {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
            for (qos, id) in [
                (Qos::AtMostOnce, None),
                (Qos::AtLeastOnce, Some(1)),
                (Qos::AtLeastOnce, Some(0xABCD)),
                (Qos::ExactlyOnce, Some(65_535)),
            ] {
                for (dup, retain) in [(false, false), (true, false), (false, true), (true, true)] {
                    if dup && qos == Qos::AtMostOnce {
                        continue; // MQTT-3.3.1-2: DUP is 0 for QoS 0
                    }
                    let mut b = v3_1_1::Publish::builder()
                        .topic_name("a/b/c")
                        .expect("topic")
                        .qos(qos)
                        .dup(dup)
                        .retain(retain)
                        .payload(payload.clone());
                    if let Some(id) = id {
                        b = b.packet_id(id);
                    }
                    let p: Packet = b.build().expect("publish").into();
                    assert_eq!(
                        ours(&p),
                        p.to_continuous_buffer(),
                        "{qos:?} {dup} {retain} {payload_len}"
                    );
                }
            }
        }
    }

    #[test]
    fn acknowledgements_and_other_packets_match_the_codec() {
        let mut packets: Vec<Packet> = Vec::new();
        for id in [1u16, 0x1234, 65_535] {
            packets.push(
                v3_1_1::Puback::builder()
                    .packet_id(id)
                    .build()
                    .expect("puback")
                    .into(),
            );
            packets.push(
                v3_1_1::Pubrec::builder()
                    .packet_id(id)
                    .build()
                    .expect("pubrec")
                    .into(),
            );
            packets.push(
                v5_0::Puback::builder()
                    .packet_id(id)
                    .build()
                    .expect("puback")
                    .into(),
            );
        }
        let reason = ReasonString::new("not allowed").expect("reason");
        packets.push(
            v5_0::Puback::builder()
                .packet_id(7)
                .reason_code(PubackReasonCode::NotAuthorized)
                .props(vec![reason.into()])
                .build()
                .expect("puback")
                .into(),
        );
        packets.push(
            v5_0::Publish::builder()
                .topic_name("t")
                .expect("topic")
                .qos(Qos::AtLeastOnce)
                .packet_id(9)
                .payload(b"hello".to_vec())
                .build()
                .expect("publish")
                .into(),
        );
        for p in &packets {
            assert_eq!(ours(p), p.to_continuous_buffer(), "{p:?}");
        }
    }
}
