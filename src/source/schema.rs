//! The schema reader: a spanned tree ([`super::node`]) to a [`PolicyDoc`], checking
//! the schema by hand so that every mistake is reported at once. Both front ends
//! share it: YAML reads its tree here, and the DSL lowers its statements into the
//! same tree, so that both forms get every schema check.

use super::model::*;
use super::node::{Key, Node, NodeKind};
use crate::diag::span::Sp;
use crate::diag::{did_you_mean, suggestion, Code, Diagnostic, Diagnostics};

/// Why a YAML document is not a policy at all (another kind of file, such as a
/// `package.json` or a compose file): its top level is not a mapping, or none of its
/// keys is a policy key or a misspelling of one. `None` for anything that reads as a
/// policy, with mistakes or without.
pub(crate) fn not_a_policy(root: &Node) -> Option<Diagnostic> {
    let help = "a policy is a mapping with `clients`, `clientGroups`, `topicSpaces` and `permissionBindings`";
    match &root.kind {
        NodeKind::Null => None,
        NodeKind::Map(entries) => {
            let policy_like = entries.is_empty()
                || entries.iter().any(|(k, _)| TOP.contains(&k.name.as_str()))
                || entries
                    .iter()
                    .all(|(k, _)| did_you_mean(&k.name, TOP.iter().copied()).is_some());
            (!policy_like).then(|| {
                let keys: Vec<String> = entries
                    .iter()
                    .take(3)
                    .map(|(k, _)| format!("`{}`", k.name))
                    .collect();
                Diagnostic::new(
                    Code::NotAPolicy,
                    format!(
                        "not a topicgate policy: no policy key at the top level (found {}{})",
                        keys.join(", "),
                        if entries.len() > 3 { ", ..." } else { "" }
                    ),
                )
                .at(entries[0].0.span)
                .help(help)
            })
        }
        other => Some(
            Diagnostic::new(
                Code::NotAPolicy,
                format!(
                    "not a topicgate policy: the top level is {}, not a mapping",
                    other.type_name()
                ),
            )
            .at(root.span)
            .help(help),
        ),
    }
}

/// Event Grid's ARM property names, accepted as aliases of ours so that a resource
/// can be pasted from a template: `(alias, our key)`. `policy fmt` prints our key.
pub const ARM_ALIASES: &[(&str, &str)] = &[
    ("clientCertificateAuthentication", "authentication"),
    ("clientGroupName", "clientGroup"),
    ("topicSpaceName", "topicSpace"),
];

fn canonical(key: &str) -> &str {
    ARM_ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, ours)| ours)
}

/// Reads a mapping's fields one by one and reports the keys nobody asked for.
struct Fields<'a> {
    entries: &'a [(Key, Node)],
    known: &'static [&'static str],
}

impl<'a> Fields<'a> {
    fn new(
        node: &'a Node,
        what: &str,
        known: &'static [&'static str],
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        match &node.kind {
            NodeKind::Map(entries) => {
                for (i, (key, _)) in entries.iter().enumerate() {
                    let ours = canonical(&key.name);
                    if !known.contains(&ours) {
                        diags.push(
                            Diagnostic::new(
                                Code::UnknownKey,
                                format!("unknown key `{}` in {what}", key.name),
                            )
                            .at(key.span)
                            .label("not a field of this resource")
                            .help(suggestion(&key.name, known.iter().copied())),
                        );
                    } else if let Some((first, _)) = entries[..i]
                        .iter()
                        .find(|(k, _)| k.name != key.name && canonical(&k.name) == ours)
                    {
                        diags.push(
                            Diagnostic::new(
                                Code::InvalidValue,
                                format!(
                                    "`{}` and `{}` are the same field of {what}",
                                    first.name, key.name
                                ),
                            )
                            .at(key.span)
                            .label("second spelling")
                            .related(first.span, "first spelling")
                            .help(format!("keep only `{ours}`")),
                        );
                    }
                }
                Some(Fields { entries, known })
            }
            NodeKind::Null => Some(Fields {
                entries: &[],
                known,
            }),
            other => {
                diags.push(wrong_type(
                    node,
                    &format!("{what} must be a mapping"),
                    other.type_name(),
                ));
                None
            }
        }
    }
    /// The field `key`, written as `key` or as its ARM alias (the first one wins
    /// when both are written, which is reported); when it is absent, the value of the
    /// one unknown key that is a misspelling of it (already reported as TG002 with
    /// "did you mean `key`?"). Reading on as if corrected, as rustc does, keeps the
    /// typo from cascading into a missing field, an unknown topic space and denied
    /// wills: the one real error is reported alone. The policy still has that error,
    /// so it never deploys.
    fn get(&self, key: &str) -> Option<&'a Node> {
        debug_assert!(self.known.contains(&key));
        self.entries
            .iter()
            .find(|(k, _)| canonical(&k.name) == key)
            .or_else(|| {
                let mut misspelt = self.entries.iter().filter(|(k, _)| {
                    !self.known.contains(&canonical(&k.name))
                        && did_you_mean(&k.name, self.known.iter().copied()) == Some(key)
                });
                match (misspelt.next(), misspelt.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
            .map(|(_, v)| v)
    }
}

fn wrong_type(node: &Node, expected: &str, found: &str) -> Diagnostic {
    Diagnostic::new(Code::WrongType, format!("{expected}, found {found}")).at(node.span)
}

fn string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<Sp<String>> {
    match &node.kind {
        NodeKind::Str(s) => Some(Sp::new(s.clone(), node.span)),
        // A number or boolean where a name is expected is accepted as its text: `floor: 3`
        // is an integer attribute, but a name like `1234` is a string.
        NodeKind::Int(i) => Some(Sp::new(i.to_string(), node.span)),
        NodeKind::BigInt(s) => Some(Sp::new(s.clone(), node.span)),
        other => {
            diags.push(wrong_type(
                node,
                &format!("{what} must be a string"),
                other.type_name(),
            ));
            None
        }
    }
}

fn opt_string(f: &Fields, key: &str, what: &str, diags: &mut Diagnostics) -> Option<Sp<String>> {
    f.get(key).and_then(|n| string(n, what, diags))
}

fn required(
    f: &Fields,
    key: &str,
    owner: &Sp<String>,
    kind: &str,
    diags: &mut Diagnostics,
) -> Option<&'static ()> {
    if f.get(key).is_none() {
        diags.push(
            Diagnostic::new(
                Code::MissingField,
                format!("{kind} `{}` has no `{key}`", owner.value),
            )
            .at(owner.span)
            .label(format!("`{key}` is required"))
            .help(format!("add `{key}:` under `{}`", owner.value)),
        );
        return None;
    }
    Some(&())
}

fn string_list(node: &Node, what: &str, diags: &mut Diagnostics) -> Vec<Sp<String>> {
    match &node.kind {
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|n| string(n, what, diags))
            .collect(),
        NodeKind::Str(_) => string(node, what, diags).into_iter().collect(),
        NodeKind::Null => Vec::new(),
        other => {
            diags.push(wrong_type(
                node,
                &format!("{what} must be a list of strings"),
                other.type_name(),
            ));
            Vec::new()
        }
    }
}

/// A mapping of named resources (`clients:`, `clientGroups:` ...).
fn named_entries<'a>(
    node: Option<&'a Node>,
    what: &str,
    diags: &mut Diagnostics,
) -> &'a [(Key, Node)] {
    match node.map(|n| (n, &n.kind)) {
        None | Some((_, NodeKind::Null)) => &[],
        Some((_, NodeKind::Map(entries))) => entries,
        Some((n, other)) => {
            diags.push(wrong_type(
                n,
                &format!("`{what}` must be a mapping from names to definitions"),
                other.type_name(),
            ));
            &[]
        }
    }
}

fn key_sp(key: &Key) -> Sp<String> {
    Sp::new(key.name.clone(), key.span)
}

const TOP: &[&str] = &[
    "namespace",
    "topicSpacesConfiguration",
    "clients",
    "clientGroups",
    "topicSpaces",
    "permissionBindings",
    "caCertificates",
    "tests",
];

/// Reads a policy from a spanned tree, whichever front end built it: the DSL lowers
/// its statements into the same tree so that both forms share every schema check.
pub(crate) fn read_policy(root: &Node, diags: &mut Diagnostics) -> PolicyDoc {
    let mut doc = PolicyDoc::default();
    let Some(f) = Fields::new(root, "the policy", TOP, diags) else {
        return doc;
    };
    doc.namespace = opt_string(&f, "namespace", "`namespace`", diags);
    doc.settings = f
        .get("topicSpacesConfiguration")
        .and_then(|n| read_settings(n, diags));
    for (key, body) in named_entries(f.get("clients"), "clients", diags) {
        if let Some(c) = read_client(key, body, diags) {
            doc.clients.push(c);
        }
    }
    for (key, body) in named_entries(f.get("clientGroups"), "clientGroups", diags) {
        if let Some(g) = read_group(key, body, diags) {
            doc.client_groups.push(g);
        }
    }
    for (key, body) in named_entries(f.get("topicSpaces"), "topicSpaces", diags) {
        if let Some(t) = read_topic_space(key, body, diags) {
            doc.topic_spaces.push(t);
        }
    }
    for (key, body) in named_entries(f.get("permissionBindings"), "permissionBindings", diags) {
        if let Some(b) = read_binding(key, body, diags) {
            doc.permission_bindings.push(b);
        }
    }
    for (key, body) in named_entries(f.get("caCertificates"), "caCertificates", diags) {
        if let Some(c) = read_ca(key, body, diags) {
            doc.ca_certificates.push(c);
        }
    }
    if let Some(tests) = f.get("tests") {
        match &tests.kind {
            NodeKind::Seq(items) => {
                doc.tests = items.iter().filter_map(|t| read_test(t, diags)).collect()
            }
            NodeKind::Null => {}
            other => diags.push(wrong_type(
                tests,
                "`tests` must be a list",
                other.type_name(),
            )),
        }
    }
    doc
}

const SETTINGS: &[&str] = &[
    "maximumSessionExpiryInHours",
    "maximumClientSessionsPerAuthenticationName",
    "alternativeAuthenticationNameSources",
];

/// `topicSpacesConfiguration:`; the ranges are Event Grid's, checked here because
/// no broker accepts values outside them.
fn read_settings(node: &Node, diags: &mut Diagnostics) -> Option<SettingsDoc> {
    let f = Fields::new(node, "`topicSpacesConfiguration`", SETTINGS, diags)?;
    let mut int_in = |key: &str, range: std::ops::RangeInclusive<i64>| {
        let n = f.get(key)?;
        match &n.kind {
            NodeKind::Int(i) if range.contains(i) => Some(Sp::new(*i, n.span)),
            NodeKind::Int(_) | NodeKind::BigInt(_) => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!(
                            "`{key}` must be between {} and {}",
                            range.start(),
                            range.end()
                        ),
                    )
                    .at(n.span)
                    .label("out of range"),
                );
                None
            }
            other => {
                diags.push(wrong_type(
                    n,
                    &format!("`{key}` must be an integer"),
                    other.type_name(),
                ));
                None
            }
        }
    };
    let maximum_session_expiry_in_hours = int_in("maximumSessionExpiryInHours", 1..=8);
    let maximum_client_sessions_per_authentication_name =
        int_in("maximumClientSessionsPerAuthenticationName", 1..=100);
    let mut sources = Vec::new();
    if let Some(n) = f.get("alternativeAuthenticationNameSources") {
        for s in string_list(n, "`alternativeAuthenticationNameSources`", diags) {
            match ALTERNATIVE_NAME_SOURCES
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&s.value))
            {
                Some(k) => sources.push(Sp::new(k.to_string(), s.span)),
                None => diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("unknown authentication name source `{}`", s.value),
                    )
                    .at(s.span)
                    .help(suggestion(&s.value, ALTERNATIVE_NAME_SOURCES)),
                ),
            }
        }
    }
    Some(SettingsDoc {
        span: node.span,
        maximum_session_expiry_in_hours,
        maximum_client_sessions_per_authentication_name,
        alternative_authentication_name_sources: sources,
    })
}

const CLIENT: &[&str] = &[
    "authenticationName",
    "state",
    "description",
    "attributes",
    "authentication",
    "will",
    "publishes",
    "subscribes",
];

fn read_client(key: &Key, body: &Node, diags: &mut Diagnostics) -> Option<ClientDoc> {
    let name = key_sp(key);
    let f = Fields::new(body, &format!("client `{}`", name.value), CLIENT, diags)?;
    let state = f.get("state").and_then(|n| {
        let s = string(n, "`state`", diags)?;
        match s.value.to_ascii_lowercase().as_str() {
            "enabled" => Some(Sp::new(ClientState::Enabled, s.span)),
            "disabled" => Some(Sp::new(ClientState::Disabled, s.span)),
            _ => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("`state` must be `Enabled` or `Disabled`, not `{}`", s.value),
                    )
                    .at(s.span)
                    .help(suggestion(&s.value, ["Enabled", "Disabled"])),
                );
                None
            }
        }
    });
    let attributes = match f.get("attributes") {
        None => Vec::new(),
        Some(n) => read_attributes(n, diags),
    };
    Some(ClientDoc {
        authentication_name: opt_string(&f, "authenticationName", "`authenticationName`", diags),
        state,
        description: opt_string(&f, "description", "`description`", diags),
        attributes,
        authentication: f.get("authentication").and_then(|n| read_auth(n, diags)),
        will: f.get("will").and_then(|n| read_will(n, &name, diags)),
        publishes: f
            .get("publishes")
            .map(|n| string_list(n, "`publishes`", diags))
            .unwrap_or_default(),
        subscribes: f
            .get("subscribes")
            .map(|n| string_list(n, "`subscribes`", diags))
            .unwrap_or_default(),
        name,
    })
}

fn read_attributes(node: &Node, diags: &mut Diagnostics) -> Vec<(Sp<String>, Sp<AttrValue>)> {
    let entries = match &node.kind {
        NodeKind::Map(e) => e,
        NodeKind::Null => return Vec::new(),
        other => {
            diags.push(wrong_type(
                node,
                "`attributes` must be a mapping",
                other.type_name(),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let v = match &value.kind {
            NodeKind::Str(s) => AttrValue::Str(s.clone()),
            NodeKind::Int(i) => AttrValue::Int(*i),
            NodeKind::Bool(b) => AttrValue::Bool(*b),
            NodeKind::Seq(items) => {
                let mut strings = Vec::new();
                for item in items {
                    match &item.kind {
                        NodeKind::Str(s) => strings.push(s.clone()),
                        other => diags.push(wrong_type(
                            item,
                            &format!(
                                "attribute `{}` is an array, whose elements must be strings",
                                key.name
                            ),
                            other.type_name(),
                        )),
                    }
                }
                AttrValue::Array(strings)
            }
            NodeKind::BigInt(s) => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!(
                            "attribute `{}` is out of the 64-bit integer range: {s}",
                            key.name
                        ),
                    )
                    .at(value.span),
                );
                continue;
            }
            other => {
                diags.push(
                    wrong_type(
                        value,
                        &format!(
                            "attribute `{}` must be a string, an integer, a boolean or a list of strings",
                            key.name
                        ),
                        other.type_name(),
                    )
                    .help("quote the value to make it a string"),
                );
                continue;
            }
        };
        out.push((key_sp(key), Sp::new(v, value.span)));
    }
    out
}

const AUTH: &[&str] = &["validationScheme", "allowedThumbprints", "passwordHash"];

fn read_auth(node: &Node, diags: &mut Diagnostics) -> Option<AuthDoc> {
    let f = Fields::new(node, "`authentication`", AUTH, diags)?;
    let validation_scheme = f.get("validationScheme").and_then(|n| {
        let s = string(n, "`validationScheme`", diags)?;
        match ValidationScheme::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&s.value))
        {
            Some((_, scheme)) => Some(Sp::new(*scheme, s.span)),
            None => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("unknown validation scheme `{}`", s.value),
                    )
                    .at(s.span)
                    .help(suggestion(
                        &s.value,
                        ValidationScheme::ALL.iter().map(|(n, _)| *n),
                    )),
                );
                None
            }
        }
    });
    Some(AuthDoc {
        span: node.span,
        validation_scheme,
        allowed_thumbprints: f
            .get("allowedThumbprints")
            .map(|n| string_list(n, "`allowedThumbprints`", diags))
            .unwrap_or_default(),
        password_hash: opt_string(&f, "passwordHash", "`passwordHash`", diags),
    })
}

const WILL: &[&str] = &["topic", "qos", "retain", "delaySeconds"];

fn read_will(node: &Node, owner: &Sp<String>, diags: &mut Diagnostics) -> Option<WillDoc> {
    let f = Fields::new(node, "`will`", WILL, diags)?;
    let Some(topic_node) = f.get("topic") else {
        diags.push(
            Diagnostic::new(
                Code::MissingField,
                format!("the will of client `{}` has no `topic`", owner.value),
            )
            .at(node.span)
            .help("add `topic:` under `will`"),
        );
        return None;
    };
    let topic = string(topic_node, "the will `topic`", diags)?;
    let qos = f.get("qos").and_then(|n| match &n.kind {
        NodeKind::Int(q @ 0..=2) => Some(Sp::new(*q as u8, n.span)),
        NodeKind::Int(q) => {
            diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    format!("will QoS must be 0, 1 or 2, not {q}"),
                )
                .at(n.span),
            );
            None
        }
        other => {
            diags.push(wrong_type(
                n,
                "will `qos` must be 0, 1 or 2",
                other.type_name(),
            ));
            None
        }
    });
    let retain = f.get("retain").and_then(|n| match &n.kind {
        NodeKind::Bool(b) => Some(Sp::new(*b, n.span)),
        other => {
            diags.push(wrong_type(
                n,
                "will `retain` must be true or false",
                other.type_name(),
            ));
            None
        }
    });
    let delay_seconds = f.get("delaySeconds").and_then(|n| match &n.kind {
        NodeKind::Int(d) if (0..=u32::MAX as i64).contains(d) => Some(Sp::new(*d as u32, n.span)),
        NodeKind::Int(_) | NodeKind::BigInt(_) => {
            diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    "will `delaySeconds` must be between 0 and 4294967295".to_string(),
                )
                .at(n.span),
            );
            None
        }
        other => {
            diags.push(wrong_type(
                n,
                "will `delaySeconds` must be an integer",
                other.type_name(),
            ));
            None
        }
    });
    Some(WillDoc {
        span: node.span,
        topic,
        qos,
        retain,
        delay_seconds,
    })
}

const GROUP: &[&str] = &["query", "description"];

/// Like a topic space, a client group whose body or query cannot be read (reported
/// here) stays declared, with an unwritten query (no span) that matches nobody: a
/// binding naming it must not be reported as naming an unknown group.
fn read_group(key: &Key, body: &Node, diags: &mut Diagnostics) -> Option<GroupDoc> {
    let name = key_sp(key);
    let unwritten = |name: Sp<String>| GroupDoc {
        name,
        query: Sp::unspanned(String::new()),
        description: None,
    };
    let Some(f) = Fields::new(
        body,
        &format!("client group `{}`", name.value),
        GROUP,
        diags,
    ) else {
        return Some(unwritten(name));
    };
    if required(&f, "query", &name, "client group", diags).is_none() {
        return Some(unwritten(name));
    }
    let Some(query) = opt_string(&f, "query", "`query`", diags) else {
        return Some(unwritten(name));
    };
    Some(GroupDoc {
        description: opt_string(&f, "description", "`description`", diags),
        name,
        query,
    })
}

const SPACE: &[&str] = &["topicTemplates", "description"];

/// A topic space is kept, without templates, even when its body cannot be read (the
/// error is reported here): it is declared, so a binding naming it must not be
/// reported as naming an unknown topic space, with a suggestion of another one.
fn read_topic_space(key: &Key, body: &Node, diags: &mut Diagnostics) -> Option<TopicSpaceDoc> {
    let name = key_sp(key);
    let Some(f) = Fields::new(body, &format!("topic space `{}`", name.value), SPACE, diags) else {
        return Some(TopicSpaceDoc {
            name,
            topic_templates: Vec::new(),
            description: None,
        });
    };
    let topic_templates = match f.get("topicTemplates") {
        None => {
            required(&f, "topicTemplates", &name, "topic space", diags);
            Vec::new()
        }
        Some(n) => {
            let templates = string_list(n, "`topicTemplates`", diags);
            let none_written = match &n.kind {
                NodeKind::Seq(items) => items.is_empty(),
                NodeKind::Null => true,
                _ => false,
            };
            if none_written {
                diags.push(
                    Diagnostic::new(
                        Code::MissingField,
                        format!("topic space `{}` has no topic templates", name.value),
                    )
                    .at(name.span)
                    .help("add at least one template under `topicTemplates`"),
                );
            }
            templates
        }
    };
    Some(TopicSpaceDoc {
        description: opt_string(&f, "description", "`description`", diags),
        name,
        topic_templates,
    })
}

const BINDING: &[&str] = &["clientGroup", "topicSpace", "permission", "description"];

fn read_binding(key: &Key, body: &Node, diags: &mut Diagnostics) -> Option<BindingDoc> {
    let name = key_sp(key);
    let f = Fields::new(
        body,
        &format!("permission binding `{}`", name.value),
        BINDING,
        diags,
    )?;
    for field in ["clientGroup", "topicSpace", "permission"] {
        required(&f, field, &name, "permission binding", diags);
    }
    let client_group = opt_string(&f, "clientGroup", "`clientGroup`", diags);
    let topic_space = opt_string(&f, "topicSpace", "`topicSpace`", diags);
    let permission = opt_string(&f, "permission", "`permission`", diags).and_then(|p| {
        match p.value.to_ascii_lowercase().as_str() {
            "publisher" => Some(Sp::new(Permission::Publisher, p.span)),
            "subscriber" => Some(Sp::new(Permission::Subscriber, p.span)),
            _ => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!(
                            "`permission` must be `publisher` or `subscriber`, not `{}`",
                            p.value
                        ),
                    )
                    .at(p.span)
                    .help(suggestion(&p.value, ["publisher", "subscriber"])),
                );
                None
            }
        }
    });
    // Kept even when incomplete, so that its group and topic space are still checked.
    Some(BindingDoc {
        description: opt_string(&f, "description", "`description`", diags),
        name,
        client_group,
        topic_space,
        permission,
    })
}

const CA: &[&str] = &["file", "encodedCertificate", "description"];

fn read_ca(key: &Key, body: &Node, diags: &mut Diagnostics) -> Option<CaDoc> {
    let name = key_sp(key);
    let f = Fields::new(body, &format!("CA certificate `{}`", name.value), CA, diags)?;
    let file = opt_string(&f, "file", "`file`", diags);
    let encoded_certificate = opt_string(&f, "encodedCertificate", "`encodedCertificate`", diags);
    if file.is_none() && encoded_certificate.is_none() {
        diags.push(
            Diagnostic::new(
                Code::MissingField,
                format!(
                    "CA certificate `{}` has neither `file` nor `encodedCertificate`",
                    name.value
                ),
            )
            .at(name.span)
            .help("add `file: path/to/ca.pem` (relative to the policy) or `encodedCertificate:`"),
        );
    }
    Some(CaDoc {
        description: opt_string(&f, "description", "`description`", diags),
        name,
        file,
        encoded_certificate,
    })
}

const TEST: &[&str] = &[
    "client",
    "publish",
    "subscribe",
    "receive",
    "connect",
    "expect",
    "grantedBy",
    "description",
];
const CONNECT: &[&str] = &["will"];

fn read_test(node: &Node, diags: &mut Diagnostics) -> Option<TestDoc> {
    let f = Fields::new(node, "a test", TEST, diags)?;
    let client = match f.get("client") {
        Some(n) => string(n, "test `client`", diags)?,
        None => {
            diags.push(
                Diagnostic::new(Code::MissingField, "test has no `client`")
                    .at(node.span)
                    .help("add `client: NAME`"),
            );
            return None;
        }
    };
    let mut actions = Vec::new();
    if let Some(n) = f.get("publish") {
        actions.push(string(n, "`publish`", diags).map(TestAction::Publish));
    }
    if let Some(n) = f.get("subscribe") {
        actions.push(string(n, "`subscribe`", diags).map(TestAction::Subscribe));
    }
    if let Some(n) = f.get("receive") {
        actions.push(string(n, "`receive`", diags).map(TestAction::Receive));
    }
    if let Some(n) = f.get("connect") {
        let will = match &n.kind {
            NodeKind::Null | NodeKind::Bool(true) => None,
            NodeKind::Map(_) => Fields::new(n, "`connect`", CONNECT, diags)
                .and_then(|c| c.get("will").and_then(|w| string(w, "`will`", diags))),
            other => {
                diags.push(wrong_type(
                    n,
                    "`connect` must be a mapping like `{ will: TOPIC }` or `true`",
                    other.type_name(),
                ));
                None
            }
        };
        actions.push(Some(TestAction::Connect { will }));
    }
    if actions.len() != 1 {
        diags.push(
            Diagnostic::new(Code::InvalidValue, format!("a test needs exactly one of `publish`, `subscribe`, `receive`, `connect`; found {}", actions.len()))
                .at(node.span),
        );
        return None;
    }
    let action = actions.pop().flatten()?;
    let expect = match f.get("expect") {
        None => {
            diags.push(
                Diagnostic::new(Code::MissingField, "test has no `expect`")
                    .at(node.span)
                    .help("add `expect: allow` or `expect: deny`"),
            );
            return None;
        }
        Some(n) => {
            let s = string(n, "`expect`", diags)?;
            match s.value.to_ascii_lowercase().as_str() {
                "allow" => Sp::new(Expect::Allow, s.span),
                "deny" => Sp::new(Expect::Deny, s.span),
                _ => {
                    diags.push(
                        Diagnostic::new(
                            Code::InvalidValue,
                            format!("`expect` must be `allow` or `deny`, not `{}`", s.value),
                        )
                        .at(s.span)
                        .help(suggestion(&s.value, ["allow", "deny"])),
                    );
                    return None;
                }
            }
        }
    };
    Some(TestDoc {
        span: node.span,
        client,
        action,
        expect,
        granted_by: opt_string(&f, "grantedBy", "`grantedBy`", diags),
    })
}
