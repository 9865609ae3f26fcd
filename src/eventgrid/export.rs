//! `topicgate policy export --to eventgrid-arm|eventgrid-bicep|eventgrid-az`: the
//! resolved policy as Event Grid resources ([`namespace`]) and what Event Grid cannot
//! express ([`Note`]); [`super::render`] writes the three formats.

use super::render;
pub use super::render::{arm_literal, arm_template, bicep_string, shell_quote};
use super::resources::{
    CaCertificate, CertificateAuthentication, Client, ClientGroup, Namespace, PermissionBinding,
    TopicSpace,
};
use super::template::event_grid_text;
use super::API_VERSION;
use crate::analysis::{analyze, Options, Target};
use crate::compiler::model::ResolvedPolicy;
use crate::decisions::identity::effective_scheme;
use crate::diag::span::SourceFile;
use crate::diag::Code;
use crate::source::model::{AttrValue, ValidationScheme};
use crate::source::query::{for_each_leaf, Operand, Query};
use std::collections::BTreeSet;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Arm,
    Bicep,
    Az,
}

/// Something of the policy the export does not carry to Event Grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The export would grant or refuse differently on Event Grid, or Event Grid
    /// would refuse the deployment: an error unless `--allow-lossy`.
    pub changes_meaning: bool,
    /// The resource it is about, e.g. `client sensor1`.
    pub resource: String,
    pub message: String,
}

/// The rendered export and its notes.
#[derive(Debug, Clone)]
pub struct Export {
    pub text: String,
    pub notes: Vec<Note>,
}

impl Export {
    pub fn changes_meaning(&self) -> bool {
        self.notes.iter().any(|n| n.changes_meaning)
    }
}

/// Exports `policy` (`file` is its source, for the Event Grid checks; an empty
/// file for an artifact).
pub fn export(policy: &ResolvedPolicy, file: &SourceFile, format: Format) -> Export {
    let (ns, notes) = namespace(policy, file);
    let text = match format {
        Format::Arm => render::arm(&ns),
        Format::Bicep => render::bicep(&ns),
        Format::Az => render::az(&ns),
    };
    Export { text, notes }
}

/// The policy as Event Grid resources, and what does not carry over.
pub fn namespace(policy: &ResolvedPolicy, file: &SourceFile) -> (Namespace, Vec<Note>) {
    let mut notes = Vec::new();
    let mut note = |changes_meaning: bool, resource: String, message: String| {
        notes.push(Note {
            changes_meaning,
            resource,
            message,
        })
    };
    // What `policy check --target eventgrid` refuses, Event Grid refuses too.
    let eventgrid = Options {
        target: Target::EventGrid,
        front_end_errors: false,
    };
    for d in analyze(file, policy, eventgrid) {
        let refused = matches!(
            d.code,
            Code::EventGridLimit | Code::EventGridName | Code::EventGridTemplate
        );
        if refused && d.is_error() {
            note(true, d.code.as_str().to_string(), d.message);
        }
    }
    if !policy
        .settings
        .alternative_authentication_name_sources
        .is_empty()
    {
        note(false, "namespace".into(), format!("`alternativeAuthenticationNameSources` is not part of Event Grid API {API_VERSION}; not exported"));
    }
    let boolean_keys: BTreeSet<&str> = policy
        .clients
        .iter()
        .flat_map(|c| c.attributes.iter())
        .filter(|(_, v)| matches!(v.value, AttrValue::Bool(_)))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut ns = Namespace {
        name: policy.namespace.as_ref().map(|n| n.value.clone()),
        settings: policy.settings.clone(),
        ..Namespace::default()
    };
    for ca in &policy.ca_certificates {
        ns.ca_certificates.push(CaCertificate {
            name: ca.name.value.clone(),
            encoded_certificate: pem_body(&ca.pem),
            description: ca.description.clone(),
        });
        if ca.pem.matches("-----BEGIN CERTIFICATE-----").count() > 1 {
            note(
                false,
                format!("CA certificate {}", ca.name.value),
                "holds several certificates; Event Grid takes one, the first is exported".into(),
            );
        }
    }
    let mut default_scheme = Vec::new();
    for c in &policy.clients {
        let resource = format!("client {}", c.name.value);
        let scheme = effective_scheme(c);
        let certificate_authentication = match scheme {
            None => {
                if c.is_enabled() {
                    default_scheme.push(c.name.value.clone());
                }
                None
            }
            Some(ValidationScheme::ThumbprintMatch) => Some(CertificateAuthentication {
                validation_scheme: Some(ValidationScheme::ThumbprintMatch),
                allowed_thumbprints: c
                    .authentication
                    .iter()
                    .flat_map(|a| a.allowed_thumbprints.iter().map(|t| t.value.clone()))
                    .collect(),
            }),
            Some(s) => Some(CertificateAuthentication {
                validation_scheme: Some(s),
                allowed_thumbprints: Vec::new(),
            }),
        };
        if c.authentication
            .as_ref()
            .is_some_and(|a| a.password_hash.is_some())
        {
            note(
                false,
                resource.clone(),
                "`passwordHash` is not exported: Event Grid offers no password authentication"
                    .into(),
            );
        }
        if let Some(w) = &c.will {
            let mut what = vec![format!("will on `{}`", w.topic.value)];
            if w.qos.value == 2 {
                what.push("QoS 2 (Event Grid has QoS 0 and 1)".into());
            }
            if w.retain.value {
                what.push("will retain (Event Grid does not retain wills)".into());
            }
            note(false, resource.clone(), format!("{}: a will is set per connection by the client, not in the namespace; not exported", what.join(", ")));
        }
        if !c.publishes.is_empty() || !c.subscribes.is_empty() {
            note(
                false,
                resource.clone(),
                "`publishes`/`subscribes` intents are topicgate's own checks; not exported".into(),
            );
        }
        ns.clients.push(Client {
            name: c.name.value.clone(),
            authentication_name: (c.authentication_name.value != c.name.value)
                .then(|| c.authentication_name.value.clone()),
            state: Some(c.state),
            description: c.description.clone(),
            attributes: c
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            certificate_authentication,
        });
    }
    if !default_scheme.is_empty() {
        note(false, "clients".into(), format!("{} name no validation scheme: Event Grid lets them authenticate by SubjectMatchesAuthenticationName (TG704)", default_scheme.join(", ")));
    }
    for g in policy.groups.iter().filter(|g| !g.is_builtin()) {
        let Some(query) = &g.query else {
            continue;
        };
        let mut booleans = BTreeSet::new();
        for_each_leaf(query, &mut |leaf| {
            if let Query::Cmp {
                operand: Operand::Attribute { key, .. },
                ..
            }
            | Query::In {
                operand: Operand::Attribute { key, .. },
                ..
            } = leaf
            {
                if boolean_keys.contains(key.as_str()) {
                    booleans.insert(key.clone());
                }
            }
        });
        if !booleans.is_empty() {
            note(true, format!("client group {}", g.name.value), format!("compares boolean attribute(s) {}: how Event Grid compares booleans with the query's literals is not topicgate's rule (decision 0019), so membership may differ", booleans.into_iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
        }
        ns.client_groups.push(ClientGroup {
            name: g.name.value.clone(),
            query: query.to_string(),
            description: g.description.clone(),
        });
    }
    for s in &policy.topic_spaces {
        ns.topic_spaces.push(TopicSpace {
            name: s.name.value.clone(),
            topic_templates: s
                .templates
                .iter()
                .map(|t| event_grid_text(&t.value))
                .collect(),
            description: s.description.clone(),
        });
    }
    for b in &policy.bindings {
        ns.permission_bindings.push(PermissionBinding {
            name: b.name.value.clone(),
            client_group_name: policy.groups[b.group.value as usize].name.value.clone(),
            topic_space_name: policy.topic_spaces[b.topic_space.value as usize]
                .name
                .value
                .clone(),
            permission: b.permission.value,
            description: b.description.clone(),
        });
    }
    if !policy.tests.is_empty() {
        note(
            false,
            "tests".into(),
            format!(
                "{} scenario tests are topicgate's own; not exported",
                policy.tests.len()
            ),
        );
    }
    (ns, notes)
}

/// The base64 body of the first certificate of a PEM text.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect()
}
