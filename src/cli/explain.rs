//! `topicgate policy explain POLICY|ARTIFACT --client NAME (--publish T | --subscribe F | --connect [--will-topic T])`

use super::exit;
use crate::decisions::explain::{explain, render_human, Question};
use clap::{ArgGroup, Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["publish", "subscribe", "connect"])))]
pub struct ExplainArgs {
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    /// The client's authentication name (compared case-insensitively).
    #[arg(long)]
    pub client: String,
    /// Ask whether the client may publish to this topic name.
    #[arg(long, value_name = "TOPIC")]
    pub publish: Option<String>,
    /// Ask whether the client may subscribe to this filter.
    #[arg(long, value_name = "FILTER")]
    pub subscribe: Option<String>,
    /// Ask whether the client may connect.
    #[arg(long)]
    pub connect: bool,
    /// With --connect: the will topic the client sends in CONNECT.
    #[arg(long, value_name = "TOPIC", requires = "connect")]
    pub will_topic: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: ExplainArgs) -> u8 {
    // A policy the verifier finds errors in can still be explained (that is often why
    // one asks); one that does not parse or resolve cannot answer: an error, not a denial.
    let loaded = match super::load::policy(&args.policy) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // An unknown client is a mistake in the question, not a denial (exit 2, not 1).
    if let Err(code) = super::load::client(&loaded.policy, &args.client) {
        return code;
    }
    let question = if let Some(t) = args.publish {
        Question::Publish(t)
    } else if let Some(f) = args.subscribe {
        Question::Subscribe(f)
    } else {
        Question::Connect {
            will_topic: args.will_topic,
        }
    };
    let e = explain(&loaded.policy, &args.client, &question);
    match args.format {
        Format::Human => super::load::emit(&render_human(&e)),
        Format::Json => match serde_json::to_string_pretty(&e) {
            Ok(s) => super::load::emit(&format!("{s}\n")),
            Err(err) => {
                eprintln!("error: {err}");
                return exit::ERROR;
            }
        },
    }
    if e.allowed() {
        exit::OK
    } else {
        exit::FINDING
    }
}
