//! What the fuzzer watches besides the broker's answers: panics in any task
//! (tokio catches them, so a hook records them), an abort of the whole
//! process (a signal handler names the case first), and resident memory.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Name of the runtime threads that run the broker (and the fuzz clients):
/// only panics on those threads are recorded.
pub const THREAD_NAME: &str = "topicgate-fuzz";

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The run's base seed and the index of the case running now, for the abort report.
pub static BASE_SEED: AtomicU64 = AtomicU64::new(0);
pub static CASE_INDEX: AtomicU64 = AtomicU64::new(0);

/// Records every panic on a [`THREAD_NAME`] thread (and still prints it).
/// Installs, once, a SIGABRT handler that prints the running case's seed,
/// since an abort (a stack overflow does that) ends the process before any
/// test code could say which case it was.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread.name() == Some(THREAD_NAME) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if let Ok(mut p) = PANICS.lock() {
                    p.push(format!("panic at {at}: {msg}"));
                }
            }
            previous(info);
        }));
        install_abort_reporter();
    });
}

/// Panics recorded since the last call.
pub fn take_panics() -> Vec<String> {
    PANICS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

fn install_abort_reporter() {
    /// Decimal digits of `v` into the end of `buf`; returns where they start.
    fn digits(mut v: u64, buf: &mut [u8; 20]) -> usize {
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return i;
            }
        }
    }
    extern "C" fn on_abort(_: libc::c_int) {
        // Only async-signal-safe calls: digits into stack buffers, write(2).
        let (mut seed, mut cases) = ([0u8; 20], [0u8; 20]);
        let index = CASE_INDEX.load(Ordering::Relaxed);
        let s = digits(BASE_SEED.load(Ordering::Relaxed), &mut seed);
        let c = digits(index + 1, &mut cases);
        let parts: [&[u8]; 5] = [
            b"\nbroker_fuzz: ABORTED. The state of earlier cases may be involved (sessions and wills expire seconds later): replay the run with TOPICGATE_FUZZ_SEED=",
            &seed[s..],
            b" TOPICGATE_FUZZ_CASES=",
            &cases[c..],
            b" and the same TOPICGATE_FUZZ_KNOWN_CRASHES\n",
        ];
        // SAFETY: write(2), signal(2) and raise(3) are async-signal-safe; the
        // buffers live on this frame or in static memory. The default action
        // then aborts as it would have.
        unsafe {
            for p in parts {
                libc::write(2, p.as_ptr().cast(), p.len());
            }
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
            libc::raise(libc::SIGABRT);
        }
    }
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    unsafe {
        libc::signal(
            libc::SIGABRT,
            on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// This process's resident set size in KiB (Linux), or 0 when unknown.
pub fn rss_kib() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A progress line straight to stderr, past the test harness's capture, so a
/// long run shows where it is even when it ends in an abort.
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
