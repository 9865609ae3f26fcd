//! Byte scans of topic text, eight bytes at a time: the decision path reads every
//! published topic once to validate it and once to split its levels. The bytes
//! looked for (`/`, `+`, `#`, U+0000) are ASCII, so they never occur inside a
//! multi-byte UTF-8 sequence and a byte found is a character found.

const ONES: u64 = 0x0101_0101_0101_0101;
const TOPS: u64 = 0x8080_8080_8080_8080;

/// The top bit of each byte of the result is set where `word` has the byte `b`,
/// and possibly in bytes above such a byte (a borrow), never in bytes below the
/// first: so "any" and "the first" are exact, and so is nothing else.
#[inline]
fn matches_of(word: u64, b: u8) -> u64 {
    let x = word ^ (ONES * b as u64);
    x.wrapping_sub(ONES) & !x & TOPS
}

#[inline]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The first `/` at or after `from`.
#[inline]
pub fn next_slash(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= bytes.len() {
        let m = matches_of(word_at(bytes, i), b'/');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)
        .and_then(|tail| tail.iter().position(|&b| b == b'/'))
        .map(|p| i + p)
}

/// Whether `bytes` holds U+0000, `+` or `#`.
#[inline]
pub fn has_nul_or_wildcard(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let mut found = 0u64;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        found |= matches_of(w, 0) | matches_of(w, b'+') | matches_of(w, b'#');
    }
    found != 0
        || chunks
            .remainder()
            .iter()
            .any(|&b| b == 0 || b == b'+' || b == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn scans_agree_with_plain_loops(s in "[a/+#\u{0}\u{7f}\u{80}\u{ff}\u{2f2f}é€£$ ]{0,40}", from in 0usize..45) {
            let b = s.as_bytes();
            let from = from.min(b.len());
            let plain = b[from..].iter().position(|&c| c == b'/').map(|p| from + p);
            prop_assert_eq!(next_slash(b, from), plain);
            let plain = b.iter().any(|&c| c == 0 || c == b'+' || c == b'#');
            prop_assert_eq!(has_nul_or_wildcard(b), plain);
        }
    }

    #[test]
    fn finds_the_first_of_several_in_one_word() {
        assert_eq!(next_slash(b"ab/cd/ef/gh", 0), Some(2));
        assert_eq!(next_slash(b"ab/cd/ef/gh", 3), Some(5));
        assert_eq!(next_slash(b"abcdefghijk/", 0), Some(11));
        assert_eq!(next_slash(b"abcdefgh", 0), None);
        assert_eq!(next_slash(b"", 0), None);
        assert!(has_nul_or_wildcard(b"abcdefgh#"));
        assert!(!has_nul_or_wildcard(b"abcdefgh/"));
    }
}
