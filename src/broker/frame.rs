//! A light scan of MQTT packets in front of the codec, for what
//! mqtt-protocol-core 0.7.9 does not check on receipt:
//! - the reserved flag bits of every packet type but PUBLISH (MQTT 3.1.1
//!   §2.2.2, MQTT 5 §2.1.3: a malformed packet);
//! - Packet Identifier 0 in PUBLISH (QoS 1/2), PUBACK, PUBREC, PUBREL, PUBCOMP,
//!   SUBSCRIBE and UNSUBSCRIBE (MQTT 5 §2.2.1 [MQTT-2.2.1-3]: non-zero; 3.1.1
//!   §2.3.1). The codec passes such packets on, can panic on a QoS 2 PUBLISH
//!   with identifier 0 sent twice (it builds PUBREC 0 and unwraps), and no
//!   acknowledgement can be built for them (decision record 0015).

/// What the scan found wrong with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reserved fixed-header flags set: a malformed packet.
    Flags,
    /// A Packet Identifier of 0: a protocol error.
    ZeroPacketId,
}

/// Where the scanner is within the byte stream. `left` counts the bytes of the
/// packet body not yet scanned.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting the first byte of a fixed header.
    Header,
    /// Reading the remaining length (variable byte integer).
    Length {
        first: u8,
        value: u64,
        shift: u32,
        bytes: u8,
    },
    /// PUBLISH QoS 1/2: the topic name's length (`got` bytes of it so far).
    TopicLength { left: u64, got: u8, high: u8 },
    /// PUBLISH QoS 1/2: skipping the topic name.
    Topic { left: u64, topic: u64 },
    /// The Packet Identifier (`got` bytes of it so far).
    PacketId { left: u64, got: u8, high: u8 },
    /// Skipping the rest of a packet body.
    Body { left: u64 },
}

/// Follows packet boundaries across reads.
#[derive(Debug)]
pub struct FrameScan {
    state: State,
}

impl Default for FrameScan {
    fn default() -> Self {
        FrameScan {
            state: State::Header,
        }
    }
}

/// The flags a packet type must carry, or None when any are allowed (PUBLISH) or
/// the type is invalid (left to the codec).
fn required_flags(kind: u8) -> Option<u8> {
    match kind {
        3 => None,
        6 | 8 | 10 => Some(0b0010),
        1 | 2 | 4 | 5 | 7 | 9 | 11..=15 => Some(0),
        _ => None,
    }
}

/// What follows the fixed header of a packet with this first byte and body length.
fn body_state(first: u8, left: u64) -> State {
    let kind = first >> 4;
    let state = match kind {
        3 if first & 0b0110 != 0 => State::TopicLength {
            left,
            got: 0,
            high: 0,
        },
        4..=8 | 10 => State::PacketId {
            left,
            got: 0,
            high: 0,
        },
        _ => State::Body { left },
    };
    if left == 0 {
        State::Header
    } else {
        state
    }
}

impl FrameScan {
    /// Whether the bytes scanned so far end inside a packet.
    pub fn mid_packet(&self) -> bool {
        !matches!(self.state, State::Header)
    }

    /// Scans `data`; returns the offset of the first byte of the first faulty
    /// packet (0 when it began in an earlier read) and the fault, or None when
    /// all of `data` is fine so far.
    pub fn scan(&mut self, data: &[u8]) -> Option<(usize, Fault)> {
        let mut i = 0;
        let mut start = 0;
        while i < data.len() {
            match self.state {
                State::Header => {
                    let b = data[i];
                    start = i;
                    if let Some(flags) = required_flags(b >> 4) {
                        if b & 0x0F != flags {
                            return Some((i, Fault::Flags));
                        }
                    }
                    self.state = State::Length {
                        first: b,
                        value: 0,
                        shift: 0,
                        bytes: 0,
                    };
                    i += 1;
                }
                State::Length {
                    first,
                    value,
                    shift,
                    bytes,
                } => {
                    let b = data[i];
                    i += 1;
                    let value = value | (u64::from(b & 0x7F) << shift);
                    if b & 0x80 == 0 {
                        self.state = body_state(first, value);
                    } else if bytes >= 3 {
                        // A 5-byte length: the codec reports it as malformed.
                        self.state = State::Body { left: u64::MAX };
                    } else {
                        self.state = State::Length {
                            first,
                            value,
                            shift: shift + 7,
                            bytes: bytes + 1,
                        };
                    }
                }
                State::TopicLength { left, got, high } => {
                    let b = data[i];
                    i += 1;
                    self.state = match (got, left - 1) {
                        (_, 0) => State::Header,
                        (0, left) => State::TopicLength {
                            left,
                            got: 1,
                            high: b,
                        },
                        (_, left) => {
                            let topic = u64::from(u16::from_be_bytes([high, b]));
                            if topic == 0 {
                                State::PacketId {
                                    left,
                                    got: 0,
                                    high: 0,
                                }
                            } else {
                                State::Topic { left, topic }
                            }
                        }
                    };
                }
                State::Topic { left, topic } => {
                    let n = ((data.len() - i) as u64).min(topic).min(left);
                    i += n as usize;
                    let (left, topic) = (left - n, topic - n);
                    self.state = match (left, topic) {
                        (0, _) => State::Header,
                        (left, 0) => State::PacketId {
                            left,
                            got: 0,
                            high: 0,
                        },
                        (left, topic) => State::Topic { left, topic },
                    };
                }
                State::PacketId { left, got, high } => {
                    let b = data[i];
                    i += 1;
                    if got == 1 && high == 0 && b == 0 {
                        return Some((start, Fault::ZeroPacketId));
                    }
                    self.state = match (got, left - 1) {
                        (_, 0) => State::Header,
                        (0, left) => State::PacketId {
                            left,
                            got: 1,
                            high: b,
                        },
                        (_, left) => State::Body { left },
                    };
                }
                State::Body { left } => {
                    let avail = (data.len() - i) as u64;
                    if avail >= left {
                        i += left as usize;
                        self.state = State::Header;
                    } else {
                        i = data.len();
                        self.state = State::Body { left: left - avail };
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_streams_split_anywhere() {
        let stream = [
            0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x01, // SUBSCRIBE
            0x3d, 0x03, 0x00, 0x01, b'a', // PUBLISH flags anything
            0xc0, 0x00, // PINGREQ
            0x62, 0x02, 0x00, 0x01, // PUBREL
            0xe0, 0x00, // DISCONNECT
        ];
        for split in 0..stream.len() {
            let mut s = FrameScan::default();
            assert_eq!(s.scan(&stream[..split]), None);
            assert_eq!(s.scan(&stream[split..]), None, "split at {split}");
        }
    }

    #[test]
    fn rejects_wrong_reserved_flags() {
        let bad = Some((2, Fault::Flags));
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0xc0, 0x00, 0x80, 0x06]), bad); // SUBSCRIBE with flags 0
        let bad = Some((0, Fault::Flags));
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0xe1, 0x00]), bad); // DISCONNECT with a flag
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0x60, 0x02, 0x00, 0x01]), bad); // PUBREL flags 0
    }

    #[test]
    fn finds_packet_identifier_0_split_anywhere() {
        let ok = [0xc0, 0x00]; // PINGREQ
        let zero_pid: [&[u8]; 4] = [
            &[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, b'x'], // PUBLISH QoS 1
            &[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],       // PUBLISH QoS 2
            &[0x62, 0x02, 0x00, 0x00],                         // PUBREL
            &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x01], // SUBSCRIBE
        ];
        for bad in zero_pid {
            let stream = [&ok[..], bad].concat();
            for split in 0..stream.len() {
                let mut s = FrameScan::default();
                // (read, offset in it) of the fault.
                let found = match s.scan(&stream[..split]) {
                    Some(f) => Some((0, f)),
                    None => s.scan(&stream[split..]).map(|f| (1, f)),
                };
                let (read, (at, fault)) =
                    found.unwrap_or_else(|| panic!("{bad:?} split at {split}"));
                assert_eq!(fault, Fault::ZeroPacketId);
                // The faulty packet starts at 2; when it began in the first read,
                // the second read is cut at its start (0).
                let fine = match read {
                    0 => at == 2,
                    _ => at + split == 2 || (split > 2 && at == 0),
                };
                assert!(fine, "{bad:?}: read {read} at {at}, split {split}");
            }
        }
    }

    #[test]
    fn non_zero_identifiers_and_qos_0_pass() {
        let stream = [
            0x30, 0x03, 0x00, 0x01, b'a', // PUBLISH QoS 0: no identifier
            0x32, 0x05, 0x00, 0x01, b'a', 0x01, 0x00, // QoS 1, identifier 256
            0x40, 0x02, 0x00, 0x07, // PUBACK 7
            0x32, 0x04, 0x00, 0x00, 0x00, 0x09, // QoS 1, empty topic (alias), identifier 9
        ];
        for split in 0..stream.len() {
            let mut s = FrameScan::default();
            assert_eq!(s.scan(&stream[..split]), None);
            assert_eq!(s.scan(&stream[split..]), None, "split at {split}");
            assert!(!s.mid_packet());
        }
    }
}
