//! `topicgate policy import --from eventgrid FILE... [--parameters FILE]`: Event
//! Grid's resources read from an ARM deployment template (top-level children named
//! `[format('{0}/{1}', parameters('namespaceName'), 'x')]` or nested in the
//! namespace), or from the JSON the REST API and `az ... show|list -o json` return
//! (one resource, an array, or `{"value": [...]}`), then written as a policy.
//!
//! Event Grid's defaults are made explicit where ours differ: a client that names
//! no validation scheme gets `SubjectMatchesAuthenticationName` (decision 0019).
//! Read-only fields are ignored; fields Event Grid removed in 2023 are reported.

use super::arm_expr::{eval_value, Scope};
use super::resources::{
    CaCertificate, CertificateAuthentication, Client, ClientGroup, Kind, Namespace,
    PermissionBinding, TopicSpace, NAMESPACE_TYPE,
};
use crate::source::model::{AttrValue, ClientState, Permission, ValidationScheme};
use crate::source::yaml::MAX_POLICY_BYTES;
use serde_json::{Map, Value};

pub use super::to_policy::{origin_at, to_policy};

/// One input file: its name (for messages) and text.
pub struct Input {
    pub name: String,
    pub text: String,
}

/// A problem met while importing, at a byte offset of its file when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub error: bool,
    pub file: String,
    pub offset: Option<usize>,
    pub message: String,
}

/// Where an imported resource was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `None` for the namespace itself.
    pub kind: Option<Kind>,
    pub name: String,
    pub file: String,
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub namespace: Namespace,
    pub origins: Vec<Origin>,
    pub problems: Vec<Problem>,
}

impl Imported {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.error)
    }
}

/// Fields Event Grid removed from the client and namespace APIs in 2023.
const REMOVED: &[(&str, &str)] = &[
    ("certificateSubject", "use `authenticationName` with `clientCertificateAuthentication.validationScheme: SubjectMatchesAuthenticationName`"),
    ("certificateThumbprint", "use `clientCertificateAuthentication` with `validationScheme: ThumbprintMatch` and `allowedThumbprints`"),
    ("subscriptionSupport", "Event Grid no longer has this setting; remove it"),
];

/// Reads every input (and the parameter file, for ARM templates).
pub fn import(inputs: &[Input], parameters: Option<&Input>) -> Imported {
    let mut r = Reader {
        out: Imported::default(),
        file: String::new(),
        text: String::new(),
    };
    let mut parameter_values = Map::new();
    if let Some(p) = parameters {
        r.start(p);
        if let Some(v) = r.parse(&p.text) {
            match v.get("parameters").and_then(Value::as_object) {
                Some(params) => {
                    for (k, entry) in params {
                        match entry.get("value") {
                            Some(value) => {
                                parameter_values.insert(k.clone(), value.clone());
                            }
                            None => r.problem(true, Some(k), format!("parameter `{k}` has no `value` (Key Vault references are not supported)")),
                        }
                    }
                }
                None => r.problem(
                    true,
                    None,
                    "not a parameter file: it has no `parameters` object".into(),
                ),
            }
        }
    }
    for input in inputs {
        r.start(input);
        let Some(v) = r.parse(&input.text) else {
            continue;
        };
        if is_template(&v) {
            r.template(&v, &parameter_values);
        } else if let Some(items) = v.get("value").and_then(Value::as_array).or(v.as_array()) {
            for item in items {
                r.rest_resource(item);
            }
        } else if v.get("type").is_some() {
            r.rest_resource(&v);
        } else {
            r.problem(true, None, "not an ARM template, nor Event Grid resource JSON (a resource, an array, or `{\"value\": [...]}`)".into());
        }
    }
    r.out
}

fn is_template(v: &Value) -> bool {
    v.get("resources").is_some_and(Value::is_array)
        && (v.get("contentVersion").is_some()
            || v.get("$schema")
                .and_then(Value::as_str)
                .is_some_and(|s| s.contains("deploymentTemplate")))
}

struct Reader {
    out: Imported,
    file: String,
    text: String,
}

/// A resource found in a file, before its properties are read.
struct Found<'a> {
    /// The namespace it belongs to (its own name for the namespace).
    namespace: Option<String>,
    kind: Option<Kind>,
    name: String,
    /// The name as written in the file, to find its position.
    raw_name: &'a Value,
    properties: Value,
}

impl Reader {
    fn start(&mut self, input: &Input) {
        self.file = input.name.clone();
        self.text = input.text.clone();
    }

    fn problem(&mut self, error: bool, near: Option<&str>, message: String) {
        let offset = near.and_then(|n| self.offset_of(n));
        self.out.problems.push(Problem {
            error,
            file: self.file.clone(),
            offset,
            message,
        });
    }

    /// The offset of a JSON string in the current file: exact for the first
    /// occurrence of the string as JSON writes it.
    fn offset_of(&self, s: &str) -> Option<usize> {
        let quoted = serde_json::to_string(s).ok()?;
        self.text.find(&quoted).map(|o| o + 1)
    }

    fn parse(&mut self, text: &str) -> Option<Value> {
        if text.len() > MAX_POLICY_BYTES {
            self.problem(
                true,
                None,
                format!(
                    "file is {} bytes, more than the limit of {MAX_POLICY_BYTES}",
                    text.len()
                ),
            );
            return None;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                let offset = line_col_offset(text, e.line(), e.column());
                self.out.problems.push(Problem {
                    error: true,
                    file: self.file.clone(),
                    offset,
                    message: format!("invalid JSON: {e}"),
                });
                None
            }
        }
    }

    fn template(&mut self, t: &Value, given: &Map<String, Value>) {
        let mut scope = Scope {
            variables: t
                .get("variables")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            ..Scope::default()
        };
        // Defaults that are expressions are evaluated with the variables only; one
        // that cannot be (`[resourceGroup().location]`) is left out, and a resource
        // that needs it is reported.
        let defaults = Scope {
            variables: scope.variables.clone(),
            ..Scope::default()
        };
        if let Some(params) = t.get("parameters").and_then(Value::as_object) {
            for (k, p) in params {
                if let Some(v) = given.get(k) {
                    scope.parameters.insert(k.clone(), v.clone());
                } else if let Some(d) = p.get("defaultValue") {
                    if let Ok(v) = eval_value(d, &defaults) {
                        scope.parameters.insert(k.clone(), v);
                    }
                }
            }
        }
        for k in given.keys() {
            if !scope.parameters.contains_key(k) {
                scope.parameters.insert(k.clone(), given[k].clone());
            }
        }
        // (resource, namespace of its parent) pairs, without recursion.
        let mut stack: Vec<(&Value, Option<String>)> = t["resources"]
            .as_array()
            .map(|a| a.iter().rev().map(|r| (r, None)).collect())
            .unwrap_or_default();
        while let Some((r, parent)) = stack.pop() {
            let raw_name = r.get("name").unwrap_or(&Value::Null);
            let shown = raw_name.as_str().unwrap_or("(no name)").to_string();
            if r.get("copy").is_some() {
                self.problem(true, Some(&shown), format!("resource `{shown}` uses `copy`, which import does not expand; write the resources out"));
                continue;
            }
            if let Some(c) = r.get("condition") {
                match eval_value(c, &scope) {
                    Ok(Value::Bool(false)) => continue,
                    Ok(Value::Bool(true)) => {}
                    Ok(_) | Err(_) => self.problem(false, Some(&shown), format!("the `condition` of `{shown}` cannot be evaluated; the resource is imported")),
                }
            }
            let ty = match r.get("type").map(|t| eval_value(t, &scope)) {
                Some(Ok(Value::String(t))) => t,
                Some(Err(e)) => {
                    self.problem(true, Some(&shown), format!("resource `{shown}`: {e}"));
                    continue;
                }
                _ => {
                    self.problem(
                        true,
                        Some(&shown),
                        format!("resource `{shown}` has no `type`"),
                    );
                    continue;
                }
            };
            let name = match eval_value(raw_name, &scope) {
                Ok(Value::String(n)) => n,
                Ok(_) => {
                    self.problem(
                        true,
                        Some(&shown),
                        format!("the name of `{shown}` is not a string"),
                    );
                    continue;
                }
                Err(e) => {
                    self.problem(true, Some(&shown), format!("resource `{shown}`: {e}"));
                    continue;
                }
            };
            let properties = match r.get("properties").map(|p| eval_value(p, &scope)) {
                None => Value::Object(Map::new()),
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    self.problem(true, Some(&shown), format!("resource `{shown}`: {e}"));
                    continue;
                }
            };
            let Some((kind, namespace, child)) = classify(&ty, &name, parent.as_deref()) else {
                if !ty
                    .to_ascii_lowercase()
                    .starts_with("microsoft.eventgrid/namespaces")
                {
                    self.problem(false, Some(&shown), format!("resource `{shown}` of type `{ty}` is not part of an Event Grid namespace's MQTT broker; ignored"));
                } else {
                    self.problem(
                        false,
                        Some(&shown),
                        format!(
                            "resource `{shown}` of type `{ty}` is not an MQTT resource; ignored"
                        ),
                    );
                }
                continue;
            };
            if kind.is_none() {
                if let Some(children) = r.get("resources").and_then(Value::as_array) {
                    for c in children.iter().rev() {
                        stack.push((c, Some(namespace.clone())));
                    }
                }
            }
            self.found(Found {
                namespace: Some(namespace),
                kind,
                name: child,
                raw_name,
                properties,
            });
        }
    }

    fn rest_resource(&mut self, r: &Value) {
        let ty = r
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let raw_name = r.get("name").unwrap_or(&Value::Null);
        let Some(name) = raw_name.as_str().map(str::to_string) else {
            self.problem(
                true,
                None,
                format!("a resource of type `{ty}` has no `name`"),
            );
            return;
        };
        let namespace = r
            .get("id")
            .and_then(Value::as_str)
            .and_then(namespace_of_id);
        let Some((kind, ns, child)) = classify(&ty, &name, namespace.as_deref()) else {
            self.problem(false, Some(&name), format!("resource `{name}` of type `{ty}` is not an MQTT resource of an Event Grid namespace; ignored"));
            return;
        };
        // REST JSON is literal: nothing in it is an expression.
        let properties = r
            .get("properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        self.found(Found {
            namespace: (kind.is_none() || namespace.is_some()).then_some(ns),
            kind,
            name: child,
            raw_name,
            properties,
        });
    }

    fn found(&mut self, f: Found) {
        let near = f.raw_name.as_str().unwrap_or(&f.name).to_string();
        if let Some(ns) = &f.namespace {
            match &self.out.namespace.name {
                None => self.out.namespace.name = Some(ns.clone()),
                Some(known) if known != ns => {
                    self.problem(true, Some(&near), format!("resource `{}` belongs to namespace `{ns}`, but `{known}` was read first; import one namespace at a time", f.name));
                    return;
                }
                Some(_) => {}
            }
        }
        self.removed_fields(&f.properties, &near);
        let what = match f.kind {
            None => "namespace".to_string(),
            Some(k) => format!("{} `{}`", k.segment(), f.name),
        };
        let Some(props) = f.properties.as_object() else {
            self.problem(
                true,
                Some(&near),
                format!("the properties of {what} are not an object"),
            );
            return;
        };
        let known: &[&str] = match f.kind {
            None => &[],
            Some(Kind::Client) => &[
                "authenticationName",
                "state",
                "description",
                "attributes",
                "clientCertificateAuthentication",
            ],
            Some(Kind::ClientGroup) => &["query", "description"],
            Some(Kind::TopicSpace) => &["topicTemplates", "description"],
            Some(Kind::PermissionBinding) => &[
                "clientGroupName",
                "topicSpaceName",
                "permission",
                "description",
            ],
            Some(Kind::CaCertificate) => &["encodedCertificate", "description"],
        };
        // Read-only fields Event Grid returns; never part of what is deployed.
        let read_only = ["provisioningState", "issueTimeInUtc", "expiryTimeInUtc"];
        if f.kind.is_some() {
            for k in props.keys() {
                let removed = REMOVED.iter().any(|(r, _)| r == k);
                if !known.contains(&k.as_str()) && !read_only.contains(&k.as_str()) && !removed {
                    self.problem(
                        false,
                        Some(k),
                        format!("{what}: unknown property `{k}` ignored"),
                    );
                }
            }
        }
        let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_string);
        match f.kind {
            None => self.namespace_settings(props, &near),
            Some(Kind::Client) => {
                let client = self.client(&f.name, props, &near);
                self.out.namespace.clients.push(client);
            }
            Some(Kind::ClientGroup) => {
                let query = self.required_text(props, "query", &what, &near);
                self.out.namespace.client_groups.push(ClientGroup {
                    name: f.name.clone(),
                    query,
                    description: text("description"),
                });
            }
            Some(Kind::TopicSpace) => {
                let topic_templates = self.strings(
                    props.get("topicTemplates"),
                    &format!("{what}: `topicTemplates`"),
                    &near,
                );
                self.out.namespace.topic_spaces.push(TopicSpace {
                    name: f.name.clone(),
                    topic_templates,
                    description: text("description"),
                });
            }
            Some(Kind::PermissionBinding) => {
                let client_group_name = self.required_text(props, "clientGroupName", &what, &near);
                let topic_space_name = self.required_text(props, "topicSpaceName", &what, &near);
                let permission = match text("permission")
                    .map(|p| p.to_ascii_lowercase())
                    .as_deref()
                {
                    Some("publisher") => Permission::Publisher,
                    Some("subscriber") => Permission::Subscriber,
                    other => {
                        self.problem(
                            true,
                            Some(&near),
                            format!(
                                "{what}: `permission` must be `Publisher` or `Subscriber`, not {}",
                                other.map_or("missing".to_string(), |o| format!("`{o}`"))
                            ),
                        );
                        return;
                    }
                };
                self.out
                    .namespace
                    .permission_bindings
                    .push(PermissionBinding {
                        name: f.name.clone(),
                        client_group_name,
                        topic_space_name,
                        permission,
                        description: text("description"),
                    });
            }
            Some(Kind::CaCertificate) => {
                let encoded = self.required_text(props, "encodedCertificate", &what, &near);
                self.out.namespace.ca_certificates.push(CaCertificate {
                    name: f.name.clone(),
                    encoded_certificate: encoded,
                    description: text("description"),
                });
            }
        }
        self.out.origins.push(Origin {
            kind: f.kind,
            name: f.name,
            file: self.file.clone(),
            offset: self.offset_of(&near),
        });
    }

    fn required_text(
        &mut self,
        props: &Map<String, Value>,
        key: &str,
        what: &str,
        near: &str,
    ) -> String {
        match props.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.problem(
                    true,
                    Some(near),
                    format!("{what}: `{key}` must be a string"),
                );
                String::new()
            }
            None => {
                self.problem(true, Some(near), format!("{what} has no `{key}`"));
                String::new()
            }
        }
    }

    fn strings(&mut self, v: Option<&Value>, what: &str, near: &str) -> Vec<String> {
        match v {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    _ => {
                        self.problem(true, Some(near), format!("{what} must hold strings only"));
                        None
                    }
                })
                .collect(),
            None => Vec::new(),
            Some(_) => {
                self.problem(
                    true,
                    Some(near),
                    format!("{what} must be an array of strings"),
                );
                Vec::new()
            }
        }
    }

    fn removed_fields(&mut self, v: &Value, near: &str) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        if let Some((_, instead)) = REMOVED.iter().find(|(r, _)| r == k) {
                            let at = if self.offset_of(k).is_some() {
                                k.as_str()
                            } else {
                                near
                            };
                            self.problem(true, Some(at), format!("`{k}` was removed from Event Grid's API in 2023 and is not imported: {instead}"));
                        }
                        stack.push(child);
                    }
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }

    fn namespace_settings(&mut self, props: &Map<String, Value>, near: &str) {
        let Some(config) = props
            .get("topicSpacesConfiguration")
            .and_then(Value::as_object)
        else {
            return;
        };
        let settings = &mut self.out.namespace.settings;
        let mut bad = Vec::new();
        let mut small = |key: &str, range: std::ops::RangeInclusive<u8>| match config.get(key) {
            None => None,
            Some(v) => match v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| range.contains(n))
            {
                Some(n) => Some(n),
                None => {
                    bad.push(format!(
                        "`topicSpacesConfiguration.{key}` must be between {} and {}, not {v}",
                        range.start(),
                        range.end()
                    ));
                    None
                }
            },
        };
        settings.maximum_session_expiry_in_hours = small("maximumSessionExpiryInHours", 1..=8);
        settings.maximum_client_sessions_per_authentication_name =
            small("maximumClientSessionsPerAuthenticationName", 1..=100);
        if let Some(sources) = config
            .get("clientAuthentication")
            .and_then(|c| c.get("alternativeAuthenticationNameSources"))
            .and_then(Value::as_array)
        {
            settings.alternative_authentication_name_sources = sources
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        for b in bad {
            self.problem(true, Some(near), b);
        }
    }

    fn client(&mut self, name: &str, props: &Map<String, Value>, near: &str) -> Client {
        let what = format!("client `{name}`");
        let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_string);
        let state = match text("state").map(|s| s.to_ascii_lowercase()).as_deref() {
            None => None,
            Some("enabled") => Some(ClientState::Enabled),
            Some("disabled") => Some(ClientState::Disabled),
            Some(other) => {
                self.problem(
                    true,
                    Some(near),
                    format!("{what}: `state` must be `Enabled` or `Disabled`, not `{other}`"),
                );
                None
            }
        };
        let mut attributes = Vec::new();
        if let Some(attrs) = props.get("attributes").and_then(Value::as_object) {
            for (k, v) in attrs {
                let value = match v {
                    Value::String(s) => AttrValue::Str(s.clone()),
                    Value::Bool(b) => AttrValue::Bool(*b),
                    Value::Number(n) if n.as_i64().is_some() => {
                        AttrValue::Int(n.as_i64().unwrap_or_default())
                    }
                    Value::Array(items) if items.iter().all(Value::is_string) => AttrValue::Array(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    ),
                    _ => {
                        self.problem(true, Some(k), format!("{what}: attribute `{k}` must be a string, an integer, a boolean or an array of strings"));
                        continue;
                    }
                };
                attributes.push((k.clone(), value));
            }
        }
        let auth = props.get("clientCertificateAuthentication");
        let scheme = match auth
            .and_then(|a| a.get("validationScheme"))
            .and_then(Value::as_str)
        {
            None => None,
            Some(s) => match ValidationScheme::ALL
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s))
            {
                Some((_, v)) => Some(*v),
                None => {
                    self.problem(
                        true,
                        Some(s),
                        format!("{what}: unknown validation scheme `{s}`"),
                    );
                    None
                }
            },
        };
        let allowed_thumbprints = self.strings(
            auth.and_then(|a| a.get("allowedThumbprints")),
            &format!("{what}: `allowedThumbprints`"),
            near,
        );
        Client {
            name: name.to_string(),
            authentication_name: text("authenticationName"),
            state,
            description: text("description"),
            attributes,
            certificate_authentication: Some(CertificateAuthentication {
                // Event Grid's default when none is named (decision 0019).
                validation_scheme: Some(
                    scheme.unwrap_or(ValidationScheme::SubjectMatchesAuthenticationName),
                ),
                allowed_thumbprints,
            }),
        }
    }
}

/// `(kind, namespace, child name)` of a resource: `kind` is `None` for the
/// namespace. `name` is `ns/child` at the top level of a template, `child` when
/// nested in the namespace (`parent`) or read from REST JSON.
fn classify(ty: &str, name: &str, parent: Option<&str>) -> Option<(Option<Kind>, String, String)> {
    let lower = ty.to_ascii_lowercase();
    let ns_type = NAMESPACE_TYPE.to_ascii_lowercase();
    if lower == ns_type {
        return Some((None, name.to_string(), name.to_string()));
    }
    let segment = match lower.strip_prefix(&format!("{ns_type}/")) {
        Some(s) => s.to_string(),
        // Nested: the type may be the child's segment alone.
        None if parent.is_some() && !ty.contains('/') => lower.clone(),
        None => return None,
    };
    let kind = Kind::from_segment(&segment)?;
    match name.split_once('/') {
        Some((ns, child)) => Some((Some(kind), ns.to_string(), child.to_string())),
        None => Some((
            Some(kind),
            parent.unwrap_or_default().to_string(),
            name.to_string(),
        )),
    }
}

/// The namespace of a resource id `.../providers/Microsoft.EventGrid/namespaces/NS/...`.
fn namespace_of_id(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split('/').collect();
    parts
        .windows(2)
        .find(|w| w[0].eq_ignore_ascii_case("namespaces"))
        .map(|w| w[1].to_string())
}

fn line_col_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    Some((start + column.saturating_sub(1)).min(text.len()))
}
