//! `topicgate policy diff OLD NEW [--fail-on new-access|any-change] [--format human|json]`

use super::explain::Format;
use super::{exit, load};
use crate::analysis::diff::{diff, Change, ClientOnOneSide, PolicyDiff};
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FailOn {
    /// Exit 1 when NEW lets any client do something OLD did not (an added client counts).
    NewAccess,
    /// Exit 1 on any difference in access, gained or lost, or any client added or removed.
    AnyChange,
}

/// Compare the access two policies grant. For git revisions, write them to files first:
/// `git show main:policy.yaml > old.yaml`. Exit status: 0, or 1 when `--fail-on` is met,
/// 2 on errors.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy before the change (file or artifact).
    pub old: PathBuf,
    /// The policy after the change (file or artifact).
    pub new: PathBuf,
    /// Exit 1 when the difference includes this.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: DiffArgs) -> u8 {
    // The two policies are independent: load them side by side.
    let (old, new) = std::thread::scope(|s| {
        let old = s.spawn(|| load::policy(&args.old));
        let new = load::policy(&args.new);
        (old.join().unwrap_or(Err(exit::ERROR)), new)
    });
    let (old, new) = match (old, new) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let d = diff(&old.policy, &new.policy);
    match args.format {
        Format::Human => load::emit(&render_human(&d)),
        Format::Json => {
            if let Err(code) = load::print_json(&d) {
                return code;
            }
        }
    }
    let failed = match args.fail_on {
        None => false,
        Some(FailOn::NewAccess) => d.grants_new_access(),
        Some(FailOn::AnyChange) => d.has_changes(),
    };
    if failed {
        exit::FINDING
    } else {
        exit::OK
    }
}

fn change_line(out: &mut String, sign: char, action: &str, c: &Change) {
    let g = &c.grant;
    let _ = write!(out, "  {sign} {action} `{}`", g.filter);
    match (&c.witness_topic, action) {
        (Some(t), _) => {
            let _ = write!(out, " (e.g. topic `{t}`)");
        }
        (None, "subscribe") => {
            out.push_str(" (every topic is covered elsewhere, but not by one template)")
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        " via binding `{}` (topic space `{}`, template `{}`)",
        g.binding, g.topic_space, g.template
    );
}

fn side(out: &mut String, title: &str, list: &[ClientOnOneSide]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for c in list {
        let state = if c.enabled { "" } else { " (disabled)" };
        let _ = writeln!(out, "  {}{state}", c.client);
        for f in &c.publish {
            let _ = writeln!(out, "    publish `{f}`");
        }
        for f in &c.subscribe {
            let _ = writeln!(out, "    subscribe `{f}`");
        }
    }
}

pub fn render_human(d: &PolicyDiff) -> String {
    let mut out = String::new();
    if !d.has_changes() {
        return "no change in access\n".into();
    }
    for c in &d.clients_changed {
        let _ = writeln!(out, "client {}:", c.client);
        for x in &c.publish_gained {
            change_line(&mut out, '+', "publish", x);
        }
        for x in &c.subscribe_gained {
            change_line(&mut out, '+', "subscribe", x);
        }
        for x in &c.publish_lost {
            change_line(&mut out, '-', "publish", x);
        }
        for x in &c.subscribe_lost {
            change_line(&mut out, '-', "subscribe", x);
        }
    }
    side(&mut out, "clients added", &d.clients_added);
    side(&mut out, "clients removed", &d.clients_removed);
    let gaining = d.clients_changed.iter().filter(|c| c.gains()).count();
    let losing = d
        .clients_changed
        .iter()
        .filter(|c| !c.publish_lost.is_empty() || !c.subscribe_lost.is_empty())
        .count();
    let _ = writeln!(
        out,
        "summary: {gaining} client{} gain access, {losing} lose access, {} added, {} removed",
        if gaining == 1 { "" } else { "s" },
        d.clients_added.len(),
        d.clients_removed.len()
    );
    out
}
