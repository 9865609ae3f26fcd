//! Loading the policy a command works on, with the exit code for a failure.

use super::output;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::CompiledPolicy;
use crate::pipeline::{load_with, Loaded, Strictness};
use std::path::Path;

/// Loads a policy file or artifact for a question about it (explain, query, test,
/// diff, graph): the verifier's findings do not stop it, a policy that does not parse
/// or resolve does. On failure prints why and returns the exit code (always at least
/// 2: such a policy cannot answer questions).
pub fn policy(path: &Path) -> Result<Loaded, u8> {
    load_with(path, Strictness::Diagnose)
        .map_err(|e| output::report_load_error(&e).max(super::exit::ERROR))
}

/// The client with this authentication name (semantics.md §8). An unknown name is an
/// error (exit 2), not a finding: a script must be able to tell a typo from a denial.
/// Prints why, with the names the user may have meant.
pub fn client(policy: &CompiledPolicy, name: &str) -> Result<ClientId, u8> {
    crate::decisions::naming::find_client(policy, name).map_err(|unknown| {
        eprintln!("error: {unknown}");
        super::exit::ERROR
    })
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
