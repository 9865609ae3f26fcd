//! An Event Grid namespace as Event Grid's own resources, with their ARM property
//! names: what exports write and imports read. `properties()` is the JSON body of
//! each resource, identical in an ARM template, a REST call and an `az` script.

use crate::compiler::model::NamespaceSettings;
use crate::source::model::{AttrValue, ClientState, Permission, ValidationScheme};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Namespace {
    /// `None` when the policy names no namespace: the exports then ask for it.
    pub name: Option<String>,
    pub settings: NamespaceSettings,
    pub ca_certificates: Vec<CaCertificate>,
    pub clients: Vec<Client>,
    pub client_groups: Vec<ClientGroup>,
    pub topic_spaces: Vec<TopicSpace>,
    pub permission_bindings: Vec<PermissionBinding>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub name: String,
    pub authentication_name: Option<String>,
    pub state: Option<ClientState>,
    pub description: Option<String>,
    pub attributes: Vec<(String, AttrValue)>,
    pub certificate_authentication: Option<CertificateAuthentication>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertificateAuthentication {
    pub validation_scheme: Option<ValidationScheme>,
    pub allowed_thumbprints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientGroup {
    pub name: String,
    pub query: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpace {
    pub name: String,
    pub topic_templates: Vec<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PermissionBinding {
    pub name: String,
    pub client_group_name: String,
    pub topic_space_name: String,
    pub permission: Permission,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaCertificate {
    pub name: String,
    /// The base64 DER of the certificate (the PEM body), as Event Grid stores it.
    pub encoded_certificate: String,
    pub description: Option<String>,
}

/// The child resource kinds of a namespace, in deployment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CaCertificate,
    Client,
    ClientGroup,
    TopicSpace,
    PermissionBinding,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::CaCertificate,
        Kind::Client,
        Kind::ClientGroup,
        Kind::TopicSpace,
        Kind::PermissionBinding,
    ];
    /// The path segment in resource ids and the ARM type, e.g. `clients`.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::CaCertificate => "caCertificates",
            Kind::Client => "clients",
            Kind::ClientGroup => "clientGroups",
            Kind::TopicSpace => "topicSpaces",
            Kind::PermissionBinding => "permissionBindings",
        }
    }
    pub fn type_name(self) -> String {
        format!("{NAMESPACE_TYPE}/{}", self.segment())
    }
    pub fn from_segment(segment: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.segment().eq_ignore_ascii_case(segment))
    }
}

pub const NAMESPACE_TYPE: &str = "Microsoft.EventGrid/namespaces";

/// One child resource: its kind, name and ARM `properties`.
pub struct Child {
    pub kind: Kind,
    pub name: String,
    pub properties: Value,
}

fn put_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::String(v.clone()));
    }
}

pub fn attr_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => Value::String(s.clone()),
        AttrValue::Int(i) => json!(i),
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Array(items) => json!(items),
    }
}

pub fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::Publisher => "Publisher",
        Permission::Subscriber => "Subscriber",
    }
}

pub fn state_name(s: ClientState) -> &'static str {
    match s {
        ClientState::Enabled => "Enabled",
        ClientState::Disabled => "Disabled",
    }
}

impl Namespace {
    /// The namespace's own `properties`: MQTT (topic spaces) enabled, and the
    /// settings the policy states (Event Grid's defaults for the others).
    pub fn properties(&self) -> Value {
        let mut config = Map::new();
        config.insert("state".into(), json!("Enabled"));
        if let Some(h) = self.settings.maximum_session_expiry_in_hours {
            config.insert("maximumSessionExpiryInHours".into(), json!(h));
        }
        if let Some(n) = self
            .settings
            .maximum_client_sessions_per_authentication_name
        {
            config.insert(
                "maximumClientSessionsPerAuthenticationName".into(),
                json!(n),
            );
        }
        json!({ "topicSpacesConfiguration": config })
    }

    /// Every child resource in deployment order: CA certificates and clients first,
    /// bindings last (they name groups and topic spaces).
    pub fn children(&self) -> Vec<Child> {
        let mut out = Vec::new();
        for ca in &self.ca_certificates {
            let mut p = Map::new();
            p.insert("encodedCertificate".into(), json!(ca.encoded_certificate));
            put_opt(&mut p, "description", &ca.description);
            out.push(child(Kind::CaCertificate, &ca.name, p));
        }
        for c in &self.clients {
            let mut p = Map::new();
            put_opt(&mut p, "authenticationName", &c.authentication_name);
            if let Some(s) = c.state {
                p.insert("state".into(), json!(state_name(s)));
            }
            put_opt(&mut p, "description", &c.description);
            if !c.attributes.is_empty() {
                let attrs: Map<String, Value> = c
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), attr_json(v)))
                    .collect();
                p.insert("attributes".into(), Value::Object(attrs));
            }
            if let Some(a) = &c.certificate_authentication {
                let mut auth = Map::new();
                if let Some(s) = a.validation_scheme {
                    auth.insert("validationScheme".into(), json!(s.as_str()));
                }
                if !a.allowed_thumbprints.is_empty() {
                    auth.insert("allowedThumbprints".into(), json!(a.allowed_thumbprints));
                }
                p.insert(
                    "clientCertificateAuthentication".into(),
                    Value::Object(auth),
                );
            }
            out.push(child(Kind::Client, &c.name, p));
        }
        for g in &self.client_groups {
            let mut p = Map::new();
            p.insert("query".into(), json!(g.query));
            put_opt(&mut p, "description", &g.description);
            out.push(child(Kind::ClientGroup, &g.name, p));
        }
        for s in &self.topic_spaces {
            let mut p = Map::new();
            p.insert("topicTemplates".into(), json!(s.topic_templates));
            put_opt(&mut p, "description", &s.description);
            out.push(child(Kind::TopicSpace, &s.name, p));
        }
        for b in &self.permission_bindings {
            let mut p = Map::new();
            p.insert("clientGroupName".into(), json!(b.client_group_name));
            p.insert("topicSpaceName".into(), json!(b.topic_space_name));
            p.insert("permission".into(), json!(permission_name(b.permission)));
            put_opt(&mut p, "description", &b.description);
            out.push(child(Kind::PermissionBinding, &b.name, p));
        }
        out
    }
}

fn child(kind: Kind, name: &str, properties: Map<String, Value>) -> Child {
    Child {
        kind,
        name: name.to_string(),
        properties: Value::Object(properties),
    }
}

/// The children a binding depends on besides the namespace: its client group
/// (unless the built-in `$all`) and its topic space.
pub fn binding_dependencies(b: &PermissionBinding) -> Vec<(Kind, &str)> {
    let mut out = Vec::new();
    if b.client_group_name != crate::compiler::model::ALL_GROUP_NAME {
        out.push((Kind::ClientGroup, b.client_group_name.as_str()));
    }
    out.push((Kind::TopicSpace, b.topic_space_name.as_str()));
    out
}
