//! The header every bench message carries in its payload, so that a receiver can
//! tell who sent it, which message it is, and when it was sent.

use std::time::Instant;

/// Bytes the stamp takes at the start of a payload: run tag (u32), sender (u32),
/// sequence number (u64) and send time (u64 nanoseconds since the run's clock
/// started).
pub const STAMP_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Differs between runs, so that a message left over from an earlier run is
    /// not counted in this one.
    pub run: u32,
    pub sender: u32,
    pub seq: u64,
    pub sent_nanos: u64,
}

impl Stamp {
    pub fn write(&self, payload: &mut [u8]) {
        payload[0..4].copy_from_slice(&self.run.to_le_bytes());
        payload[4..8].copy_from_slice(&self.sender.to_le_bytes());
        payload[8..16].copy_from_slice(&self.seq.to_le_bytes());
        payload[16..24].copy_from_slice(&self.sent_nanos.to_le_bytes());
    }

    /// Reads a stamp; `None` for a payload that is not a bench message.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..STAMP_LEN)?;
        Some(Stamp {
            run: u32::from_le_bytes(b[0..4].try_into().ok()?),
            sender: u32::from_le_bytes(b[4..8].try_into().ok()?),
            seq: u64::from_le_bytes(b[8..16].try_into().ok()?),
            sent_nanos: u64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// The run's clock: every task of one run measures against the same start.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Clock(Instant::now())
    }
    #[inline]
    pub fn nanos(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    pub fn at(&self, nanos: u64) -> Instant {
        self.0 + std::time::Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut p = [0u8; 64];
        let s = Stamp {
            run: 9,
            sender: 7,
            seq: 1 << 40,
            sent_nanos: 123_456_789,
        };
        s.write(&mut p);
        assert_eq!(Stamp::read(&p), Some(s));
    }

    #[test]
    fn short_payload_has_no_stamp() {
        assert_eq!(Stamp::read(&[0u8; STAMP_LEN - 1]), None);
    }
}
