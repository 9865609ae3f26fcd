//! Canonical text of a policy in either form (`topicgate policy fmt`): the YAML form
//! and the DSL print the same [`PolicyDoc`], resources in the order written, values
//! quoted only where needed. Printing what was read gives the same document back,
//! and printing twice changes nothing (both are property-tested).
//!
//! Comments are kept only at the head of the file (the lines before the first
//! statement): the document does not hold comments elsewhere.

use super::model::*;
use crate::diag::span::Sp;
use std::fmt::Write;

/// The file's leading comment block (both forms use `#` comments).
pub fn header_comment(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            out.push_str(line.trim_end());
            out.push('\n');
        } else if t.is_empty() && out.is_empty() {
            continue;
        } else {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------- DSL

/// A value printed in each form.
struct Printed {
    dsl: String,
    yaml: String,
}

/// The namespace settings that are set, by their (shared) key, in order.
fn settings_fields(s: &SettingsDoc) -> Vec<(&'static str, Printed)> {
    let mut out = Vec::new();
    let int = |i: i64| Printed {
        dsl: i.to_string(),
        yaml: i.to_string(),
    };
    if let Some(h) = &s.maximum_session_expiry_in_hours {
        out.push(("maximumSessionExpiryInHours", int(h.value)));
    }
    if let Some(n) = &s.maximum_client_sessions_per_authentication_name {
        out.push(("maximumClientSessionsPerAuthenticationName", int(n.value)));
    }
    if !s.alternative_authentication_name_sources.is_empty() {
        out.push((
            "alternativeAuthenticationNameSources",
            Printed {
                dsl: dsl_list(&s.alternative_authentication_name_sources),
                yaml: yaml_list(
                    s.alternative_authentication_name_sources
                        .iter()
                        .map(|v| v.value.clone()),
                ),
            },
        ));
    }
    out
}

/// A DSL word (a name or keyword written without quotes), else a quoted string.
fn dsl_atom(s: &str) -> String {
    let word = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '$' | '/' | '+')
        })
        && !matches!(s, "true" | "false")
        && s.parse::<i64>().is_err()
        && !s.starts_with('-');
    if word {
        s.to_string()
    } else {
        dsl_string(s)
    }
}

/// A quoted DSL string.
fn dsl_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dsl_list(items: &[Sp<String>]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|i| dsl_string(&i.value))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn dsl_attr(v: &AttrValue) -> String {
    match v {
        AttrValue::Str(s) => dsl_atom(s),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| dsl_string(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A query in canonical text (keywords upper-case, single spaces), on one line (a
/// newline would end a DSL statement); as written when it does not parse.
fn one_line(q: &str) -> String {
    match super::query::parse(q) {
        Ok(parsed) => parsed.to_string(),
        Err(_) => q.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// A template with variables spelt `$<...>`; as written when it does not parse.
fn template(t: &str) -> String {
    crate::topic::Template::parse(t)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| t.to_string())
}

pub fn to_dsl(doc: &PolicyDoc, header: &str) -> String {
    // The `# yaml-language-server: $schema=...` line names the JSON Schema of the YAML
    // form; it means nothing in the DSL.
    let mut out: String = header
        .lines()
        .filter(|l| !l.trim_start().starts_with("# yaml-language-server:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let section = |out: &mut String| {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
    };
    if let Some(ns) = &doc.namespace {
        let _ = writeln!(out, "namespace {}", dsl_atom(&ns.value));
    }
    if let Some(settings) = &doc.settings {
        let fields: Vec<String> = settings_fields(settings)
            .iter()
            .map(|(k, v)| format!("{k} {}", v.dsl))
            .collect();
        if fields.is_empty() {
            let _ = writeln!(out, "settings {{}}");
        } else {
            let _ = writeln!(out, "settings {{ {} }}", fields.join("; "));
        }
    }
    for c in &doc.clients {
        section(&mut out);
        let _ = writeln!(out, "client {} {{", dsl_atom(&c.name.value));
        if let Some(a) = &c.authentication_name {
            let _ = writeln!(out, "  authenticationName {}", dsl_string(&a.value));
        }
        if let Some(s) = &c.state {
            let _ = writeln!(
                out,
                "  state {}",
                if s.value == ClientState::Enabled {
                    "Enabled"
                } else {
                    "Disabled"
                }
            );
        }
        if let Some(d) = &c.description {
            let _ = writeln!(out, "  description {}", dsl_string(&d.value));
        }
        if !c.attributes.is_empty() {
            let attrs: Vec<String> = c
                .attributes
                .iter()
                .map(|(k, v)| format!("{} = {}", k.value, dsl_attr(&v.value)))
                .collect();
            let inline = format!("  attributes {{ {} }}", attrs.join("; "));
            if inline.len() <= 80 {
                let _ = writeln!(out, "{inline}");
            } else {
                let _ = writeln!(out, "  attributes {{");
                for a in attrs {
                    let _ = writeln!(out, "    {a}");
                }
                let _ = writeln!(out, "  }}");
            }
        }
        if let Some(a) = &c.authentication {
            let _ = writeln!(out, "  authentication {{");
            if let Some(s) = &a.validation_scheme {
                let _ = writeln!(out, "    validationScheme {}", s.value.as_str());
            }
            if !a.allowed_thumbprints.is_empty() {
                let _ = writeln!(
                    out,
                    "    allowedThumbprints {}",
                    dsl_list(&a.allowed_thumbprints)
                );
            }
            if let Some(h) = &a.password_hash {
                let _ = writeln!(out, "    passwordHash {}", dsl_string(&h.value));
            }
            let _ = writeln!(out, "  }}");
        }
        if let Some(w) = &c.will {
            let mut line = format!("  will {}", dsl_string(&w.topic.value));
            if let Some(q) = &w.qos {
                let _ = write!(line, " qos {}", q.value);
            }
            if let Some(r) = &w.retain {
                let _ = write!(line, " retain {}", r.value);
            }
            if let Some(d) = &w.delay_seconds {
                let _ = write!(line, " delay {}", d.value);
            }
            let _ = writeln!(out, "{line}");
        }
        if !c.publishes.is_empty() {
            let _ = writeln!(out, "  publishes {}", dsl_list(&c.publishes));
        }
        if !c.subscribes.is_empty() {
            let _ = writeln!(out, "  subscribes {}", dsl_list(&c.subscribes));
        }
        let _ = writeln!(out, "}}");
    }
    if !doc.client_groups.is_empty() {
        section(&mut out);
    }
    for g in &doc.client_groups {
        match &g.description {
            None => {
                let _ = writeln!(
                    out,
                    "group {} = {}",
                    dsl_atom(&g.name.value),
                    one_line(&g.query.value)
                );
            }
            Some(d) => {
                let _ = writeln!(out, "group {} {{", dsl_atom(&g.name.value));
                let _ = writeln!(out, "  query {}", one_line(&g.query.value));
                let _ = writeln!(out, "  description {}", dsl_string(&d.value));
                let _ = writeln!(out, "}}");
            }
        }
    }
    if !doc.topic_spaces.is_empty() {
        section(&mut out);
    }
    for s in &doc.topic_spaces {
        let name = dsl_atom(&s.name.value);
        match (&s.topic_templates[..], &s.description) {
            ([one], None) => {
                let _ = writeln!(
                    out,
                    "topicspace {name} {{ template {} }}",
                    dsl_string(&template(&one.value))
                );
            }
            (templates, description) => {
                let _ = writeln!(out, "topicspace {name} {{");
                for t in templates {
                    let _ = writeln!(out, "  template {}", dsl_string(&template(&t.value)));
                }
                if let Some(d) = description {
                    let _ = writeln!(out, "  description {}", dsl_string(&d.value));
                }
                let _ = writeln!(out, "}}");
            }
        }
    }
    if !doc.permission_bindings.is_empty() {
        section(&mut out);
    }
    for b in &doc.permission_bindings {
        let mut fields = Vec::new();
        if let Some(g) = &b.client_group {
            fields.push(format!("group {}", dsl_atom(&g.value)));
        }
        if let Some(p) = &b.permission {
            fields.push(format!("permission {}", p.value.as_str()));
        }
        if let Some(s) = &b.topic_space {
            fields.push(format!("topicspace {}", dsl_atom(&s.value)));
        }
        if let Some(d) = &b.description {
            fields.push(format!("description {}", dsl_string(&d.value)));
        }
        let _ = writeln!(
            out,
            "binding {} {{ {} }}",
            dsl_atom(&b.name.value),
            fields.join("; ")
        );
    }
    if !doc.ca_certificates.is_empty() {
        section(&mut out);
    }
    for ca in &doc.ca_certificates {
        let mut fields = Vec::new();
        if let Some(f) = &ca.file {
            fields.push(format!("file {}", dsl_string(&f.value)));
        }
        if let Some(e) = &ca.encoded_certificate {
            fields.push(format!("encodedCertificate {}", dsl_string(&e.value)));
        }
        if let Some(d) = &ca.description {
            fields.push(format!("description {}", dsl_string(&d.value)));
        }
        let _ = writeln!(
            out,
            "ca {} {{ {} }}",
            dsl_atom(&ca.name.value),
            fields.join("; ")
        );
    }
    if !doc.tests.is_empty() {
        section(&mut out);
    }
    for t in &doc.tests {
        let action = match &t.action {
            TestAction::Publish(s) => format!("publish {}", dsl_string(&s.value)),
            TestAction::Subscribe(s) => format!("subscribe {}", dsl_string(&s.value)),
            TestAction::Receive(s) => format!("receive {}", dsl_string(&s.value)),
            TestAction::Connect { will: Some(w) } => {
                format!("connect will {}", dsl_string(&w.value))
            }
            TestAction::Connect { will: None } => "connect".to_string(),
        };
        let expect = if t.expect.value == Expect::Allow {
            "allow"
        } else {
            "deny"
        };
        let mut line = format!("test {} {action} {expect}", dsl_atom(&t.client.value));
        if let Some(g) = &t.granted_by {
            let _ = write!(line, " grantedBy {}", dsl_atom(&g.value));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

// ---------------------------------------------------------------- YAML

/// A YAML scalar: plain when it cannot be read as anything but this string,
/// else double-quoted (JSON string syntax is valid YAML).
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
    }
}

fn yaml_list(items: impl IntoIterator<Item = String>) -> String {
    format!(
        "[{}]",
        items
            .into_iter()
            .map(|i| yaml_str(&i))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn to_yaml(doc: &PolicyDoc, header: &str) -> String {
    let mut out = String::from(header);
    let section = |out: &mut String, title: &str| {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{title}:");
    };
    if let Some(ns) = &doc.namespace {
        let _ = writeln!(out, "namespace: {}", yaml_str(&ns.value));
    }
    if let Some(settings) = &doc.settings {
        let fields = settings_fields(settings);
        if fields.is_empty() {
            let _ = writeln!(out, "topicSpacesConfiguration: {{}}");
        } else {
            let _ = writeln!(out, "topicSpacesConfiguration:");
            for (k, v) in fields {
                let _ = writeln!(out, "  {k}: {}", v.yaml);
            }
        }
    }
    if !doc.clients.is_empty() {
        section(&mut out, "clients");
    }
    for c in &doc.clients {
        let _ = writeln!(out, "  {}:", yaml_str(&c.name.value));
        let mut empty = true;
        let mut field = |out: &mut String, text: String| {
            empty = false;
            let _ = writeln!(out, "    {text}");
        };
        if let Some(a) = &c.authentication_name {
            field(
                &mut out,
                format!("authenticationName: {}", yaml_str(&a.value)),
            );
        }
        if let Some(s) = &c.state {
            field(
                &mut out,
                format!(
                    "state: {}",
                    if s.value == ClientState::Enabled {
                        "Enabled"
                    } else {
                        "Disabled"
                    }
                ),
            );
        }
        if let Some(d) = &c.description {
            field(&mut out, format!("description: {}", yaml_str(&d.value)));
        }
        if !c.attributes.is_empty() {
            field(&mut out, "attributes:".into());
            for (k, v) in &c.attributes {
                let value = match &v.value {
                    AttrValue::Str(s) => yaml_str(s),
                    AttrValue::Int(i) => i.to_string(),
                    AttrValue::Bool(b) => b.to_string(),
                    AttrValue::Array(items) => yaml_list(items.iter().cloned()),
                };
                let _ = writeln!(out, "      {}: {value}", yaml_str(&k.value));
            }
        }
        if let Some(a) = &c.authentication {
            field(&mut out, "authentication:".into());
            if let Some(s) = &a.validation_scheme {
                let _ = writeln!(out, "      validationScheme: {}", s.value.as_str());
            }
            if !a.allowed_thumbprints.is_empty() {
                let _ = writeln!(
                    out,
                    "      allowedThumbprints: {}",
                    yaml_list(a.allowed_thumbprints.iter().map(|t| t.value.clone()))
                );
            }
            if let Some(h) = &a.password_hash {
                let _ = writeln!(out, "      passwordHash: {}", yaml_str(&h.value));
            }
        }
        if let Some(w) = &c.will {
            field(&mut out, "will:".into());
            let _ = writeln!(out, "      topic: {}", yaml_str(&w.topic.value));
            if let Some(q) = &w.qos {
                let _ = writeln!(out, "      qos: {}", q.value);
            }
            if let Some(r) = &w.retain {
                let _ = writeln!(out, "      retain: {}", r.value);
            }
            if let Some(d) = &w.delay_seconds {
                let _ = writeln!(out, "      delaySeconds: {}", d.value);
            }
        }
        if !c.publishes.is_empty() {
            field(
                &mut out,
                format!(
                    "publishes: {}",
                    yaml_list(c.publishes.iter().map(|p| p.value.clone()))
                ),
            );
        }
        if !c.subscribes.is_empty() {
            field(
                &mut out,
                format!(
                    "subscribes: {}",
                    yaml_list(c.subscribes.iter().map(|p| p.value.clone()))
                ),
            );
        }
        if empty {
            // A client with no fields: an empty mapping, not null.
            out.truncate(out.len() - 1);
            out.push_str(" {}\n");
        }
    }
    if !doc.client_groups.is_empty() {
        section(&mut out, "clientGroups");
    }
    for g in &doc.client_groups {
        let _ = writeln!(out, "  {}:", yaml_str(&g.name.value));
        let _ = writeln!(out, "    query: {}", yaml_str(&one_line(&g.query.value)));
        if let Some(d) = &g.description {
            let _ = writeln!(out, "    description: {}", yaml_str(&d.value));
        }
    }
    if !doc.topic_spaces.is_empty() {
        section(&mut out, "topicSpaces");
    }
    for s in &doc.topic_spaces {
        let _ = writeln!(out, "  {}:", yaml_str(&s.name.value));
        let _ = writeln!(
            out,
            "    topicTemplates: {}",
            yaml_list(s.topic_templates.iter().map(|t| template(&t.value)))
        );
        if let Some(d) = &s.description {
            let _ = writeln!(out, "    description: {}", yaml_str(&d.value));
        }
    }
    if !doc.permission_bindings.is_empty() {
        section(&mut out, "permissionBindings");
    }
    for b in &doc.permission_bindings {
        let _ = writeln!(out, "  {}:", yaml_str(&b.name.value));
        if let Some(g) = &b.client_group {
            let _ = writeln!(out, "    clientGroup: {}", yaml_str(&g.value));
        }
        if let Some(s) = &b.topic_space {
            let _ = writeln!(out, "    topicSpace: {}", yaml_str(&s.value));
        }
        if let Some(p) = &b.permission {
            let _ = writeln!(out, "    permission: {}", p.value.as_str());
        }
        if let Some(d) = &b.description {
            let _ = writeln!(out, "    description: {}", yaml_str(&d.value));
        }
    }
    if !doc.ca_certificates.is_empty() {
        section(&mut out, "caCertificates");
    }
    for ca in &doc.ca_certificates {
        let _ = writeln!(out, "  {}:", yaml_str(&ca.name.value));
        if let Some(f) = &ca.file {
            let _ = writeln!(out, "    file: {}", yaml_str(&f.value));
        }
        if let Some(e) = &ca.encoded_certificate {
            let _ = writeln!(out, "    encodedCertificate: {}", yaml_str(&e.value));
        }
        if let Some(d) = &ca.description {
            let _ = writeln!(out, "    description: {}", yaml_str(&d.value));
        }
    }
    if !doc.tests.is_empty() {
        section(&mut out, "tests");
    }
    for t in &doc.tests {
        let _ = writeln!(out, "  - client: {}", yaml_str(&t.client.value));
        let action = match &t.action {
            TestAction::Publish(s) => format!("publish: {}", yaml_str(&s.value)),
            TestAction::Subscribe(s) => format!("subscribe: {}", yaml_str(&s.value)),
            TestAction::Receive(s) => format!("receive: {}", yaml_str(&s.value)),
            TestAction::Connect { will: Some(w) } => {
                format!("connect: {{ will: {} }}", yaml_str(&w.value))
            }
            TestAction::Connect { will: None } => "connect: true".to_string(),
        };
        let _ = writeln!(out, "    {action}");
        let _ = writeln!(
            out,
            "    expect: {}",
            if t.expect.value == Expect::Allow {
                "allow"
            } else {
                "deny"
            }
        );
        if let Some(g) = &t.granted_by {
            let _ = writeln!(out, "    grantedBy: {}", yaml_str(&g.value));
        }
    }
    out
}
