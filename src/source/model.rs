//! The policy as written: every resource with the span of each value. Both front
//! ends (YAML and the DSL) produce this; the compiler resolves it.

use crate::diag::span::{Sp, Span};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyDoc {
    pub namespace: Option<Sp<String>>,
    /// Event Grid's `topicSpacesConfiguration` settings of the namespace.
    pub settings: Option<SettingsDoc>,
    pub clients: Vec<ClientDoc>,
    pub client_groups: Vec<GroupDoc>,
    pub topic_spaces: Vec<TopicSpaceDoc>,
    pub permission_bindings: Vec<BindingDoc>,
    pub ca_certificates: Vec<CaDoc>,
    pub tests: Vec<TestDoc>,
}

/// The namespace settings Event Grid keeps in `topicSpacesConfiguration`.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsDoc {
    pub span: Span,
    /// 1-8 hours (Event Grid's default: 1).
    pub maximum_session_expiry_in_hours: Option<Sp<i64>>,
    /// 1-100 sessions (Event Grid's default: 1).
    pub maximum_client_sessions_per_authentication_name: Option<Sp<i64>>,
    /// Where else Event Grid may read a client's authentication name from a
    /// certificate (`ClientCertificateSubject`, `ClientCertificateDns`, ...).
    pub alternative_authentication_name_sources: Vec<Sp<String>>,
}

/// The values `alternativeAuthenticationNameSources` accepts (Event Grid preview API).
pub const ALTERNATIVE_NAME_SOURCES: [&str; 5] = [
    "ClientCertificateSubject",
    "ClientCertificateDns",
    "ClientCertificateUri",
    "ClientCertificateIp",
    "ClientCertificateEmail",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientState {
    Enabled,
    Disabled,
}

/// An attribute value: Event Grid allows strings, integers, booleans and arrays of
/// strings. (`Bool` is last so that artifacts written before it still decode.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Array(Vec<String>),
    Bool(bool),
}

impl AttrValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrValue::Str(_) => "string",
            AttrValue::Int(_) => "integer",
            AttrValue::Array(_) => "array of strings",
            AttrValue::Bool(_) => "boolean",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientDoc {
    pub name: Sp<String>,
    pub authentication_name: Option<Sp<String>>,
    pub state: Option<Sp<ClientState>>,
    pub description: Option<Sp<String>>,
    pub attributes: Vec<(Sp<String>, Sp<AttrValue>)>,
    pub authentication: Option<AuthDoc>,
    pub will: Option<WillDoc>,
    pub publishes: Vec<Sp<String>>,
    pub subscribes: Vec<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValidationScheme {
    ThumbprintMatch,
    SubjectMatchesAuthenticationName,
    DnsMatchesAuthenticationName,
    UriMatchesAuthenticationName,
    IpMatchesAuthenticationName,
    EmailMatchesAuthenticationName,
}

impl ValidationScheme {
    pub const ALL: [(&'static str, ValidationScheme); 6] = [
        ("ThumbprintMatch", ValidationScheme::ThumbprintMatch),
        (
            "SubjectMatchesAuthenticationName",
            ValidationScheme::SubjectMatchesAuthenticationName,
        ),
        (
            "DnsMatchesAuthenticationName",
            ValidationScheme::DnsMatchesAuthenticationName,
        ),
        (
            "UriMatchesAuthenticationName",
            ValidationScheme::UriMatchesAuthenticationName,
        ),
        (
            "IpMatchesAuthenticationName",
            ValidationScheme::IpMatchesAuthenticationName,
        ),
        (
            "EmailMatchesAuthenticationName",
            ValidationScheme::EmailMatchesAuthenticationName,
        ),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("ThumbprintMatch")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthDoc {
    pub span: Span,
    pub validation_scheme: Option<Sp<ValidationScheme>>,
    pub allowed_thumbprints: Vec<Sp<String>>,
    pub password_hash: Option<Sp<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WillDoc {
    pub span: Span,
    pub topic: Sp<String>,
    pub qos: Option<Sp<u8>>,
    pub retain: Option<Sp<bool>>,
    pub delay_seconds: Option<Sp<u32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupDoc {
    pub name: Sp<String>,
    pub query: Sp<String>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpaceDoc {
    pub name: Sp<String>,
    pub topic_templates: Vec<Sp<String>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Permission {
    Publisher,
    Subscriber,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Publisher => "publisher",
            Permission::Subscriber => "subscriber",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingDoc {
    pub name: Sp<String>,
    /// `None` when missing or invalid (already reported): the binding is then kept so
    /// that its other fields are still checked, but it grants nothing.
    pub client_group: Option<Sp<String>>,
    pub topic_space: Option<Sp<String>>,
    pub permission: Option<Sp<Permission>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaDoc {
    pub name: Sp<String>,
    pub file: Option<Sp<String>>,
    pub encoded_certificate: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Expect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestAction {
    Publish(Sp<String>),
    Subscribe(Sp<String>),
    Receive(Sp<String>),
    Connect { will: Option<Sp<String>> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestDoc {
    pub span: Span,
    pub client: Sp<String>,
    pub action: TestAction,
    pub expect: Sp<Expect>,
    /// The binding expected to grant the access (optional).
    pub granted_by: Option<Sp<String>>,
}
