//! The broker's CPU time and memory, read from `/proc/PID` (Linux) when the user
//! gives the bench the broker's process id.

use std::path::PathBuf;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory now, in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident memory since the process started, in KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// A process to watch.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    dir: PathBuf,
}

impl Proc {
    /// Checks that the process exists and its `/proc` entry can be read.
    pub fn open(pid: u32) -> Result<Proc, String> {
        let p = Proc {
            pid,
            dir: PathBuf::from(format!("/proc/{pid}")),
        };
        p.sample().map(|_| p)
    }

    pub fn sample(&self) -> Result<ProcSample, String> {
        let err = |what: &str, e: std::io::Error| {
            format!("cannot read {what} of process {}: {e}", self.pid)
        };
        let stat = std::fs::read_to_string(self.dir.join("stat")).map_err(|e| err("stat", e))?;
        let status =
            std::fs::read_to_string(self.dir.join("status")).map_err(|e| err("status", e))?;
        let cpu_ticks = parse_cpu_ticks(&stat)
            .ok_or_else(|| format!("unexpected /proc/{}/stat format", self.pid))?;
        Ok(ProcSample {
            cpu_ticks,
            rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
            peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        })
    }
}

/// Clock ticks per second, for turning `cpu_ticks` into seconds.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system) between two samples, in seconds.
pub fn cpu_seconds(before: &ProcSample, after: &ProcSample) -> f64 {
    after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_second() as f64
}

/// CPU use between two samples, in percent of one core (200 = two cores busy).
pub fn cpu_percent(before: &ProcSample, after: &ProcSample, wall_secs: f64) -> f64 {
    if wall_secs <= 0.0 {
        return 0.0;
    }
    cpu_seconds(before, after) / wall_secs * 100.0
}

/// utime + stime: fields 14 and 15 of `/proc/PID/stat`, counted after the command
/// name, which is in parentheses and may itself contain spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let stat =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn reads_own_process() {
        let p = Proc::open(std::process::id()).expect("own /proc entry");
        let s = p.sample().expect("sample");
        assert!(s.rss_kib > 0);
        assert!(s.peak_rss_kib >= s.rss_kib);
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(Proc::open(u32::MAX).is_err());
    }
}
