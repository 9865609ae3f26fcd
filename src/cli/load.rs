//! Loading the policy a command works on, with the exit code for a failure.

use super::output;
use crate::compiler::{load, Loaded};
use std::path::Path;

/// Loads a policy file or artifact; on failure prints why and returns the exit code
/// (always at least 2: a policy that does not compile cannot answer questions).
pub fn policy(path: &Path) -> Result<Loaded, u8> {
    load(path).map_err(|e| output::report_load_error(&e).max(super::exit::ERROR))
}

/// Prints `value` as pretty JSON; returns the exit code for a failure.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), u8> {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            emit(&format!("{s}\n"));
            Ok(())
        }
        Err(err) => {
            eprintln!("error: {err}");
            Err(super::exit::ERROR)
        }
    }
}

/// Writes command output to stdout. A closed pipe (`topicgate ... | head`) ends the
/// output quietly instead of panicking as `print!` would.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
