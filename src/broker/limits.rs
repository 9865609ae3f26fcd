//! The process's open-file limit: every connection is a file descriptor.

/// Raises the soft open-file limit to the hard one (many distributions start
/// processes at 1,024) and returns the limit in force afterwards, or None when
/// it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// Descriptors a broker needs besides its connections: listeners, the event
/// queue, standard streams, files read at reload.
pub const RESERVED_DESCRIPTORS: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_after_raising_is_readable_and_at_least_the_minimum_posix_allows() {
        let n = raise_open_file_limit().expect("getrlimit");
        assert!(n >= 20, "{n}");
        // Raising again changes nothing.
        assert_eq!(raise_open_file_limit(), Some(n));
    }
}
