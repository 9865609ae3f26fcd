//! Printing diagnostics and load failures the same way in every command.

use super::exit;
use crate::diag::render;
use crate::pipeline::LoadError;
use std::io::IsTerminal;

pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Colours for reports printed on stdout.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints why a policy could not be loaded and returns the exit code for it:
/// 1 for a policy with errors, 2 for a file that is not a readable policy at all.
pub fn report_load_error(e: &LoadError) -> u8 {
    match e {
        LoadError::Read(_) | LoadError::NotText { .. } | LoadError::Artifact(_) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
        LoadError::Invalid(c) => {
            eprint!("{}", render::human_all(&c.diagnostics, &c.file, color()));
            eprintln!("error: {e}");
            if c.is_unreadable() {
                exit::ERROR
            } else {
                exit::FINDING
            }
        }
    }
}
