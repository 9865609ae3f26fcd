//! The CONNECT, before anything about the client is known (issue 11).
//!
//! - [`ConnectReader`] reads the first packet itself, never past its end, so an
//!   unauthenticated connection holds at most `maxConnectPacketSize` bytes, and
//!   only after taking them from the broker-wide `maxPreAuthBytes` budget. A
//!   larger Remaining Length is refused as soon as it is decoded, without
//!   allocating (MQTT 5 CONNACK 0x95 once the protocol level is read).
//! - [`check`] validates what mqtt-protocol-core 0.7.9 does not, before the
//!   CONNECT reaches it: the CONNECT flags, and the MQTT 5 properties whose
//!   values the codec accepts wrongly or panics on (decision record 0015).

use mqtt_protocol_core::mqtt::packet::v5_0;
use mqtt_protocol_core::mqtt::result_code::ConnectReasonCode;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection is refused before its CONNECT reaches the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    /// The first packet is not a CONNECT, or its length is not a valid
    /// variable byte integer: close without a reply.
    NotConnect,
    /// The CONNECT is larger than `maxConnectPacketSize`.
    TooLarge,
    /// `maxPreAuthBytes` is spent by other unauthenticated connections.
    Busy,
    /// Reserved, will QoS or will retain flags wrong (MQTT 5 §3.1.2.3, §3.1.2.6).
    Malformed,
    /// A property value MQTT 5 calls a protocol error (§3.1.2.11).
    ProtocolError,
    /// An Authentication Method: we offer no enhanced authentication (§4.12).
    BadAuthenticationMethod,
}

impl Early {
    /// The MQTT 5 CONNACK reason code; `None`: close without a CONNACK.
    pub fn reason_code(self) -> Option<ConnectReasonCode> {
        match self {
            Early::NotConnect => None,
            Early::TooLarge => Some(ConnectReasonCode::PacketTooLarge),
            Early::Busy => Some(ConnectReasonCode::ServerBusy),
            Early::Malformed => Some(ConnectReasonCode::MalformedPacket),
            Early::ProtocolError => Some(ConnectReasonCode::ProtocolError),
            Early::BadAuthenticationMethod => Some(ConnectReasonCode::BadAuthenticationMethod),
        }
    }

    /// The bytes to send before closing: an MQTT 5 CONNACK when the client
    /// speaks MQTT 5 (`level` 5); nothing for 3.1.1, which has no code for
    /// these (MQTT 3.1.1 §3.1.4: close the connection).
    pub fn reply(self, level: Option<u8>) -> Option<Vec<u8>> {
        let code = self.reason_code()?;
        if level != Some(5) {
            return None;
        }
        let connack = v5_0::Connack::builder()
            .session_present(false)
            .reason_code(code)
            .build()
            .ok()?;
        Some(connack.to_continuous_buffer())
    }
}

/// How far [`ConnectReader`] got.
#[derive(Debug)]
pub enum Progress {
    /// Read at most [`ConnectReader::want`] bytes more.
    More,
    /// The whole CONNECT, fixed header included.
    Connect(Vec<u8>),
    /// Refuse; `level` is the protocol level when it was read.
    Refuse { why: Early, level: Option<u8> },
}

#[derive(Debug)]
enum State {
    Header,
    Length {
        value: u32,
        bytes: u8,
    },
    Body {
        buf: Vec<u8>,
        left: usize,
    },
    /// Too large: read the 7 bytes up to the protocol level, only to answer in
    /// the client's version, and only if they have already arrived (see
    /// [`ConnectReader::give_up`]): the refusal does not wait for the client.
    Probe {
        head: Vec<u8>,
    },
    Done,
}

/// Bytes before the protocol level: length-prefixed "MQTT" (MQTT 5 §3.1.2.1).
const PROBE: usize = 7;

/// Reads one CONNECT within a size limit and the shared budget.
pub struct ConnectReader {
    state: State,
    header: Vec<u8>,
    limit: u32,
    budget: Arc<Semaphore>,
    /// The budget taken for this CONNECT, returned when the reader is dropped.
    _charge: Option<OwnedSemaphorePermit>,
}

impl ConnectReader {
    pub fn new(limit: u32, budget: Arc<Semaphore>) -> Self {
        ConnectReader {
            state: State::Header,
            header: Vec::with_capacity(5),
            limit,
            budget,
            _charge: None,
        }
    }

    /// The most bytes to read next: never beyond the end of the CONNECT, so
    /// nothing the client sends after it is read before it is authenticated.
    pub fn want(&self) -> usize {
        match &self.state {
            State::Header | State::Length { .. } => 1,
            State::Body { left, .. } => *left,
            State::Probe { head } => PROBE - head.len(),
            State::Done => 0,
        }
    }

    /// Whether the CONNECT is too large and only its protocol level is sought.
    pub fn probing(&self) -> bool {
        matches!(self.state, State::Probe { .. })
    }

    /// Gives up seeking the protocol level of a too large CONNECT: it is
    /// refused without knowing the version (closed without a CONNACK).
    pub fn give_up(&mut self) -> Progress {
        self.refuse(Early::TooLarge, None)
    }

    /// Takes bytes read (at most [`want`](Self::want) of them).
    pub fn push(&mut self, data: &[u8]) -> Progress {
        let mut i = 0;
        while i < data.len() {
            match &mut self.state {
                State::Header => {
                    // CONNECT with its reserved flags 0 (MQTT 5 §2.1.3).
                    if data[i] != 0x10 {
                        return self.refuse(Early::NotConnect, None);
                    }
                    self.header.push(data[i]);
                    self.state = State::Length { value: 0, bytes: 0 };
                    i += 1;
                }
                State::Length { value, bytes } => {
                    let b = data[i];
                    i += 1;
                    self.header.push(b);
                    *value |= u32::from(b & 0x7F) << (7 * u32::from(*bytes));
                    *bytes += 1;
                    if b & 0x80 != 0 {
                        if *bytes == 4 {
                            return self.refuse(Early::NotConnect, None);
                        }
                        continue;
                    }
                    let body = *value as usize;
                    let total = self.header.len() + body;
                    if total > self.limit as usize {
                        self.state = State::Probe {
                            head: Vec::with_capacity(PROBE),
                        };
                        continue;
                    }
                    // Charged before any buffer for the body exists.
                    let charge = u32::try_from(total).unwrap_or(u32::MAX);
                    match self.budget.clone().try_acquire_many_owned(charge) {
                        Ok(permit) => self._charge = Some(permit),
                        Err(_) => return self.refuse(Early::Busy, None),
                    }
                    let mut buf = Vec::with_capacity(total);
                    buf.extend_from_slice(&self.header);
                    self.state = State::Body { buf, left: body };
                    if body == 0 {
                        break;
                    }
                }
                State::Body { left: 0, .. } | State::Done => break,
                State::Body { buf, left } => {
                    let n = (*left).min(data.len() - i);
                    buf.extend_from_slice(&data[i..i + n]);
                    *left -= n;
                    i += n;
                }
                State::Probe { head } => {
                    let n = (PROBE - head.len()).min(data.len() - i);
                    head.extend_from_slice(&data[i..i + n]);
                    i += n;
                    if head.len() == PROBE {
                        let level = (head[..6] == *b"\x00\x04MQTT").then_some(head[6]);
                        return self.refuse(Early::TooLarge, level);
                    }
                }
            }
        }
        match &mut self.state {
            State::Body { buf, left: 0 } => {
                let connect = std::mem::take(buf);
                self.state = State::Done;
                Progress::Connect(connect)
            }
            _ => Progress::More,
        }
    }

    fn refuse(&mut self, why: Early, level: Option<u8>) -> Progress {
        self.state = State::Done;
        Progress::Refuse { why, level }
    }
}

/// A CONNECT that passed [`check`].
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// The bytes to hand to the codec.
    pub bytes: Vec<u8>,
    /// MQTT 5: the client's Receive Maximum, taken out of `bytes` (65,535
    /// when absent, §3.1.2.11.3); the broker enforces it, not the codec.
    pub receive_maximum: u16,
}

/// Validates a complete CONNECT (fixed header included) for what the codec
/// misses, and returns the bytes to hand to the codec, without two MQTT 5
/// properties the codec mishandles (decision record 0015):
/// - Topic Alias Maximum 0 (absent means 0, §3.1.2.11.5): the codec panics on it;
/// - Receive Maximum: the codec does not count messages restored from a
///   resumed session in its window, and its counter underflows on their
///   acknowledgement (a panic in debug builds, a window that stays shut in
///   release); the broker counts them instead.
///
/// What does not parse here is left to the codec, which reports it.
pub fn check(connect: Vec<u8>) -> Result<Checked, (Early, Option<u8>)> {
    let unchanged = |bytes| {
        Ok(Checked {
            bytes,
            receive_maximum: u16::MAX,
        })
    };
    let Some(body_at) = body_start(&connect) else {
        return unchanged(connect);
    };
    let body = &connect[body_at..];
    // Protocol name (2 + 4), level, flags, keep alive (MQTT 5 §3.1.2).
    if body.len() < 10 || body[..6] != *b"\x00\x04MQTT" {
        return unchanged(connect);
    }
    let level = body[6];
    if level != 4 && level != 5 {
        return unchanged(connect);
    }
    let flags = body[7];
    let will = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    // The reserved flag must be 0 [MQTT-3.1.2-3]; will QoS 3 is malformed
    // [MQTT-3.1.2-12] (3.1.1: -14); without the will flag, will QoS and will
    // retain must be 0 [MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1: -13, -15).
    if flags & 1 != 0 || will_qos == 3 || (!will && (will_qos != 0 || will_retain)) {
        return Err((Early::Malformed, Some(level)));
    }
    if level != 5 {
        return unchanged(connect);
    }
    let props_at = body_at + 10;
    let Some((props_len, len_size)) = read_vbi(&connect[props_at..]) else {
        return unchanged(connect);
    };
    let list_at = props_at + len_size;
    let Some(list) = connect.get(list_at..list_at + props_len as usize) else {
        return unchanged(connect);
    };
    let mut drops = Vec::new();
    let mut receive_maximum = u16::MAX;
    let mut at = 0;
    while at < list.len() {
        let id = list[at];
        let Some(size) = property_size(id, &list[at + 1..]) else {
            // Unknown or truncated: the codec's parse reports it.
            return unchanged(connect);
        };
        let value = &list[at + 1..at + 1 + size];
        let zero = value.iter().all(|b| *b == 0);
        match id {
            // Receive Maximum 0, Maximum Packet Size 0: protocol errors
            // (MQTT 5 §3.1.2.11.3, §3.1.2.11.4), not "unspecified".
            0x21 | 0x27 if zero => return Err((Early::ProtocolError, Some(5))),
            // Authentication Method: enhanced authentication is not offered
            // (§3.1.2.11.9, §4.12: 0x8C Bad authentication method).
            0x15 => return Err((Early::BadAuthenticationMethod, Some(5))),
            0x22 if zero => drops.push((list_at + at, 1 + size)),
            0x21 => {
                receive_maximum = u16::from_be_bytes([value[0], value[1]]);
                drops.push((list_at + at, 1 + size));
            }
            _ => {}
        }
        at += 1 + size;
    }
    let bytes = if drops.is_empty() {
        connect
    } else {
        without(&connect, body_at, props_at, list_at, &drops)
    };
    Ok(Checked {
        bytes,
        receive_maximum,
    })
}

/// Where the body starts, after the fixed header and its Remaining Length.
fn body_start(packet: &[u8]) -> Option<usize> {
    let (_, size) = read_vbi(packet.get(1..)?)?;
    Some(1 + size)
}

/// A variable byte integer (MQTT 5 §1.5.5): its value and its size in bytes.
fn read_vbi(data: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, b) in data.iter().take(4).enumerate() {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The size of a property's value (MQTT 5 §2.2.2.2), or None for an unknown
/// identifier or a value cut short.
fn property_size(id: u8, rest: &[u8]) -> Option<usize> {
    let prefixed = |rest: &[u8]| -> Option<usize> {
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        Some(2 + len)
    };
    let size = match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
        0x13 | 0x21 | 0x22 | 0x23 => 2,
        0x02 | 0x11 | 0x18 | 0x27 => 4,
        0x0B => read_vbi(rest)?.1,
        0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => prefixed(rest)?,
        0x26 => {
            let key = prefixed(rest)?;
            key + prefixed(rest.get(key..)?)?
        }
        _ => return None,
    };
    (rest.len() >= size).then_some(size)
}

/// `packet` without the `(from, len)` byte ranges (inside the property list,
/// in order), with the Property Length and Remaining Length re-encoded.
fn without(
    packet: &[u8],
    body_at: usize,
    props_at: usize,
    list_at: usize,
    drops: &[(usize, usize)],
) -> Vec<u8> {
    let dropped: usize = drops.iter().map(|(_, len)| len).sum();
    let old_list = read_vbi(&packet[props_at..]).map_or(0, |(v, _)| v as usize);
    let mut props_len = Vec::with_capacity(4);
    super::encode::push_remaining_length(&mut props_len, old_list - dropped);
    let body_len = (packet.len() - body_at) - dropped - (list_at - props_at) + props_len.len();
    let mut out = Vec::with_capacity(packet.len());
    out.push(packet[0]);
    super::encode::push_remaining_length(&mut out, body_len);
    out.extend_from_slice(&packet[body_at..props_at]);
    out.extend_from_slice(&props_len);
    let mut at = list_at;
    for (from, len) in drops {
        out.extend_from_slice(&packet[at..*from]);
        at = from + len;
    }
    out.extend_from_slice(&packet[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::{
        v5_0, ReceiveMaximum, SessionExpiryInterval, TopicAliasMaximum,
    };

    fn reader(limit: u32, budget: usize) -> ConnectReader {
        ConnectReader::new(limit, Arc::new(Semaphore::new(budget)))
    }

    /// Feeds `bytes` as a client would, at most `want` at a time.
    fn read_all(r: &mut ConnectReader, bytes: &[u8]) -> Progress {
        let mut at = 0;
        loop {
            let n = r.want().min(bytes.len() - at);
            let p = r.push(&bytes[at..at + n]);
            at += n;
            if !matches!(p, Progress::More) || at == bytes.len() {
                return p;
            }
        }
    }

    fn v5_connect(props: Vec<mqtt_protocol_core::mqtt::packet::Property>) -> Vec<u8> {
        let mut b = v5_0::Connect::builder().client_id("c").expect("id");
        if !props.is_empty() {
            b = b.props(props);
        }
        b.build().expect("connect").to_continuous_buffer()
    }

    #[test]
    fn reads_exactly_one_connect() {
        let c = v5_connect(Vec::new());
        let mut r = reader(1024, 1024);
        match read_all(&mut r, &c) {
            Progress::Connect(got) => assert_eq!(got, c),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.want(), 0);
    }

    #[test]
    fn refuses_a_large_remaining_length_before_the_body() {
        // Remaining Length 1 MB, then the protocol name and level 5.
        let mut bytes = vec![0x10, 0x80, 0x80, 0x40];
        bytes.extend_from_slice(b"\x00\x04MQTT\x05");
        let mut r = reader(64 * 1024, 1 << 20);
        match read_all(&mut r, &bytes) {
            Progress::Refuse { why, level } => {
                assert_eq!((why, level), (Early::TooLarge, Some(5)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_budget_bounds_what_connections_hold_together() {
        let budget = Arc::new(Semaphore::new(100));
        let head = [0x10, 60];
        let mut a = ConnectReader::new(1024, budget.clone());
        assert!(matches!(read_all(&mut a, &head), Progress::More));
        let mut b = ConnectReader::new(1024, budget.clone());
        assert!(matches!(
            read_all(&mut b, &head),
            Progress::Refuse {
                why: Early::Busy,
                ..
            }
        ));
        drop(a);
        let mut c = ConnectReader::new(1024, budget);
        assert!(matches!(read_all(&mut c, &head), Progress::More));
    }

    #[test]
    fn other_first_packets_are_refused() {
        let mut r = reader(1024, 1024);
        assert!(matches!(
            r.push(&[0x30]),
            Progress::Refuse {
                why: Early::NotConnect,
                ..
            }
        ));
    }

    #[test]
    fn topic_alias_maximum_0_and_receive_maximum_are_taken_out() {
        let tam = |n| TopicAliasMaximum::new(n).expect("tam").into();
        let rm = ReceiveMaximum::new(7).expect("rm").into();
        let expiry = || SessionExpiryInterval::new(9).expect("expiry").into();
        let checked = check(v5_connect(vec![tam(0), expiry(), rm])).expect("ok");
        assert_eq!(checked.bytes, v5_connect(vec![expiry()]));
        assert_eq!(checked.receive_maximum, 7);
        let five = v5_connect(vec![tam(5)]);
        let checked = check(five.clone()).expect("ok");
        assert_eq!((checked.bytes, checked.receive_maximum), (five, u16::MAX));
    }

    #[test]
    fn connect_flags_are_checked() {
        let mut c = v5_connect(Vec::new());
        let flags_at = 2 + 7;
        c[flags_at] |= 1; // reserved
        assert_eq!(check(c.clone()), Err((Early::Malformed, Some(5))));
        c[flags_at] &= !1;
        c[flags_at] |= 0b0001_1000; // will QoS 3 without a will
        assert_eq!(check(c), Err((Early::Malformed, Some(5))));
    }

    proptest::proptest! {
        /// Any bytes: the reader and the check answer, never panic, and the
        /// reader never asks for more than the limit.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut r = reader(256, 1024);
            let mut at = 0;
            while at < bytes.len() && r.want() > 0 {
                proptest::prop_assert!(r.want() <= 256);
                let n = r.want().min(bytes.len() - at);
                if let Progress::Connect(c) = r.push(&bytes[at..at + n]) {
                    let _ = check(c);
                }
                at += n;
            }
            let _ = check(bytes);
        }

        /// A valid CONNECT with one byte changed: the check answers, never panics.
        #[test]
        fn mutated_connects_never_panic(at in 0usize..64, byte in proptest::num::u8::ANY) {
            let mut c = v5_connect(vec![
                TopicAliasMaximum::new(0).expect("tam").into(),
                ReceiveMaximum::new(3).expect("rm").into(),
            ]);
            let at = at % c.len();
            c[at] = byte;
            let _ = check(c);
        }
    }
}
