//! `policy query`: who may do something, and what one client may do.
//!
//! "Who may publish T / subscribe F / receive T" asks every client's decision on the
//! compiled index (exact: the same decision the broker makes). "What may C do" lists
//! C's substituted templates, merged with the filter algebra so that a filter
//! contained in another is not listed twice.

use super::access::{client_access, merged, GrantedFilter};
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::CompiledPolicy;
use crate::decisions::{Decision, Grant};
use crate::source::model::Permission;
use crate::topic::{has_wildcard, is_reserved, is_shared, parse_subscription, validate_name};
use serde::Serialize;

/// A question about something that is not a topic name or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot ask who may {action} `{subject}`: {message}")]
pub struct InvalidQuestion {
    pub action: &'static str,
    pub subject: String,
    pub message: String,
    /// What to ask instead, or empty.
    pub help: &'static str,
}

/// The three "who may" questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Publish(String),
    Subscribe(String),
    /// Receive a message published on this topic: subscribe to some filter matching it,
    /// which is allowed exactly when subscribing to the topic itself is. Nobody
    /// receives what cannot be published (a filter, a `$` topic).
    Receive(String),
}

impl Ask {
    pub fn action(&self) -> &'static str {
        match self {
            Ask::Publish(_) => "publish",
            Ask::Subscribe(_) => "subscribe",
            Ask::Receive(_) => "receive",
        }
    }
    pub fn subject(&self) -> &str {
        match self {
            Ask::Publish(t) | Ask::Subscribe(t) | Ask::Receive(t) => t,
        }
    }
    /// Is the question well formed (semantics.md §8)? `--publish` and `--receive` take
    /// a topic name, `--subscribe` a filter or `$share/NAME/FILTER`. A `$` topic is well
    /// formed; the answer is that nobody may (see [`Ask::reserved_note`]).
    pub fn validate(&self) -> Result<(), InvalidQuestion> {
        let subject = self.subject();
        let problem = match self {
            Ask::Publish(t) | Ask::Receive(t) => validate_name(t).err(),
            Ask::Subscribe(f) => parse_subscription(f).err(),
        };
        match problem {
            None => Ok(()),
            Some(e) => Err(InvalidQuestion {
                action: self.action(),
                subject: subject.to_string(),
                message: e.message,
                help: match self {
                    Ask::Publish(_) | Ask::Receive(_) if has_wildcard(subject) => {
                        "to ask who may subscribe to a filter, use --subscribe"
                    }
                    _ => "",
                },
            }),
        }
    }

    /// Why nobody may, when the subject is a `$` topic reserved for the broker.
    pub fn reserved_note(&self) -> Option<String> {
        let subject = self.subject();
        let inner = match self {
            Ask::Subscribe(f) => parse_subscription(f).map_or(f.as_str(), |s| s.filter),
            _ => subject,
        };
        if !is_reserved(inner) {
            return None;
        }
        let shared = if is_shared(subject) && !matches!(self, Ask::Subscribe(_)) {
            " (`$share/NAME/FILTER` is a shared subscription filter: ask with --subscribe)"
        } else {
            ""
        };
        Some(format!(
            "topics starting with `$` are reserved for the broker: no client may {} `{subject}`{shared}",
            self.action()
        ))
    }

    fn decide(&self, policy: &CompiledPolicy, id: ClientId) -> Decision {
        match self {
            Ask::Publish(t) => policy.decide_publish(id, t),
            Ask::Subscribe(f) => policy.decide_subscribe(id, f),
            Ask::Receive(t) => policy.decide_receive(id, t),
        }
    }
}

/// A client that may, and what grants it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    pub client: String,
    pub binding: String,
    pub topic_space: String,
    pub template: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WhoMay {
    pub action: &'static str,
    pub topic: String,
    pub clients: Vec<Allowed>,
}

/// Every client that may do `ask`, in policy order.
pub fn who_may(policy: &CompiledPolicy, ask: &Ask) -> WhoMay {
    let clients = (0..policy.client_count() as ClientId)
        .filter_map(|id| {
            let d = ask.decide(policy, id);
            let g = d.grant.filter(|_| d.allowed)?;
            Some(describe_grant(policy, id, g))
        })
        .collect();
    WhoMay {
        action: ask.action(),
        topic: ask.subject().to_string(),
        clients,
    }
}

fn describe_grant(policy: &CompiledPolicy, id: ClientId, g: Grant) -> Allowed {
    let space = &policy.policy.topic_spaces[g.topic_space as usize];
    Allowed {
        client: policy.client(id).authentication_name.value.clone(),
        binding: policy.policy.bindings[g.binding as usize]
            .name
            .value
            .clone(),
        topic_space: space.name.value.clone(),
        template: space.templates[g.template as usize].value.to_string(),
    }
}

/// One filter a client may use, with where it comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FilterGrant {
    pub filter: String,
    pub binding: String,
    pub topic_space: String,
    pub template: String,
}

impl FilterGrant {
    pub fn new(policy: &CompiledPolicy, g: &GrantedFilter) -> Self {
        let space = &policy.policy.topic_spaces[g.space as usize];
        FilterGrant {
            filter: g.filter.to_string(),
            binding: policy.policy.bindings[g.binding as usize]
                .name
                .value
                .clone(),
            topic_space: space.name.value.clone(),
            template: space.templates[g.template as usize].value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientSummary {
    pub client: String,
    pub enabled: bool,
    pub groups: Vec<String>,
    pub publish: Vec<FilterGrant>,
    pub subscribe: Vec<FilterGrant>,
}

/// What client `id` may publish and subscribe: its substituted filters, merged.
pub fn client_summary(policy: &CompiledPolicy, id: ClientId) -> ClientSummary {
    let access = client_access(policy, id);
    let list = |p: Permission| {
        merged(access.of(p))
            .iter()
            .map(|g| FilterGrant::new(policy, g))
            .collect()
    };
    let client = policy.client(id);
    ClientSummary {
        client: client.authentication_name.value.clone(),
        enabled: client.is_enabled(),
        groups: policy
            .groups_of(id)
            .iter()
            .map(|g| policy.policy.groups[*g as usize].name.value.clone())
            .collect(),
        publish: list(Permission::Publisher),
        subscribe: list(Permission::Subscriber),
    }
}
