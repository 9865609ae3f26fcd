//! A field-level model of MQTT packets for the fuzzer.
//!
//! The codec crate's builders refuse to encode what is not valid, so the
//! fuzzer keeps each packet as a list of typed fields it can encode itself:
//! a mutation can then change one field (a length, a flag, a property value)
//! and leave the rest of the packet well formed, which reaches far deeper into
//! the broker than flipping bytes of an encoded packet.

/// One field of a packet's variable header or payload.
#[derive(Debug, Clone)]
pub enum Field {
    U8(u8),
    U16(u16),
    U32(u32),
    /// A Variable Byte Integer, encoded minimally (values over 268,435,455
    /// give the 5-byte encodings the specification forbids).
    VarInt(u64),
    /// A UTF-8 string or binary data with its 2-byte length prefix.
    /// `len` overrides the prefix (a lying length).
    Str {
        bytes: Vec<u8>,
        len: Option<u16>,
    },
    /// A property list with its length prefix; `len` overrides the prefix.
    Props {
        props: Vec<Prop>,
        len: Option<u64>,
    },
    /// Bytes written as they are (a payload, or a field's value gone wrong).
    Raw(Vec<u8>),
}

/// One MQTT 5 property: identifier and value (whose type the fuzzer may get wrong).
#[derive(Debug, Clone)]
pub struct Prop {
    pub id: u64,
    pub value: Field,
}

/// A packet: the first byte (type and flags), the fields, and optionally a
/// lying Remaining Length.
#[derive(Debug, Clone)]
pub struct Packet {
    pub first: u8,
    pub fields: Vec<Field>,
    pub remaining: Option<u64>,
}

impl Packet {
    pub fn new(first: u8, fields: Vec<Field>) -> Packet {
        Packet {
            first,
            fields,
            remaining: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for f in &self.fields {
            f.encode(&mut body);
        }
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(self.first);
        varint(self.remaining.unwrap_or(body.len() as u64), &mut out);
        out.extend(body);
        out
    }
}

impl Field {
    pub fn str(s: impl AsRef<[u8]>) -> Field {
        Field::Str {
            bytes: s.as_ref().to_vec(),
            len: None,
        }
    }

    pub fn props(props: Vec<Prop>) -> Field {
        Field::Props { props, len: None }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Field::U8(v) => out.push(*v),
            Field::U16(v) => out.extend(v.to_be_bytes()),
            Field::U32(v) => out.extend(v.to_be_bytes()),
            Field::VarInt(v) => varint(*v, out),
            Field::Str { bytes, len } => {
                let n = len.unwrap_or(bytes.len().min(u16::MAX as usize) as u16);
                out.extend(n.to_be_bytes());
                out.extend(bytes);
            }
            Field::Props { props, len } => {
                let mut body = Vec::new();
                for p in props {
                    varint(p.id, &mut body);
                    p.value.encode(&mut body);
                }
                varint(len.unwrap_or(body.len() as u64), out);
                out.extend(body);
            }
            Field::Raw(b) => out.extend(b),
        }
    }
}

/// Variable Byte Integer, 7 bits a byte, low first. Values of 2^28 and more
/// take 5 bytes or more: a malformed length the broker must refuse.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            return;
        }
    }
}

/// The value type of each MQTT 5 property (§2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    Byte,
    U16,
    U32,
    VarInt,
    Utf8,
    Binary,
    Pair,
}

/// Every MQTT 5 property: identifier, type, and the largest value the
/// specification allows (the fuzzer tries 0, 1, that maximum and one more).
pub const PROPERTIES: &[(u64, PropType, u64)] = &[
    (0x01, PropType::Byte, 1),              // Payload Format Indicator
    (0x02, PropType::U32, u32::MAX as u64), // Message Expiry Interval
    (0x03, PropType::Utf8, 65_535),         // Content Type
    (0x08, PropType::Utf8, 65_535),         // Response Topic
    (0x09, PropType::Binary, 65_535),       // Correlation Data
    (0x0B, PropType::VarInt, 268_435_455),  // Subscription Identifier
    (0x11, PropType::U32, u32::MAX as u64), // Session Expiry Interval
    (0x12, PropType::Utf8, 65_535),         // Assigned Client Identifier
    (0x13, PropType::U16, u16::MAX as u64), // Server Keep Alive
    (0x15, PropType::Utf8, 65_535),         // Authentication Method
    (0x16, PropType::Binary, 65_535),       // Authentication Data
    (0x17, PropType::Byte, 1),              // Request Problem Information
    (0x18, PropType::U32, u32::MAX as u64), // Will Delay Interval
    (0x19, PropType::Byte, 1),              // Request Response Information
    (0x1A, PropType::Utf8, 65_535),         // Response Information
    (0x1C, PropType::Utf8, 65_535),         // Server Reference
    (0x1F, PropType::Utf8, 65_535),         // Reason String
    (0x21, PropType::U16, u16::MAX as u64), // Receive Maximum
    (0x22, PropType::U16, u16::MAX as u64), // Topic Alias Maximum
    (0x23, PropType::U16, u16::MAX as u64), // Topic Alias
    (0x24, PropType::Byte, 1),              // Maximum QoS
    (0x25, PropType::Byte, 1),              // Retain Available
    (0x26, PropType::Pair, 65_535),         // User Property
    (0x27, PropType::U32, u32::MAX as u64), // Maximum Packet Size
    (0x28, PropType::Byte, 1),              // Wildcard Subscription Available
    (0x29, PropType::Byte, 1),              // Subscription Identifier Available
    (0x2A, PropType::Byte, 1),              // Shared Subscription Available
];

pub fn prop_type(id: u64) -> Option<(PropType, u64)> {
    PROPERTIES
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, t, m)| (*t, *m))
}

/// The field holding `v` for a property of type `t`. A value that does not fit
/// the type (the "max + 1" of a full-width type) is written one byte too long,
/// so the packet's lengths stay consistent and the broker sees the overflow.
pub fn prop_value(t: PropType, v: u64) -> Field {
    let string = |n: u64| {
        // Strings and binary: `v` is the length; 65,536 bytes behind a 65,535 prefix.
        let bytes = vec![b'x'; n as usize];
        Field::Str {
            len: Some(n.min(u16::MAX as u64) as u16),
            bytes,
        }
    };
    match t {
        PropType::Byte if v <= u8::MAX as u64 => Field::U8(v as u8),
        PropType::U16 if v <= u16::MAX as u64 => Field::U16(v as u16),
        PropType::U32 if v <= u32::MAX as u64 => Field::U32(v as u32),
        PropType::Byte | PropType::U16 | PropType::U32 => {
            let mut b = v.to_be_bytes().to_vec();
            while b.len() > 1 && b[0] == 0 {
                b.remove(0);
            }
            Field::Raw(b)
        }
        PropType::VarInt => Field::VarInt(v),
        PropType::Utf8 | PropType::Binary => string(v),
        PropType::Pair => {
            let mut k = Vec::new();
            string(v).encode(&mut k);
            Field::str(b"v").encode(&mut k);
            Field::Raw(k)
        }
    }
}

/// Packet type nibbles.
pub mod kind {
    pub const CONNECT: u8 = 0x10;
    pub const PUBLISH: u8 = 0x30;
    pub const PUBACK: u8 = 0x40;
    pub const PUBREC: u8 = 0x50;
    pub const PUBREL: u8 = 0x62;
    pub const PUBCOMP: u8 = 0x70;
    pub const SUBSCRIBE: u8 = 0x82;
    pub const UNSUBSCRIBE: u8 = 0xA2;
    pub const PINGREQ: u8 = 0xC0;
    pub const DISCONNECT: u8 = 0xE0;
    pub const AUTH: u8 = 0xF0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_encodings() {
        let enc = |v| {
            let mut o = Vec::new();
            varint(v, &mut o);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(268_435_455), [0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(enc(268_435_456), [0x80, 0x80, 0x80, 0x80, 0x01]);
    }

    #[test]
    fn pingreq_and_a_connect_encode_as_the_specification_shows() {
        assert_eq!(Packet::new(kind::PINGREQ, vec![]).encode(), [0xc0, 0x00]);
        let c = Packet::new(
            kind::CONNECT,
            vec![
                Field::str("MQTT"),
                Field::U8(5),
                Field::U8(0x02),
                Field::U16(0),
                Field::props(vec![]),
                Field::str("f"),
            ],
        );
        assert_eq!(
            c.encode(),
            [0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 0, 0, 0, 1, b'f']
        );
    }
}
