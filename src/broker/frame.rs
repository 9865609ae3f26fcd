//! A light scan of MQTT fixed headers in front of the codec: it checks the
//! reserved flag bits of every packet type but PUBLISH (MQTT 3.1.1 §2.2.2,
//! MQTT 5 §2.1.3), which mqtt-protocol-core 0.7.9 does not check.

/// Where the scanner is within the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting the first byte of a fixed header.
    Header,
    /// Reading the remaining length (variable byte integer).
    Length { value: u64, shift: u32, bytes: u8 },
    /// Skipping `left` bytes of a packet body.
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

impl FrameScan {
    /// Whether the bytes scanned so far end inside a packet.
    pub fn mid_packet(&self) -> bool {
        !matches!(self.state, State::Header)
    }

    /// Scans `data`; returns the offset of the first byte of a packet whose
    /// fixed-header flags are wrong, or None when all of `data` is fine so far.
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Header => {
                    let b = data[i];
                    if let Some(flags) = required_flags(b >> 4) {
                        if b & 0x0F != flags {
                            return Some(i);
                        }
                    }
                    self.state = State::Length {
                        value: 0,
                        shift: 0,
                        bytes: 0,
                    };
                    i += 1;
                }
                State::Length {
                    value,
                    shift,
                    bytes,
                } => {
                    let b = data[i];
                    i += 1;
                    let value = value | (u64::from(b & 0x7F) << shift);
                    if b & 0x80 == 0 {
                        self.state = if value == 0 {
                            State::Header
                        } else {
                            State::Body { left: value }
                        };
                    } else if bytes >= 3 {
                        // A 5-byte length: the codec reports it as malformed.
                        self.state = State::Body { left: u64::MAX };
                    } else {
                        self.state = State::Length {
                            value,
                            shift: shift + 7,
                            bytes: bytes + 1,
                        };
                    }
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
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0xc0, 0x00, 0x80, 0x06]), Some(2)); // SUBSCRIBE with flags 0
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0xe1, 0x00]), Some(0)); // DISCONNECT with a flag
        let mut s = FrameScan::default();
        assert_eq!(s.scan(&[0x60, 0x02, 0x00, 0x01]), Some(0)); // PUBREL flags 0
    }
}
