//! One fuzz case: several connections, each a script of packets (valid, then
//! some mutated) and an ending, generated from one seed.

use super::gen::{Gen, Knobs, Version};
use super::wire::{kind, Packet};
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// What a connection does, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes to write (one packet, possibly mutated, or the rest of a stream).
    Send { bytes: Vec<u8>, mutated: bool },
    /// Acknowledge the oldest PUBLISH/PUBREC/PUBREL the broker sent that still
    /// waits for one; `fallback` (with its own packet identifier) when none does.
    /// Its reason code and properties are reused for the real acknowledgement.
    Ack { fallback: Packet },
    /// Wait before the next step, in milliseconds.
    Pause(u64),
}

/// How a connection ends once its steps are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Close the write side (FIN) and read until the broker closes.
    Close,
    /// Drop the socket with a TCP reset (linger 0).
    Reset,
    /// Keep the socket open until the case ends, then drop it.
    Leave,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub start_delay_ms: u64,
    pub steps: Vec<Step>,
    pub ending: Ending,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub scripts: Vec<Script>,
}

/// The generator of a case. Seeds of neighbouring cases differ in few bits, so
/// they are spread by SplitMix64 first: XorShift's first outputs would
/// otherwise be nearly the same for all of them.
pub fn rng(seed: u64) -> TestRng {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&next().to_le_bytes());
    s[8..].copy_from_slice(&next().to_le_bytes());
    TestRng::from_seed(RngAlgorithm::XorShift, &s)
}

/// Probability that a packet after CONNECT is mutated, and that CONNECT is.
const MUTATE_PACKET: f64 = 0.12;
const MUTATE_CONNECT: f64 = 0.10;

pub fn generate(seed: u64, knobs: Knobs) -> Case {
    let mut rng = rng(seed);
    let connections = rng.random_range(1..=4);
    let mut g = Gen::new(&mut rng, knobs);
    let scripts = (0..connections).map(|_| script(&mut g)).collect();
    Case { scripts }
}

fn script(g: &mut Gen) -> Script {
    let version = g.version();
    let client_id = g.client_id();
    let users = [
        Some("admin"),
        Some("admin"),
        Some("admin2"),
        Some("limited"),
        Some("nobody"),
        None,
    ];
    let user = users[g.below(users.len())];
    let mut steps = Vec::new();
    let connect = g.connect(version, &client_id, user);
    steps.push(send(g, connect, MUTATE_CONNECT));
    let n = g.below(14);
    for _ in 0..n {
        let step = match g.below(20) {
            0..=5 => {
                let p = g.publish(version);
                send(g, p, MUTATE_PACKET)
            }
            6..=8 => {
                let p = g.subscribe(version);
                send(g, p, MUTATE_PACKET)
            }
            9 | 10 => {
                let p = g.unsubscribe(version);
                send(g, p, MUTATE_PACKET)
            }
            11..=13 => {
                let first = [kind::PUBACK, kind::PUBREC, kind::PUBREL, kind::PUBCOMP][g.below(4)];
                let pid = g.pid();
                Step::Ack {
                    fallback: g.ack(version, first, pid),
                }
            }
            14 => {
                let p = g.pingreq();
                send(g, p, MUTATE_PACKET)
            }
            15 if version == Version::V5 => {
                let p = g.auth();
                send(g, p, MUTATE_PACKET)
            }
            16 => {
                // A CONNECT again: a protocol error.
                let p = g.connect(version, &client_id, user);
                send(g, p, MUTATE_PACKET)
            }
            _ => Step::Pause(g.below(20) as u64),
        };
        steps.push(step);
    }
    if g.chance(0.5) {
        let p = g.disconnect(version);
        steps.push(send(g, p, MUTATE_PACKET / 2.0));
    }
    let ending = match g.below(4) {
        0 => Ending::Reset,
        1 => Ending::Leave,
        _ => Ending::Close,
    };
    Script {
        start_delay_ms: g.below(10) as u64,
        steps,
        ending,
    }
}

/// Encodes `p`, mutating it (a field, then maybe bytes) with probability `p_mut`.
fn send(g: &mut Gen, p: Packet, p_mut: f64) -> Step {
    let mutated = g.chance(p_mut);
    let field = mutated && g.chance(0.7);
    let mut m = p.clone();
    if field {
        g.mutate_fields(&mut m);
    }
    let mut bytes = m.encode();
    if mutated && (!field || g.chance(0.3)) {
        g.mutate_bytes(&mut bytes);
    }
    // A mutation can also make Topic Alias Maximum 0 (a value set to 0, a flipped
    // byte): while that generator is off, such a CONNECT is sent unmutated.
    let is_connect = p.first & 0xF0 == kind::CONNECT;
    if is_connect && !g.knobs.topic_alias_maximum_zero && has_alias_maximum_zero(&bytes) {
        return Step::Send {
            bytes: p.encode(),
            mutated: false,
        };
    }
    Step::Send { bytes, mutated }
}

/// Whether `bytes` hold a Topic Alias Maximum property (0x22) of value 0
/// anywhere (conservative: also where it would not be parsed as one).
pub fn has_alias_maximum_zero(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w == [0x22, 0, 0])
}
