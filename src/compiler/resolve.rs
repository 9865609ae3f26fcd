//! Resolution: names to indices, queries and templates parsed, defaults applied.
//! Every problem becomes a diagnostic; resolution goes on past errors so that one
//! run reports them all.

use super::model::*;
use crate::diag::span::{SourceFile, Sp, Span};
use crate::diag::{suggestion, Code, Diagnostic, Diagnostics};
use crate::source::model::{ClientState, PolicyDoc, TestAction as DocAction};
use crate::source::query;
use crate::topic;
use crate::topic::Template;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where relative paths in the policy (CA certificate files) are resolved from.
pub struct ResolveContext<'a> {
    pub file: &'a SourceFile,
    pub base_dir: Option<&'a Path>,
}

pub fn resolve(doc: &PolicyDoc, cx: &ResolveContext) -> (ResolvedPolicy, Diagnostics) {
    let mut diags = Vec::new();
    let mut policy = ResolvedPolicy {
        namespace: doc.namespace.clone(),
        settings: doc.settings.as_ref().map(settings).unwrap_or_default(),
        clients: Vec::new(),
        groups: vec![Group {
            name: Sp::unspanned(ALL_GROUP_NAME.to_string()),
            query_text: None,
            query: None,
            description: Some("every client".into()),
        }],
        topic_spaces: Vec::new(),
        bindings: Vec::new(),
        ca_certificates: Vec::new(),
        tests: Vec::new(),
    };
    resolve_clients(doc, &mut policy, &mut diags);
    resolve_groups(doc, cx, &mut policy, &mut diags);
    resolve_spaces(doc, cx, &mut policy, &mut diags);
    resolve_bindings(doc, &mut policy, &mut diags);
    resolve_cas(doc, cx, &mut policy, &mut diags);
    policy.tests = doc.tests.iter().map(resolve_test).collect();
    (policy, diags)
}

/// The settings as the broker and the exports read them (the front end checked
/// the ranges, 1-8 and 1-100, so they fit a byte).
fn settings(s: &crate::source::model::SettingsDoc) -> NamespaceSettings {
    let small = |v: &Option<Sp<i64>>| v.as_ref().and_then(|v| u8::try_from(v.value).ok());
    NamespaceSettings {
        maximum_session_expiry_in_hours: small(&s.maximum_session_expiry_in_hours),
        maximum_client_sessions_per_authentication_name: small(
            &s.maximum_client_sessions_per_authentication_name,
        ),
        alternative_authentication_name_sources: s
            .alternative_authentication_name_sources
            .iter()
            .map(|v| v.value.clone())
            .collect(),
    }
}

/// Event Grid's client names: 1-128 characters of `[A-Za-z0-9-:._]`.
pub fn valid_client_name(name: &str) -> bool {
    (1..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '_'))
}

/// Event Grid's group, topic space and binding names: 3-50 characters of `[A-Za-z0-9-]`.
pub fn valid_resource_name(name: &str) -> bool {
    (3..=50).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn check_unique<'a>(
    kind: &str,
    names: impl Iterator<Item = &'a Sp<String>>,
    diags: &mut Diagnostics,
) {
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for name in names {
        if let Some(first) = seen.get(name.value.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    format!("{kind} `{}` is defined twice", name.value),
                )
                .at(name.span)
                .label("second definition")
                .related(*first, "first defined here"),
            );
        } else {
            seen.insert(&name.value, name.span);
        }
    }
}

fn resolve_clients(doc: &PolicyDoc, policy: &mut ResolvedPolicy, diags: &mut Diagnostics) {
    check_unique("client", doc.clients.iter().map(|c| &c.name), diags);
    let mut auth_names: HashMap<String, (String, Span)> = HashMap::new();
    for c in &doc.clients {
        if !valid_client_name(&c.name.value) {
            diags.push(
                Diagnostic::new(
                    Code::InvalidName,
                    format!("client name `{}` is not valid", c.name.value),
                )
                .at(c.name.span)
                .help(
                    "client names are 1-128 characters of letters, digits, `-`, `:`, `.` and `_`",
                ),
            );
        }
        let auth = c
            .authentication_name
            .clone()
            .unwrap_or_else(|| c.name.clone());
        let len = auth.value.chars().count();
        if !(1..=128).contains(&len) {
            diags.push(
                Diagnostic::new(
                    Code::InvalidName,
                    format!(
                        "authentication name of `{}` must be 1-128 characters, it has {len}",
                        c.name.value
                    ),
                )
                .at(auth.span),
            );
        }
        let key = auth.value.to_lowercase();
        if let Some((other, first)) = auth_names
            .get(&key)
            .filter(|(other, _)| *other != c.name.value)
        {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateAuthenticationName,
                    format!("clients `{other}` and `{}` share the authentication name `{}`", c.name.value, auth.value),
                )
                .at(auth.span)
                .label("same name, compared case-insensitively")
                .related(*first, format!("authentication name of `{other}`"))
                .help("the broker could not tell these clients apart; give each a unique authenticationName"),
            );
        } else {
            auth_names.insert(key, (c.name.value.clone(), auth.span));
        }
        let mut attributes = BTreeMap::new();
        for (k, v) in &c.attributes {
            if k.value.is_empty()
                || !k
                    .value
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidName,
                        format!("attribute name `{}` is not valid", k.value),
                    )
                    .at(k.span)
                    .help("attribute names are letters, digits and `_`"),
                );
            }
            attributes.insert(k.value.clone(), v.clone());
        }
        let authentication = c.authentication.as_ref().map(|a| Authentication {
            span: a.span,
            validation_scheme: a.validation_scheme.as_ref().map(|s| s.value),
            allowed_thumbprints: a
                .allowed_thumbprints
                .iter()
                .filter_map(|t| match normalize_thumbprint(&t.value) {
                    Some(n) => Some(Sp::new(n, t.span)),
                    None => {
                        diags.push(
                            Diagnostic::new(Code::InvalidValue, format!("`{}` is not a SHA-256 thumbprint", t.value))
                                .at(t.span)
                                .help("a thumbprint is 64 hexadecimal digits, optionally separated by `:`; `topicgate certs thumbprint FILE` prints it"),
                        );
                        None
                    }
                })
                .collect(),
            password_hash: a.password_hash.as_ref().and_then(|h| {
                if argon2::PasswordHash::new(&h.value).is_ok() {
                    Some(h.clone())
                } else {
                    diags.push(
                        Diagnostic::new(Code::InvalidValue, "`passwordHash` is not a PHC password hash")
                            .at(h.span)
                            .help("expected an argon2 hash such as `$argon2id$v=19$m=19456,t=2,p=1$...`; `topicgate passwd` makes one"),
                    );
                    None
                }
            }),
        });
        let will = c.will.as_ref().map(|w| Will {
            span: w.span,
            topic: w.topic.clone(),
            qos: w.qos.clone().unwrap_or(Sp::unspanned(0)),
            retain: w.retain.clone().unwrap_or(Sp::unspanned(false)),
            delay_seconds: w.delay_seconds.clone(),
        });
        policy.clients.push(Client {
            name: c.name.clone(),
            authentication_name: auth,
            state: c
                .state
                .as_ref()
                .map(|s| s.value)
                .unwrap_or(ClientState::Enabled),
            description: c.description.as_ref().map(|d| d.value.clone()),
            attributes,
            authentication,
            will,
            publishes: c.publishes.clone(),
            subscribes: c.subscribes.clone(),
        });
    }
}

/// `3A:1F:...` or `3a1f...` to `3a1f...`; `None` unless 64 hex digits remain.
pub fn normalize_thumbprint(t: &str) -> Option<String> {
    let hex: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn resolve_groups(
    doc: &PolicyDoc,
    cx: &ResolveContext,
    policy: &mut ResolvedPolicy,
    diags: &mut Diagnostics,
) {
    check_unique(
        "client group",
        doc.client_groups.iter().map(|g| &g.name),
        diags,
    );
    for g in &doc.client_groups {
        if g.name.value == ALL_GROUP_NAME {
            diags.push(
                Diagnostic::new(Code::RedefinedAll, "the built-in group `$all` cannot be redefined")
                    .at(g.name.span)
                    .help("`$all` already contains every client; bind it directly or give this group another name"),
            );
            continue;
        }
        if !valid_resource_name(&g.name.value) {
            diags.push(invalid_resource_name("client group", &g.name));
        }
        // A query without a span was never written: the reader kept the group (it is
        // declared) after reporting why its query is missing; it matches nobody.
        let written = g.query.span != Span::NONE;
        let query = match written.then(|| query::parse(&g.query.value)) {
            None => None,
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                let span = cx
                    .file
                    .inner_span(g.query.span, &g.query.value, e.at.0, e.at.1);
                diags.push(
                    Diagnostic::new(
                        Code::QuerySyntax,
                        format!("invalid query of group `{}`: {}", g.name.value, e.message),
                    )
                    .at(span)
                    .label("here")
                    .help(
                        "queries look like `attributes.type = 'sensor' AND attributes.floor >= 3`",
                    ),
                );
                None
            }
        };
        policy.groups.push(Group {
            name: g.name.clone(),
            query_text: written.then(|| g.query.clone()),
            query,
            description: g.description.as_ref().map(|d| d.value.clone()),
        });
    }
}

fn invalid_resource_name(kind: &str, name: &Sp<String>) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidName,
        format!("{kind} name `{}` is not valid", name.value),
    )
    .at(name.span)
    .help(
        "names of groups, topic spaces and bindings are 3-50 characters of letters, digits and `-`",
    )
}

fn resolve_spaces(
    doc: &PolicyDoc,
    cx: &ResolveContext,
    policy: &mut ResolvedPolicy,
    diags: &mut Diagnostics,
) {
    check_unique(
        "topic space",
        doc.topic_spaces.iter().map(|s| &s.name),
        diags,
    );
    for s in &doc.topic_spaces {
        if !valid_resource_name(&s.name.value) {
            diags.push(invalid_resource_name("topic space", &s.name));
        }
        // A topic space without templates is reported by the reader, which knows
        // whether an earlier error (a body that is not a mapping) explains it.
        let mut templates = Vec::new();
        for t in &s.topic_templates {
            match Template::parse(&t.value) {
                Ok(parsed) => templates.push(Sp::new(parsed, t.span)),
                Err(e) => diags.push(template_error(cx, t, &e, "template")),
            }
        }
        policy.topic_spaces.push(TopicSpace {
            name: s.name.clone(),
            templates,
            description: s.description.as_ref().map(|d| d.value.clone()),
        });
    }
}

/// A diagnostic for a template (or topic, or filter) that does not parse, pointing
/// at the exact column inside the string.
pub fn template_error(
    cx: &ResolveContext,
    text: &Sp<String>,
    e: &topic::TemplateError,
    what: &str,
) -> Diagnostic {
    let span = cx
        .file
        .inner_span(text.span, &text.value, e.at.0, e.at.1.max(e.at.0 + 1));
    let code = match e.kind {
        topic::TemplateErrorKind::Syntax => Code::TemplateSyntax,
        topic::TemplateErrorKind::UnknownVariable => Code::UnknownVariable,
        topic::TemplateErrorKind::Reserved => Code::ReservedTemplate,
        topic::TemplateErrorKind::SpacedVariable => Code::SpacedVariable,
    };
    let mut d = Diagnostic::new(
        code,
        format!("invalid {what} `{}`: {}", text.value, e.message),
    )
    .at(span)
    .label("here");
    if let Some(h) = &e.help {
        d = d.help(h.clone());
    }
    d
}

fn resolve_bindings(doc: &PolicyDoc, policy: &mut ResolvedPolicy, diags: &mut Diagnostics) {
    check_unique(
        "permission binding",
        doc.permission_bindings.iter().map(|b| &b.name),
        diags,
    );
    for b in &doc.permission_bindings {
        if !valid_resource_name(&b.name.value) {
            diags.push(invalid_resource_name("permission binding", &b.name));
        }
        let group = b.client_group.as_ref().and_then(|cg| {
            let found = policy.group_by_name(&cg.value);
            if found.is_none() {
                let names: Vec<&str> = policy
                    .groups
                    .iter()
                    .map(|g| g.name.value.as_str())
                    .collect();
                diags.push(
                    Diagnostic::new(
                        Code::UnknownGroup,
                        format!(
                            "binding `{}` names unknown client group `{}`",
                            b.name.value, cg.value
                        ),
                    )
                    .at(cg.span)
                    .label("no such group")
                    .help(suggestion(&cg.value, names.iter().copied())),
                );
            }
            found.map(|g| Sp::new(g, cg.span))
        });
        let space = b.topic_space.as_ref().and_then(|ts| {
            let found = policy.space_by_name(&ts.value);
            if found.is_none() {
                let names: Vec<&str> = policy
                    .topic_spaces
                    .iter()
                    .map(|s| s.name.value.as_str())
                    .collect();
                diags.push(
                    Diagnostic::new(
                        Code::UnknownTopicSpace,
                        format!(
                            "binding `{}` names unknown topic space `{}`",
                            b.name.value, ts.value
                        ),
                    )
                    .at(ts.span)
                    .label("no such topic space")
                    .help(suggestion(&ts.value, names.iter().copied())),
                );
            }
            found.map(|s| Sp::new(s, ts.span))
        });
        if let (Some(group), Some(topic_space), Some(permission)) =
            (group, space, b.permission.clone())
        {
            policy.bindings.push(Binding {
                name: b.name.clone(),
                group,
                topic_space,
                permission,
                description: b.description.as_ref().map(|d| d.value.clone()),
            });
        }
    }
}

fn resolve_cas(
    doc: &PolicyDoc,
    cx: &ResolveContext,
    policy: &mut ResolvedPolicy,
    diags: &mut Diagnostics,
) {
    check_unique(
        "CA certificate",
        doc.ca_certificates.iter().map(|c| &c.name),
        diags,
    );
    for ca in &doc.ca_certificates {
        let (source, pem) = if let Some(enc) = &ca.encoded_certificate {
            (Sp::new("inline".to_string(), enc.span), enc.value.clone())
        } else if let Some(file) = &ca.file {
            let path = match cx.base_dir {
                Some(dir) => dir.join(&file.value),
                None => Path::new(&file.value).to_path_buf(),
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => (file.clone(), text),
                Err(e) => {
                    diags.push(
                        Diagnostic::new(
                            Code::Io,
                            format!("cannot read CA certificate `{}`: {e}", file.value),
                        )
                        .at(file.span)
                        .help("paths are relative to the policy file"),
                    );
                    continue;
                }
            }
        } else {
            continue;
        };
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    format!(
                        "CA certificate `{}` is not a PEM certificate",
                        ca.name.value
                    ),
                )
                .at(source.span),
            );
            continue;
        }
        policy.ca_certificates.push(CaCertificate {
            name: ca.name.clone(),
            source,
            pem,
            description: ca.description.as_ref().map(|d| d.value.clone()),
        });
    }
}

pub fn resolve_test(t: &crate::source::model::TestDoc) -> PolicyTest {
    PolicyTest {
        span: t.span,
        client: t.client.clone(),
        action: match &t.action {
            DocAction::Publish(s) => TestAction::Publish(s.clone()),
            DocAction::Subscribe(s) => TestAction::Subscribe(s.clone()),
            DocAction::Receive(s) => TestAction::Receive(s.clone()),
            DocAction::Connect { will } => TestAction::Connect { will: will.clone() },
        },
        expect: t.expect.clone(),
        granted_by: t.granted_by.clone(),
    }
}
