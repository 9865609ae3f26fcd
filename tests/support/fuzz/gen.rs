//! Generators of valid MQTT 3.1.1 and 5 packets, topics and filters, and the
//! field- and byte-level mutations applied to them.

use super::wire::{kind, prop_type, prop_value, Field, Packet, Prop, PropType, PROPERTIES};
use proptest::prelude::RngExt;
use proptest::test_runner::TestRng;

/// Generators of inputs that once crashed the broker (issue 11), each switched on
/// in [`super::KNOWN_CRASHES`] since its fix was merged; off, they let a run check
/// the rest of the broker alone.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Topics and filters of thousands of levels: a subscription of ~5,500 levels
    /// overflowed a worker's stack and aborted the process (issue 11, item 1; fixed
    /// by iterative level walks and `maxTopicLevels`).
    pub deep_topics: bool,
    /// Topic Alias Maximum = 0 in CONNECT: it panicked inside the codec
    /// (`TopicAliasSend::new`, issue 11, item 2; fixed by the CONNECT check in
    /// front of the codec, `broker::preauth`).
    pub topic_alias_maximum_zero: bool,
}

impl Knobs {
    /// Every known-crash generator off.
    pub const OFF: Knobs = Knobs {
        deep_topics: false,
        topic_alias_maximum_zero: false,
    };
}

/// Levels of the deepest topic generated while `deep_topics` is off: deep
/// enough to exercise the topic code, far from where the stack once overflowed.
pub const SHALLOW_LEVELS: usize = 200;

/// MQTT protocol versions the fuzzer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

pub struct Gen<'r> {
    pub rng: &'r mut TestRng,
    pub knobs: Knobs,
    next_pid: u16,
}

/// Client identifiers shared by all connections of all cases, so that cases
/// take over each other's sessions.
const CLIENT_IDS: &[&str] = &["f0", "f1", "f2", "f3", "f4", ""];
const TOPICS: &[&str] = &[
    "a",
    "a/b",
    "a/b/c",
    "telemetry/f1/x",
    "clients/admin/status",
    "/",
    "//",
    "a//b",
    "/a",
    "a/",
    "$SYS/broker",
    "$share/g/a",
    "$x",
    "é/ü/💡",
    " ",
];
const FILTERS: &[&str] = &[
    "#",
    "+",
    "a/#",
    "a/+",
    "+/+",
    "/#",
    "+/b/#",
    "telemetry/f1/#",
    "clients/+/status",
    "$SYS/#",
    "$share/g/a/#",
    "$share/g/#",
    "$share/g2/+",
    "$share//a",
    "$share/g",
    "$share/+/a",
    "$share/g#/a",
    "a/#/b",
    "#/a",
    "a+",
    "a/b#",
    "++",
    "",
    "/",
    "//#",
];
/// Reason codes a client may send in DISCONNECT (§3.14.2.1).
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
];

impl<'r> Gen<'r> {
    pub fn new(rng: &'r mut TestRng, knobs: Knobs) -> Self {
        Gen {
            rng,
            knobs,
            next_pid: 1,
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn pid(&mut self) -> u16 {
        let p = self.next_pid;
        self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
        p
    }

    pub fn version(&mut self) -> Version {
        if self.chance(0.6) {
            Version::V5
        } else {
            Version::V311
        }
    }

    pub fn client_id(&mut self) -> Vec<u8> {
        match self.below(10) {
            0 => self.text(1, 64),
            1 => vec![b'i'; self.rng.random_range(23..=65_535)],
            _ => self.pick(CLIENT_IDS).as_bytes().to_vec(),
        }
    }

    /// Random printable text, sometimes with a UTF-8 character of several bytes.
    fn text(&mut self, min: usize, max: usize) -> Vec<u8> {
        let n = self.rng.random_range(min..=max);
        let mut s = String::with_capacity(n);
        while s.len() < n {
            match self.below(20) {
                0 => s.push('é'),
                1 => s.push('💡'),
                _ => s.push(char::from(b'a' + self.below(26) as u8)),
            }
        }
        s.into_bytes()
    }

    fn levels(&mut self, n: usize, wild: bool) -> Vec<u8> {
        let mut t = Vec::new();
        for i in 0..n {
            if i > 0 {
                t.push(b'/');
            }
            match self.below(if wild { 12 } else { 8 }) {
                0 => {}                                  // an empty level
                1 if wild => t.push(b'+'),               // single-level wildcard
                2 if wild && i + 1 == n => t.push(b'#'), // multi-level, last
                _ => t.push(b'a' + self.below(3) as u8),
            }
        }
        t
    }

    /// A topic name: a common one, a random one, a deep or a long one.
    pub fn topic(&mut self) -> Vec<u8> {
        match self.below(16) {
            0 => self.deep(false),
            1 => self.long_level(),
            2 | 3 => {
                let n = self.rng.random_range(1..=8);
                self.levels(n, false)
            }
            4 => {
                let mut t = b"$".to_vec();
                t.extend(self.text(0, 8));
                t
            }
            _ => self.pick(TOPICS).as_bytes().to_vec(),
        }
    }

    /// A topic filter, sometimes with wildcards in odd places or shared.
    pub fn filter(&mut self) -> Vec<u8> {
        match self.below(16) {
            0 => self.deep(true),
            1 => self.long_level(),
            2 | 3 => {
                let n = self.rng.random_range(1..=8);
                self.levels(n, true)
            }
            4 => {
                let mut f = b"$share/".to_vec();
                f.extend(self.text(0, 4));
                f.push(b'/');
                f.extend(self.filter());
                f
            }
            5 => self.topic(),
            _ => self.pick(FILTERS).as_bytes().to_vec(),
        }
    }

    /// Thousands of levels when `deep_topics` is on, else at most [`SHALLOW_LEVELS`].
    fn deep(&mut self, wild: bool) -> Vec<u8> {
        let n = if self.knobs.deep_topics {
            *self.pick(&[1_000, 5_500, 6_000, 13_500, 20_000, 32_000])
        } else {
            self.rng.random_range(20..=SHALLOW_LEVELS)
        };
        let mut t = match self.below(3) {
            0 => b"telemetry/f1/".to_vec(),
            1 => b"a/".to_vec(),
            _ => Vec::new(),
        };
        if self.chance(0.5) {
            // Each level one character: the most levels for the bytes.
            t.extend(self.levels(n, wild));
        } else {
            t.extend(std::iter::repeat_n(b"a/".as_slice(), n - 1).flatten());
            t.push(if wild { b'#' } else { b'a' });
        }
        t
    }

    /// One level of up to 65,535 bytes (the longest a string can be).
    fn long_level(&mut self) -> Vec<u8> {
        let n = *self.pick(&[256, 257, 4_096, 65_534, 65_535]);
        let mut t = b"a/".to_vec();
        t.resize(n, b'x');
        t
    }

    /// A valid property of `id` with a plausible value.
    fn valid_prop(&mut self, id: u64) -> Prop {
        let Some((t, max)) = prop_type(id) else {
            return Prop {
                id,
                value: Field::U8(0),
            };
        };
        let v = match (id, t) {
            (0x0B, _) => self.rng.random_range(1..=max),
            (0x11, _) => *self.pick(&[0, 1, 2, 5, u32::MAX as u64]),
            (0x18, _) => *self.pick(&[0, 1, 2, 3, u32::MAX as u64]),
            (0x02, _) => *self.pick(&[1, 2, 60, u32::MAX as u64]),
            (0x21, _) => *self.pick(&[1, 2, 10, 65_535]),
            (0x22, _) => {
                let zero = self.knobs.topic_alias_maximum_zero;
                *self.pick(if zero {
                    &[0, 1, 10, 65_535]
                } else {
                    &[1, 10, 65_535]
                })
            }
            (0x23, _) => self.rng.random_range(1..=10),
            (0x27, _) => *self.pick(&[1, 5, 64, 1_024, 65_536, u32::MAX as u64]),
            (_, PropType::Byte) => self.rng.random_range(0..=max),
            (_, PropType::Utf8 | PropType::Binary | PropType::Pair) => {
                self.rng.random_range(0..=16)
            }
            (_, _) => self.rng.random_range(0..=max.min(1_000)),
        };
        Prop {
            id,
            value: prop_value(t, v),
        }
    }

    fn utf8_prop(&mut self, id: u64, s: Vec<u8>) -> Prop {
        Prop {
            id,
            value: Field::str(s),
        }
    }

    fn user_props(&mut self, props: &mut Vec<Prop>) {
        for _ in 0..self.below(3) {
            let mut pair = Vec::new();
            for s in [self.text(0, 8), self.text(0, 8)] {
                pair.extend((s.len() as u16).to_be_bytes());
                pair.extend(s);
            }
            props.push(Prop {
                id: 0x26,
                value: Field::Raw(pair),
            });
        }
    }

    /// Some of `ids`, each a valid value, and user properties.
    fn props_from(&mut self, ids: &[u64]) -> Vec<Prop> {
        let mut props = Vec::new();
        for &id in ids {
            if self.chance(0.3) {
                props.push(self.valid_prop(id));
            }
        }
        self.user_props(&mut props);
        props
    }

    pub fn connect(&mut self, v: Version, client_id: &[u8], user: Option<&str>) -> Packet {
        let will = self.chance(0.4);
        let will_qos = self.below(3) as u8;
        let will_retain = self.chance(0.3);
        let password = self.chance(0.2);
        let clean = self.chance(0.6);
        let mut flags = 0u8;
        if user.is_some() {
            flags |= 0x80;
        }
        if password {
            flags |= 0x40;
        }
        if will {
            flags |= 0x04 | (will_qos << 3) | if will_retain { 0x20 } else { 0 };
        }
        if clean {
            flags |= 0x02;
        }
        let keep_alive = *self.pick(&[0u16, 0, 1, 2, 60, 65_535]);
        let mut fields = vec![
            Field::str("MQTT"),
            Field::U8(if v == Version::V5 { 5 } else { 4 }),
            Field::U8(flags),
            Field::U16(keep_alive),
        ];
        if v == Version::V5 {
            let mut props = self.props_from(&[0x11, 0x21, 0x27, 0x22, 0x19, 0x17]);
            if self.chance(0.05) {
                props.push(self.utf8_prop(0x15, b"SCRAM-SHA-1".to_vec()));
                if self.chance(0.5) {
                    props.push(self.valid_prop(0x16));
                }
            }
            fields.push(Field::props(props));
        }
        fields.push(Field::str(client_id));
        if will {
            if v == Version::V5 {
                let mut wp = self.props_from(&[0x18, 0x01, 0x02, 0x03, 0x09]);
                if self.chance(0.2) {
                    let t = self.topic();
                    wp.push(self.utf8_prop(0x08, t));
                }
                fields.push(Field::props(wp));
            }
            fields.push(Field::str(self.topic()));
            fields.push(Field::str(self.payload()));
        }
        if let Some(u) = user {
            fields.push(Field::str(u));
        }
        if password {
            fields.push(Field::str(self.text(0, 16)));
        }
        Packet::new(kind::CONNECT, fields)
    }

    fn payload(&mut self) -> Vec<u8> {
        match self.below(20) {
            0 => vec![0xff; 70_000],
            1 => vec![],
            _ => self.text(0, 64),
        }
    }

    pub fn publish(&mut self, v: Version) -> Packet {
        let qos = self.below(3) as u8;
        let retain = self.chance(0.2);
        let dup = qos > 0 && self.chance(0.1);
        let first = kind::PUBLISH | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
        let mut topic = self.topic();
        let mut fields = Vec::new();
        let mut props = Vec::new();
        if v == Version::V5 {
            props = self.props_from(&[0x01, 0x02, 0x03, 0x09, 0x23]);
            if self.chance(0.1) {
                let t = self.topic();
                props.push(self.utf8_prop(0x08, t));
            }
            // An alias with an empty topic reuses what the alias was set to.
            if props.iter().any(|p| p.id == 0x23) && self.chance(0.5) {
                topic.clear();
            }
        }
        fields.push(Field::str(topic));
        if qos > 0 {
            let pid = self.pid();
            fields.push(Field::U16(pid));
        }
        if v == Version::V5 {
            fields.push(Field::props(props));
        }
        fields.push(Field::Raw(self.payload()));
        Packet::new(first, fields)
    }

    pub fn subscribe(&mut self, v: Version) -> Packet {
        let mut fields = vec![Field::U16(self.pid())];
        if v == Version::V5 {
            let p = self.props_from(&[0x0B]);
            fields.push(Field::props(p));
        }
        for _ in 0..self.rng.random_range(1..=4) {
            fields.push(Field::str(self.filter()));
            let mut opts = self.below(3) as u8;
            if v == Version::V5 {
                opts |= (self.below(2) as u8) << 2; // No Local
                opts |= (self.below(2) as u8) << 3; // Retain As Published
                opts |= (self.below(3) as u8) << 4; // Retain Handling
            }
            fields.push(Field::U8(opts));
        }
        Packet::new(kind::SUBSCRIBE, fields)
    }

    pub fn unsubscribe(&mut self, v: Version) -> Packet {
        let mut fields = vec![Field::U16(self.pid())];
        if v == Version::V5 {
            let p = self.props_from(&[]);
            fields.push(Field::props(p));
        }
        for _ in 0..self.rng.random_range(1..=3) {
            fields.push(Field::str(self.filter()));
        }
        Packet::new(kind::UNSUBSCRIBE, fields)
    }

    /// PUBACK, PUBREC, PUBREL or PUBCOMP for `pid`.
    pub fn ack(&mut self, v: Version, first: u8, pid: u16) -> Packet {
        let mut fields = vec![Field::U16(pid)];
        if v == Version::V5 && self.chance(0.5) {
            let codes: &[u8] = match first {
                kind::PUBREL | kind::PUBCOMP => &[0x00, 0x92],
                _ => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            };
            fields.push(Field::U8(*self.pick(codes)));
            if self.chance(0.5) {
                let mut p = Vec::new();
                if self.chance(0.5) {
                    let r = self.text(0, 32);
                    p.push(self.utf8_prop(0x1F, r));
                }
                self.user_props(&mut p);
                fields.push(Field::props(p));
            }
        }
        Packet::new(first, fields)
    }

    pub fn pingreq(&mut self) -> Packet {
        Packet::new(kind::PINGREQ, vec![])
    }

    pub fn disconnect(&mut self, v: Version) -> Packet {
        if v == Version::V311 || self.chance(0.2) {
            return Packet::new(kind::DISCONNECT, vec![]);
        }
        let mut fields = vec![Field::U8(*self.pick(DISCONNECT_REASONS))];
        if self.chance(0.5) {
            let mut p = self.props_from(&[0x11]);
            if self.chance(0.3) {
                let r = self.text(0, 32);
                p.push(self.utf8_prop(0x1F, r));
            }
            fields.push(Field::props(p));
        }
        Packet::new(kind::DISCONNECT, fields)
    }

    pub fn auth(&mut self) -> Packet {
        let mut fields = vec![Field::U8(*self.pick(&[0x00u8, 0x18, 0x19]))];
        let mut p = vec![self.utf8_prop(0x15, b"SCRAM-SHA-1".to_vec())];
        if self.chance(0.5) {
            p.push(self.valid_prop(0x16));
        }
        fields.push(Field::props(p));
        Packet::new(kind::AUTH, fields)
    }

    /// Changes one field of `p` to a value at or past a boundary.
    pub fn mutate_fields(&mut self, p: &mut Packet) {
        let is_connect = p.first & 0xF0 == kind::CONNECT;
        match self.below(9) {
            0 | 1 => {
                // Any property at 0, 1, its maximum or one past it; also in
                // packets where it is not allowed.
                let (id, t, max) = *self.pick(PROPERTIES);
                let v = *self.pick(&[0, 1, max, max + 1]);
                if is_connect && id == 0x22 && v == 0 && !self.knobs.topic_alias_maximum_zero {
                    return;
                }
                let prop = Prop {
                    id,
                    value: prop_value(t, v),
                };
                match self.props_field(p) {
                    Some(props) => props.push(prop),
                    None => p.fields.push(Field::props(vec![prop])),
                }
            }
            2 => {
                // A duplicated property, or an identifier nobody defined.
                if let Some(props) = self.props_field(p) {
                    if let Some(first) = props.first().cloned() {
                        props.push(first);
                    } else {
                        props.push(Prop {
                            id: 0x7F,
                            value: Field::U8(1),
                        });
                    }
                }
            }
            3 => {
                p.remaining = Some(*self.pick(&[0, 1, 2, 127, 128, 268_435_455, 268_435_456]));
            }
            4 => p.first = (p.first & 0xF0) | self.below(16) as u8,
            _ => {
                if p.fields.is_empty() {
                    p.fields.push(Field::Raw(vec![0]));
                }
                let i = self.below(p.fields.len());
                let mut f = p.fields[i].clone();
                self.mutate_field(&mut f);
                p.fields[i] = f;
                if self.chance(0.1) {
                    let f = p.fields[i].clone();
                    p.fields.insert(i, f);
                } else if self.chance(0.1) {
                    p.fields.remove(i);
                }
            }
        }
    }

    fn props_field<'p>(&mut self, p: &'p mut Packet) -> Option<&'p mut Vec<Prop>> {
        p.fields.iter_mut().find_map(|f| match f {
            Field::Props { props, .. } => Some(props),
            _ => None,
        })
    }

    fn mutate_field(&mut self, f: &mut Field) {
        match f {
            Field::U8(v) => *v = *self.pick(&[0, 1, 2, 3, 0x80, 0xff, v.wrapping_add(1)]),
            Field::U16(v) => *v = *self.pick(&[0, 1, 0x7fff, 0xffff, v.wrapping_sub(1)]),
            Field::U32(v) => *v = *self.pick(&[0, 1, u32::MAX, v.wrapping_add(1)]),
            Field::VarInt(v) => *v = *self.pick(&[0, 1, 268_435_455, 268_435_456, 1 << 35]),
            Field::Str { bytes, len } => match self.below(6) {
                0 => *len = Some(bytes.len().wrapping_add(1) as u16),
                1 => *len = Some(bytes.len().saturating_sub(1) as u16),
                2 => *len = Some(u16::MAX),
                3 => bytes.clear(),
                _ => {
                    // Not allowed in MQTT strings: NUL, overlong, surrogate,
                    // U+FFFF, a lone continuation byte; or a wildcard.
                    let bad: &[&[u8]] = &[
                        b"\0",
                        b"\xc0\x80",
                        b"\xed\xa0\x80",
                        b"\xef\xbf\xbf",
                        b"\x80",
                        b"#",
                        b"+",
                        b"\xff",
                    ];
                    let at = self.below(bytes.len() + 1);
                    let b = *self.pick(bad);
                    bytes.splice(at..at, b.iter().copied());
                }
            },
            Field::Props { props, len } => {
                if self.chance(0.5) || props.is_empty() {
                    *len = Some(*self.pick(&[0, 1, 255, 268_435_455, 268_435_456]));
                } else {
                    let i = self.below(props.len());
                    if self.chance(0.5) {
                        props[i].id = *self.pick(&[0, 4, 0x7F, 0x80, 0x4000]);
                    } else {
                        let mut v = props[i].value.clone();
                        self.mutate_field(&mut v);
                        props[i].value = v;
                    }
                }
            }
            Field::Raw(b) => {
                if b.is_empty() || self.chance(0.3) {
                    let extra = self.below(8);
                    b.extend((0..extra).map(|_| self.below(256) as u8));
                } else {
                    let i = self.below(b.len());
                    b[i] = self.below(256) as u8;
                }
            }
        }
    }

    /// Byte-level damage to an encoded packet: truncation, duplication, flips.
    pub fn mutate_bytes(&mut self, b: &mut Vec<u8>) {
        if b.is_empty() {
            return;
        }
        match self.below(5) {
            0 => {
                let n = self.below(b.len());
                b.truncate(n);
            }
            1 => {
                let from = self.below(b.len());
                let to = from + self.below(b.len() - from) + 1;
                let part = b[from..to].to_vec();
                b.splice(to..to, part);
            }
            2 => {
                for _ in 0..=self.below(4) {
                    let i = self.below(b.len());
                    b[i] ^= 1 << self.below(8);
                }
            }
            3 => {
                let i = self.below(b.len());
                b[i] = self.below(256) as u8;
            }
            _ => {
                let at = self.below(b.len() + 1);
                let extra: Vec<u8> = (0..=self.below(8)).map(|_| self.below(256) as u8).collect();
                b.splice(at..at, extra);
            }
        }
    }
}
