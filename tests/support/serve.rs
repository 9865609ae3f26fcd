//! `topicgate serve` (or any helper process) as a child of a test.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};

/// Children killed (and reaped) when the test ends, passed or not.
pub struct Killer(pub Vec<Child>);

impl Killer {
    pub fn one(child: Child) -> Killer {
        Killer(vec![child])
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The first `n` lines a served child prints (`listening on mqtt://127.0.0.1:PORT`,
/// `metrics on http://...`), read from its stdout, which this takes. Returns the
/// rest of stdout for tests that read on.
pub fn announced(child: &mut Child, n: usize) -> (Vec<String>, BufReader<ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("announced line");
            line.trim().to_string()
        })
        .collect();
    (lines, out)
}

/// The port at the end of an announced line (`... 127.0.0.1:PORT`).
pub fn port_of(line: &str) -> u16 {
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port at the end of {line:?}"))
}

/// The port a `topicgate serve` child announced on its first stdout line.
pub fn listening_port(child: &mut Child) -> u16 {
    port_of(&announced(child, 1).0[0])
}
