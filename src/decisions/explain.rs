//! Explanations: a decision together with what granted it, in the shape the CLI
//! prints (human or JSON).

use super::chain::{self, Chain};
use super::naming::find_client;
use super::Decision;
use crate::compiler::compiled::CompiledPolicy;
use crate::source::model::Permission;
use serde::Serialize;
use std::fmt::Write as _;

/// What is asked of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    Connect { will_topic: Option<String> },
    Publish(String),
    Subscribe(String),
}

impl Question {
    pub fn action(&self) -> &'static str {
        match self {
            Question::Connect { .. } => "connect",
            Question::Publish(_) => "publish",
            Question::Subscribe(_) => "subscribe",
        }
    }
    pub fn topic(&self) -> Option<&str> {
        match self {
            Question::Connect { will_topic } => will_topic.as_deref(),
            Question::Publish(t) | Question::Subscribe(t) => Some(t),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantedBy {
    pub binding: String,
    pub topic_space: String,
    pub template: String,
}

/// The JSON form of `policy explain`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub decision: &'static str,
    pub client: String,
    pub action: &'static str,
    pub topic: Option<String>,
    pub granted_by: Option<GrantedBy>,
    pub reason: String,
    /// For an unknown client: the nearest known authentication names.
    pub suggestions: Vec<String>,
    /// The decision chain (`None` for an unknown client).
    pub chain: Option<Chain>,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// Decides `question` for the client with authentication name `client` and says why.
pub fn explain(policy: &CompiledPolicy, client: &str, question: &Question) -> Explanation {
    let id = match find_client(policy, client) {
        Ok(id) => id,
        Err(unknown) => {
            return Explanation {
                decision: "deny",
                client: client.to_string(),
                action: question.action(),
                topic: question.topic().map(str::to_string),
                granted_by: None,
                reason: unknown.to_string(),
                suggestions: unknown.suggestions,
                chain: None,
            }
        }
    };
    let decision: Decision = match question {
        Question::Connect { will_topic } => policy.decide_connect(id, will_topic.as_deref()),
        Question::Publish(t) => policy.decide_publish(id, t),
        Question::Subscribe(f) => policy.decide_subscribe(id, f),
    };
    let granted_by = decision.grant.map(|g| {
        let space = &policy.policy.topic_spaces[g.topic_space as usize];
        GrantedBy {
            binding: policy.policy.bindings[g.binding as usize]
                .name
                .value
                .clone(),
            topic_space: space.name.value.clone(),
            template: space.templates[g.template as usize].value.to_string(),
        }
    });
    let (permission, subject) = match question {
        Question::Connect { will_topic } => (
            will_topic.as_ref().map(|_| Permission::Publisher),
            will_topic.as_deref(),
        ),
        Question::Publish(t) => (Some(Permission::Publisher), Some(t.as_str())),
        Question::Subscribe(f) => (Some(Permission::Subscriber), Some(f.as_str())),
    };
    // An invalid topic is refused before any binding is looked at: no chain past the groups.
    let checkable = decision.deny != Some(super::DenyKind::InvalidTopic);
    let chain = chain::build(
        policy,
        id,
        permission.filter(|_| checkable),
        subject,
        decision.allowed,
    );
    Explanation {
        decision: if decision.allowed { "allow" } else { "deny" },
        client: policy.client(id).authentication_name.value.clone(),
        action: question.action(),
        topic: question.topic().map(str::to_string),
        granted_by,
        reason: match &decision.grant {
            Some(g) => policy.describe_grant(g),
            None if decision.allowed => "client is enabled".to_string(),
            None => decision.reason,
        },
        suggestions: Vec::new(),
        chain: Some(chain),
    }
}

/// The human form: the verdict, then the chain from client to templates.
pub fn render_human(e: &Explanation) -> String {
    let verdict = if e.allowed() { "ALLOW" } else { "DENY" };
    let mut out = format!("{verdict}: {} {}", e.client, e.action);
    if let Some(t) = &e.topic {
        out.push_str(if e.action == "connect" {
            " with will topic "
        } else {
            " "
        });
        out.push_str(t);
    }
    out.push('\n');
    if let Some(g) = &e.granted_by {
        let _ = writeln!(
            out,
            "  granted by binding `{}` -> topic space `{}` -> template `{}`",
            g.binding, g.topic_space, g.template
        );
    } else {
        let _ = writeln!(out, "  reason: {}", e.reason);
    }
    if let Some(c) = &e.chain {
        render_chain(&mut out, c, e.action == "connect");
    }
    out
}

fn yes_no(b: bool, yes: &'static str, no: &'static str) -> &'static str {
    if b {
        yes
    } else {
        no
    }
}

fn render_chain(out: &mut String, c: &Chain, will: bool) {
    let _ = writeln!(
        out,
        "\nclient `{}` ({})",
        c.client_name,
        yes_no(c.enabled, "enabled", "disabled")
    );
    let _ = writeln!(out, "groups:");
    for g in &c.groups {
        let mark = yes_no(g.member, "[member]    ", "[not member]");
        match &g.query {
            None => {
                let _ = writeln!(out, "  {mark} {} (built-in: every client)", g.group);
            }
            Some(q) => {
                let _ = writeln!(out, "  {mark} {}: {q}", g.group);
                for cond in &g.conditions {
                    let value = cond
                        .value
                        .as_deref()
                        .map(|v| format!("`{v}`"))
                        .unwrap_or_else(|| "missing".into());
                    let _ = writeln!(
                        out,
                        "      {} -> {} ({} is {value})",
                        cond.condition, cond.holds, cond.operand
                    );
                }
            }
        }
    }
    if let (Some(p), Some(subject)) = (c.permission, &c.checked) {
        let what = if will {
            format!("{p} bindings for the will topic `{subject}`")
        } else {
            format!("{p} bindings for `{subject}`")
        };
        let _ = writeln!(out, "{what}:");
        if c.bindings.is_empty() {
            let _ = writeln!(out, "  (none in the policy)");
        }
        let (yes, no) = if p == "subscriber" {
            ("contains it", "does not contain it")
        } else {
            ("matches", "no match")
        };
        for b in &c.bindings {
            let mark = yes_no(
                b.client_in_group,
                "applies",
                "does not apply: client not in group",
            );
            let _ = writeln!(
                out,
                "  binding `{}`: group `{}` -> topic space `{}` ({mark})",
                b.binding, b.group, b.topic_space
            );
            for t in &b.templates {
                let detail = match (&t.substituted, &t.substitution_problem) {
                    (Some(s), _) if t.matches => format!("`{s}`: {yes}"),
                    (Some(s), _) => {
                        let mut d = format!("`{s}`: {no}");
                        if let Some(l) = &t.first_difference {
                            let _ = write!(
                                d,
                                ", level {} differs (template `{}`, asked `{}`)",
                                l.level,
                                l.template.as_deref().unwrap_or("(end)"),
                                l.topic.as_deref().unwrap_or("(end)")
                            );
                        }
                        if let Some(w) = &t.witness {
                            let _ = write!(d, "; the filter can match `{w}`");
                        }
                        d
                    }
                    (None, Some(p)) => format!("grants nothing to this client: {p}"),
                    (None, None) => "grants nothing to this client".into(),
                };
                let _ = writeln!(out, "    template `{}` -> {detail}", t.template);
            }
        }
    }
    if let Some(m) = &c.nearest_miss {
        let _ = writeln!(out, "nearest miss: {m}");
    }
    if let Some(w) = &c.witness {
        let _ = writeln!(
            out,
            "witness: the filter can match `{w}`, which no template of this client allows"
        );
    }
    for a in &c.would_allow {
        let _ = writeln!(out, "would allow: {a}");
    }
}
