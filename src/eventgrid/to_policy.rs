//! An imported namespace as a policy document, with Event Grid's defaults already
//! made explicit by the reader; and the way back from a position of the written
//! policy to the resource it came from.

use super::import::Origin;
use super::resources::{Kind, Namespace};
use crate::diag::span::Sp;
use crate::source::model::*;

/// The base64 body as a PEM certificate (kept as it is when already PEM).
fn pem_of(encoded: &str) -> String {
    if encoded.contains("-----BEGIN") {
        return encoded.to_string();
    }
    let body: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn sp<T>(v: T) -> Sp<T> {
    Sp::unspanned(v)
}

/// The imported namespace as a policy document.
pub fn to_policy(ns: &Namespace) -> PolicyDoc {
    let settings = &ns.settings;
    let has_settings = settings.maximum_session_expiry_in_hours.is_some()
        || settings
            .maximum_client_sessions_per_authentication_name
            .is_some()
        || !settings.alternative_authentication_name_sources.is_empty();
    PolicyDoc {
        namespace: ns.name.clone().map(sp),
        settings: has_settings.then(|| SettingsDoc {
            span: Default::default(),
            maximum_session_expiry_in_hours: settings
                .maximum_session_expiry_in_hours
                .map(|h| sp(h as i64)),
            maximum_client_sessions_per_authentication_name: settings
                .maximum_client_sessions_per_authentication_name
                .map(|n| sp(n as i64)),
            alternative_authentication_name_sources: settings
                .alternative_authentication_name_sources
                .iter()
                .cloned()
                .map(sp)
                .collect(),
        }),
        clients: ns
            .clients
            .iter()
            .map(|c| ClientDoc {
                name: sp(c.name.clone()),
                authentication_name: c.authentication_name.clone().map(sp),
                state: c.state.map(sp),
                description: c.description.clone().map(sp),
                attributes: c
                    .attributes
                    .iter()
                    .map(|(k, v)| (sp(k.clone()), sp(v.clone())))
                    .collect(),
                authentication: c.certificate_authentication.as_ref().map(|a| AuthDoc {
                    span: Default::default(),
                    validation_scheme: a.validation_scheme.map(sp),
                    allowed_thumbprints: a.allowed_thumbprints.iter().cloned().map(sp).collect(),
                    password_hash: None,
                }),
                will: None,
                publishes: Vec::new(),
                subscribes: Vec::new(),
            })
            .collect(),
        client_groups: ns
            .client_groups
            .iter()
            .map(|g| GroupDoc {
                name: sp(g.name.clone()),
                query: sp(g.query.clone()),
                description: g.description.clone().map(sp),
            })
            .collect(),
        topic_spaces: ns
            .topic_spaces
            .iter()
            .map(|s| TopicSpaceDoc {
                name: sp(s.name.clone()),
                topic_templates: s.topic_templates.iter().cloned().map(sp).collect(),
                description: s.description.clone().map(sp),
            })
            .collect(),
        permission_bindings: ns
            .permission_bindings
            .iter()
            .map(|b| BindingDoc {
                name: sp(b.name.clone()),
                client_group: Some(sp(b.client_group_name.clone())),
                topic_space: Some(sp(b.topic_space_name.clone())),
                permission: Some(sp(b.permission)),
                description: b.description.clone().map(sp),
            })
            .collect(),
        ca_certificates: ns
            .ca_certificates
            .iter()
            .map(|c| CaDoc {
                name: sp(c.name.clone()),
                file: None,
                encoded_certificate: Some(sp(pem_of(&c.encoded_certificate))),
                description: c.description.clone().map(sp),
            })
            .collect(),
        tests: Vec::new(),
    }
}

/// The resource a position of the written policy belongs to: the `  NAME:` entry
/// under its section, found by reading back from `offset`.
pub fn origin_at<'a>(yaml: &str, offset: usize, origins: &'a [Origin]) -> Option<&'a Origin> {
    // Up to the end of the line holding `offset`, which may be the entry's key.
    let offset = offset.min(yaml.len());
    let end = yaml[offset..].find('\n').map_or(yaml.len(), |i| offset + i);
    let before = &yaml[..end];
    let mut name: Option<String> = None;
    for line in before.lines().rev() {
        if name.is_none() {
            if let Some(entry) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
                let key = entry.split(':').next().unwrap_or_default().trim();
                name =
                    Some(serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_string()));
                continue;
            }
        }
        if !line.starts_with(' ') && !line.starts_with('#') && line.ends_with(':') {
            let section = line.trim_end_matches(':');
            let kind = match section {
                "clients" => Kind::Client,
                "clientGroups" => Kind::ClientGroup,
                "topicSpaces" => Kind::TopicSpace,
                "permissionBindings" => Kind::PermissionBinding,
                "caCertificates" => Kind::CaCertificate,
                _ => return origins.iter().find(|o| o.kind.is_none()),
            };
            let name = name?;
            return origins
                .iter()
                .find(|o| o.kind == Some(kind) && o.name == name);
        }
    }
    None
}
