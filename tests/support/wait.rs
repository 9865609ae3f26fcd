//! How tests wait (decision 0028). Three kinds of waiting, one tool each:
//! - for a broker timer (keep-alive, will delay, session and message expiry,
//!   partial-packet and connect timeouts): the test runs on tokio's paused clock
//!   (`#[tokio::test(start_paused = true)]`), so the timer fires at its exact
//!   instant and at once; see [`paused`];
//! - for "nothing arrives": a positive barrier, a marker that must arrive first
//!   ([`crate::support::broker::Raw::expect_marker_first`]), never a quiet period;
//! - for another process or an effect with no message (a port, a counter, a file):
//!   [`eventually`], polling the real condition a bounded number of times.
//!
//! `T` bounds every wait for something that must happen; on the paused clock it is
//! virtual time, so a wait for something that never comes fails at once.

use std::time::Duration;

/// How long a test waits for something that must happen.
pub const T: Duration = Duration::from_secs(5);

/// How often [`eventually`] looks.
const STEP: Duration = Duration::from_millis(10);

/// Waits until `f` is true; fails after `T` (`T / STEP` looks). On the paused
/// clock each look moves virtual time by `STEP`: to bound when a broker timer
/// fired, measure with `tokio::time::Instant` around it.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let looks = T.as_millis() / STEP.as_millis();
    for _ in 0..looks {
        if f() {
            return;
        }
        tokio::time::sleep(STEP).await;
    }
    assert!(f(), "condition not reached within {T:?}");
}

/// Fails unless the test runs on tokio's paused clock: a test that advances time
/// to reach a broker timer would otherwise wait in real time (and flake).
pub fn paused() {
    let before = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "this test needs #[tokio::test(start_paused = true)]"
    );
}
