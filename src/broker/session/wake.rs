//! The attached connection's wake-up: a flag and one waker. A `Notify` would
//! do the same, but its `Notified` future carries a waiter node (64 B) that
//! every idle connection's future holds; `Woken` is a pointer (decision 0036).
//! One connection is attached to a session at a time, so one waker is enough.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Like `Notify::notify_one` / `notified` with one waiter: a wake-up while
/// nobody waits is kept for the next wait, and several count as one.
#[derive(Default)]
pub struct WakeUp {
    woken: AtomicBool,
    waker: AtomicWaker,
}

impl WakeUp {
    /// Wakes the waiting future, or the next one to wait.
    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves at the first wake-up since the last one a `Woken` took.
    pub fn woken(&self) -> Woken<'_> {
        Woken { wake: self }
    }
}

/// See [`WakeUp::woken`].
pub struct Woken<'a> {
    wake: &'a WakeUp,
}

impl Future for Woken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let wake = self.wake;
        if wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        wake.waker.register(cx.waker());
        // A wake-up between the check and the registration found no waker.
        if wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_wake_up_while_nobody_waits_is_kept_for_the_next_wait() {
        let w = WakeUp::default();
        w.wake();
        w.wake();
        w.woken().await;
        // Two wake-ups before the wait count as one.
        let again = futures_util::FutureExt::now_or_never(w.woken());
        assert!(again.is_none());
    }

    #[tokio::test]
    async fn a_waiting_future_is_woken() {
        let w = Arc::new(WakeUp::default());
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.woken().await }
        });
        tokio::task::yield_now().await;
        w.wake();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}
