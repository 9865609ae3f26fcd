//! Explanations: a decision together with what granted it, in the shape the CLI
//! prints (human or JSON).

use super::Decision;
use crate::compiler::compiled::CompiledPolicy;
use crate::diag::did_you_mean;
use serde::Serialize;

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
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// Decides `question` for the client with authentication name `client` and says why.
pub fn explain(policy: &CompiledPolicy, client: &str, question: &Question) -> Explanation {
    let Some(id) = policy.client_by_authentication_name(client) else {
        let names = policy
            .policy
            .clients
            .iter()
            .map(|c| c.authentication_name.value.as_str());
        let hint = match did_you_mean(client, names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => String::new(),
        };
        return Explanation {
            decision: "deny",
            client: client.to_string(),
            action: question.action(),
            topic: question.topic().map(str::to_string),
            granted_by: None,
            reason: format!(
                "unknown client `{client}`: no client has this authentication name{hint}"
            ),
        };
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
    }
}

/// The human form: a verdict line and the reason.
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
        out.push_str(&format!(
            "  granted by binding `{}`\n    -> topic space `{}`\n    -> template `{}`\n",
            g.binding, g.topic_space, g.template
        ));
    } else {
        out.push_str(&format!("  reason: {}\n", e.reason));
    }
    out
}
