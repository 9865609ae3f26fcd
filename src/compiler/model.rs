//! The resolved policy: names turned into indices, queries and templates parsed,
//! defaults applied. This is what the artifact stores and what every later stage
//! (index, verifier, decisions, broker) reads.

use crate::diag::span::{Sp, Span};
use crate::source::model::{AttrValue, ClientState, Expect, Permission, ValidationScheme};
use crate::source::query::Query;
use crate::topic::Template;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type GroupId = u32;
pub type SpaceId = u32;
pub type BindingId = u32;

/// Index of the built-in group `$all`, which contains every client.
pub const ALL_GROUP: GroupId = 0;
pub const ALL_GROUP_NAME: &str = "$all";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResolvedPolicy {
    pub namespace: Option<Sp<String>>,
    /// Event Grid's `topicSpacesConfiguration` settings, as written.
    pub settings: NamespaceSettings,
    pub clients: Vec<Client>,
    /// `groups[0]` is the built-in `$all`.
    pub groups: Vec<Group>,
    pub topic_spaces: Vec<TopicSpace>,
    pub bindings: Vec<Binding>,
    pub ca_certificates: Vec<CaCertificate>,
    pub tests: Vec<PolicyTest>,
}

/// The namespace settings; `None` where the policy leaves Event Grid's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamespaceSettings {
    pub maximum_session_expiry_in_hours: Option<u8>,
    pub maximum_client_sessions_per_authentication_name: Option<u8>,
    pub alternative_authentication_name_sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub name: Sp<String>,
    /// Defaults to the name. Compared case-insensitively when a client connects;
    /// substituted into templates in its original case.
    pub authentication_name: Sp<String>,
    pub state: ClientState,
    pub description: Option<String>,
    pub attributes: BTreeMap<String, Sp<AttrValue>>,
    pub authentication: Option<Authentication>,
    pub will: Option<Will>,
    pub publishes: Vec<Sp<String>>,
    pub subscribes: Vec<Sp<String>>,
}

impl Client {
    pub fn is_enabled(&self) -> bool {
        self.state == ClientState::Enabled
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Authentication {
    pub span: Span,
    pub validation_scheme: Option<ValidationScheme>,
    /// SHA-256 thumbprints, normalized to lower-case hex without separators.
    pub allowed_thumbprints: Vec<Sp<String>>,
    pub password_hash: Option<Sp<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Will {
    pub span: Span,
    pub topic: Sp<String>,
    pub qos: Sp<u8>,
    pub retain: Sp<bool>,
    pub delay_seconds: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub name: Sp<String>,
    /// The query text as written (`None` for `$all`).
    pub query_text: Option<Sp<String>>,
    /// The parsed query (`None` for `$all`, or when the query does not parse: such
    /// a group matches nobody, and the policy does not compile).
    pub query: Option<Query>,
    pub description: Option<String>,
}

impl Group {
    pub fn is_builtin(&self) -> bool {
        self.name.value == ALL_GROUP_NAME
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicSpace {
    pub name: Sp<String>,
    /// Templates that parsed; those that did not are reported and left out.
    pub templates: Vec<Sp<Template>>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Binding {
    pub name: Sp<String>,
    pub group: Sp<GroupId>,
    pub topic_space: Sp<SpaceId>,
    pub permission: Sp<Permission>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaCertificate {
    pub name: Sp<String>,
    /// Where the certificate came from: a file path relative to the policy, or inline.
    pub source: Sp<String>,
    /// The PEM text, read when the policy was compiled.
    pub pem: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TestAction {
    Publish(Sp<String>),
    Subscribe(Sp<String>),
    Receive(Sp<String>),
    Connect { will: Option<Sp<String>> },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyTest {
    pub span: Span,
    pub client: Sp<String>,
    pub action: TestAction,
    pub expect: Sp<Expect>,
    pub granted_by: Option<Sp<String>>,
}

impl ResolvedPolicy {
    pub fn group_by_name(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|g| g.name.value == name)
            .map(|i| i as GroupId)
    }
    pub fn space_by_name(&self, name: &str) -> Option<SpaceId> {
        self.topic_spaces
            .iter()
            .position(|s| s.name.value == name)
            .map(|i| i as SpaceId)
    }
    pub fn binding_by_name(&self, name: &str) -> Option<BindingId> {
        self.bindings
            .iter()
            .position(|b| b.name.value == name)
            .map(|i| i as BindingId)
    }
}
