//! `topicgate policy query POLICY (--publish T | --subscribe F | --receive T | --client NAME | --from A --to B)`

use super::explain::Format;
use super::{exit, load};
use crate::analysis::flow::{flow, Flow};
use crate::analysis::query::{client_summary, who_may, Ask, ClientSummary, FilterGrant, WhoMay};
use clap::{ArgGroup, Args};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Exit status: 0 when the answer is not empty (some client may, data can flow), 1
/// when it is empty, 2 on errors (unreadable policy, unknown client, a topic or filter
/// that is not well formed, semantics.md §8).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("question").required(true).args(["publish", "subscribe", "receive", "client", "from"])))]
pub struct QueryArgs {
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    /// List the clients that may publish to this topic name.
    #[arg(long, value_name = "TOPIC")]
    pub publish: Option<String>,
    /// List the clients that may subscribe to this filter.
    #[arg(long, value_name = "FILTER")]
    pub subscribe: Option<String>,
    /// List the clients that may receive a message published on this topic.
    #[arg(long, value_name = "TOPIC")]
    pub receive: Option<String>,
    /// List what this client (authentication name) may publish and subscribe.
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
    /// With --to: can data flow from this client to the other one?
    #[arg(long, value_name = "NAME", requires = "to")]
    pub from: Option<String>,
    /// With --from: the receiving client.
    #[arg(long, value_name = "NAME", requires = "from")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: QueryArgs) -> u8 {
    let loaded = match load::policy(&args.policy) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let policy = &loaded.policy;
    let ask = if let Some(t) = args.publish {
        Some(Ask::Publish(t))
    } else if let Some(f) = args.subscribe {
        Some(Ask::Subscribe(f))
    } else {
        args.receive.map(Ask::Receive)
    };
    let (text, json, found) = if let Some(ask) = ask {
        // A question about what cannot be a topic is a usage error, not an empty answer.
        if let Err(e) = ask.validate() {
            eprintln!("error: {e}");
            if !e.help.is_empty() {
                eprintln!("  help: {}", e.help);
            }
            return exit::ERROR;
        }
        if let Some(note) = ask.reserved_note() {
            eprintln!("note: {note}");
        }
        let w = who_may(policy, &ask);
        (
            render_who_may(&w, policy.client_count()),
            serde_json::to_string_pretty(&w),
            !w.clients.is_empty(),
        )
    } else if let Some(name) = args.client {
        let id = match load::client(policy, &name) {
            Ok(id) => id,
            Err(code) => return code,
        };
        let s = client_summary(policy, id);
        let found = !s.publish.is_empty() || !s.subscribe.is_empty();
        (render_client(&s), serde_json::to_string_pretty(&s), found)
    } else {
        let (Some(from), Some(to)) = (args.from, args.to) else {
            return exit::ERROR;
        };
        let (a, b) = match (load::client(policy, &from), load::client(policy, &to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(code), _) | (_, Err(code)) => return code,
        };
        let f = flow(policy, a, b);
        (render_flow(&f), serde_json::to_string_pretty(&f), f.flows)
    };
    match (args.format, json) {
        (Format::Human, _) => load::emit(&text),
        (Format::Json, Ok(json)) => load::emit(&format!("{json}\n")),
        (Format::Json, Err(e)) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    }
    if found {
        exit::OK
    } else {
        exit::FINDING
    }
}

fn grant_text(g: &FilterGrant) -> String {
    format!(
        "binding `{}` (topic space `{}`, template `{}`)",
        g.binding, g.topic_space, g.template
    )
}

pub fn render_who_may(w: &WhoMay, total: usize) -> String {
    let mut out = format!(
        "clients that may {} `{}`: {} of {total}\n",
        w.action,
        w.topic,
        w.clients.len()
    );
    if w.clients.is_empty() {
        out.push_str("  (none)\n");
    }
    for c in &w.clients {
        let _ = writeln!(
            out,
            "  {}  via binding `{}` (topic space `{}`, template `{}`)",
            c.client, c.binding, c.topic_space, c.template
        );
    }
    out
}

pub fn render_client(s: &ClientSummary) -> String {
    let mut out = format!(
        "client `{}` ({}), groups: {}\n",
        s.client,
        if s.enabled {
            "enabled"
        } else {
            "disabled: may do nothing"
        },
        s.groups.join(", ")
    );
    for (title, list) in [("publish", &s.publish), ("subscribe", &s.subscribe)] {
        let _ = writeln!(out, "{title}:");
        if list.is_empty() {
            out.push_str("  (nothing)\n");
        }
        for g in list {
            let _ = writeln!(out, "  {}  via {}", g.filter, grant_text(g));
        }
    }
    out
}

pub fn render_flow(f: &Flow) -> String {
    if !f.flows {
        return format!(
            "no data can flow from `{}` to `{}`: no topic {} may publish is one {} may receive\n",
            f.from, f.to, f.from, f.to
        );
    }
    let mut out = format!("data can flow from `{}` to `{}`:\n", f.from, f.to);
    for p in &f.paths {
        let _ = writeln!(out, "  `{}` (e.g. `{}`)", p.topics, p.witness);
        let _ = writeln!(
            out,
            "    {} publishes `{}` via {}",
            f.from,
            p.publish.filter,
            grant_text(&p.publish)
        );
        let _ = writeln!(
            out,
            "    {} subscribes `{}` via {}",
            f.to,
            p.subscribe.filter,
            grant_text(&p.subscribe)
        );
    }
    out
}
