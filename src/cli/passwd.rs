//! `topicgate passwd [--stdin]`: an argon2 `passwordHash` for a client of the policy.
//!
//! The password is read from the terminal without echo (rpassword), twice, or with
//! `--stdin` from the first line of standard input, for scripts. The hash is argon2id
//! with argon2's default parameters and a random salt, the form the broker verifies
//! (`argon2::PasswordHash` carries its parameters, so verification reads them back).

use super::exit;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use clap::Args;
use std::io::BufRead;

#[derive(Debug, Args)]
#[command(
    after_help = "Paste the printed line into the client in the policy:\n\n  \
clients:\n    sensor1:\n      authentication:\n        passwordHash: \"$argon2id$v=19$m=19456,t=2,p=1$...\"\n\n\
then `topicgate serve POLICY --mqtt ADDR` checks the client's username and password."
)]
pub struct PasswdArgs {
    /// Read the password from the first line of standard input instead of the
    /// terminal (for scripts; the line end is not part of the password).
    #[arg(long)]
    pub stdin: bool,
}

pub fn run(args: PasswdArgs) -> u8 {
    let password = match read_password(args.stdin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    match hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("passwordHash: \"{hash}\"");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot hash the password: {e}");
            exit::ERROR
        }
    }
}

/// The PHC string of `password` (argon2id, default parameters, random salt).
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password, &salt)?
        .to_string())
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        line
    } else {
        let first = rpassword::prompt_password("password: ").map_err(|e| {
            format!("cannot read the password from the terminal ({e}); use --stdin")
        })?;
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| format!("cannot read the password from the terminal ({e})"))?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}
