//! `topicgate policy export --to eventgrid-arm|eventgrid-bicep|eventgrid-az`: the
//! resolved policy as Event Grid resources ([`namespace`]), what Event Grid cannot
//! express ([`Note`]), and the three renderings. Each string reaches Event Grid
//! unchanged: ARM JSON escapes a leading `[`, Bicep escapes `${` and `'`, the shell
//! script single-quotes every value.

use super::resources::{
    binding_dependencies, CaCertificate, CertificateAuthentication, Child, Client, ClientGroup,
    Kind, Namespace, PermissionBinding, TopicSpace, NAMESPACE_TYPE,
};
use super::template::event_grid_text;
use super::API_VERSION;
use crate::analysis::{analyze, Options, Target};
use crate::compiler::model::ResolvedPolicy;
use crate::decisions::identity::effective_scheme;
use crate::diag::Code;
use crate::source::model::{AttrValue, ValidationScheme};
use crate::source::query::{for_each_leaf, Operand, Query};
use crate::source::span::SourceFile;
use serde_json::{json, Value};
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
        Format::Arm => arm(&ns),
        Format::Bicep => bicep(&ns),
        Format::Az => az(&ns),
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

// ------------------------------------------------------------------ ARM JSON

/// A literal string in an ARM template: one that ARM would read as an expression
/// (`[...]`) gets its leading `[` doubled.
pub fn arm_literal(s: &str) -> String {
    if s.starts_with('[') && s.ends_with(']') {
        format!("[{s}")
    } else {
        s.to_string()
    }
}

/// A string literal inside an ARM expression: `'` doubled.
fn arm_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Every string of a JSON value made an ARM literal.
fn arm_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(arm_literal(s)),
        Value::Array(items) => Value::Array(items.iter().map(arm_value).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), arm_value(v))).collect())
        }
        other => other.clone(),
    }
}

fn arm_child_id(kind: Kind, name: &str) -> String {
    format!(
        "[resourceId('{}', parameters('namespaceName'), {})]",
        kind.type_name(),
        arm_quote(name)
    )
}

/// An ARM deployment template: parameters `namespaceName` and `location`, the
/// namespace, and each child as a top-level resource named
/// `[format('{0}/{1}', parameters('namespaceName'), 'NAME')]`.
pub fn arm_template(ns: &Namespace) -> Value {
    let mut namespace_name = json!({
        "type": "string",
        "minLength": 3,
        "maxLength": 50,
        "metadata": { "description": "The Event Grid namespace." }
    });
    if let Some(n) = &ns.name {
        namespace_name["defaultValue"] = json!(arm_literal(n));
    }
    let namespace_id = format!("[resourceId('{NAMESPACE_TYPE}', parameters('namespaceName'))]");
    let mut resources = vec![json!({
        "type": NAMESPACE_TYPE,
        "apiVersion": API_VERSION,
        "name": "[parameters('namespaceName')]",
        "location": "[parameters('location')]",
        "sku": { "name": "Standard", "capacity": 1 },
        "properties": arm_value(&ns.properties()),
    })];
    for Child {
        kind,
        name,
        properties,
    } in ns.children()
    {
        let mut depends = vec![json!(namespace_id)];
        if kind == Kind::PermissionBinding {
            if let Some(b) = ns.permission_bindings.iter().find(|b| b.name == name) {
                for (k, n) in binding_dependencies(b) {
                    depends.push(json!(arm_child_id(k, n)));
                }
            }
        }
        resources.push(json!({
            "type": kind.type_name(),
            "apiVersion": API_VERSION,
            "name": format!("[format('{{0}}/{{1}}', parameters('namespaceName'), {})]", arm_quote(&name)),
            "properties": arm_value(&properties),
            "dependsOn": depends,
        }));
    }
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "metadata": { "generator": "topicgate policy export --to eventgrid-arm" },
        "parameters": {
            "namespaceName": namespace_name,
            "location": {
                "type": "string",
                "defaultValue": "[resourceGroup().location]"
            }
        },
        "resources": resources,
    })
}

fn arm(ns: &Namespace) -> String {
    let mut text = serde_json::to_string_pretty(&arm_template(ns)).unwrap_or_default();
    text.push('\n');
    text
}

// ------------------------------------------------------------------ Bicep

/// A single-quoted Bicep string: `\`, `'`, `${` and control characters escaped.
pub fn bicep_string(s: &str) -> String {
    let mut out = String::from("'");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn bicep_key(k: &str) -> String {
    let ident = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        k.to_string()
    } else {
        bicep_string(k)
    }
}

fn bicep_value(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent + 1);
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(&b.to_string()),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&bicep_string(s)),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push_str("[\n");
            for item in items {
                out.push_str(&pad);
                bicep_value(item, indent + 1, out);
                out.push('\n');
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push_str("{\n");
            for (k, v) in map {
                out.push_str(&pad);
                out.push_str(&bicep_key(k));
                out.push_str(": ");
                bicep_value(v, indent + 1, out);
                out.push('\n');
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
    }
}

/// Bicep symbolic names: identifiers, unique within the file.
fn symbols(ns: &Namespace) -> Vec<(Kind, String, String)> {
    let mut used: BTreeSet<String> = ["namespace".to_string()].into();
    let mut out = Vec::new();
    for c in ns.children() {
        let base: String = format!("{}_{}", c.kind.segment(), c.name)
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect();
        let mut symbol = base.clone();
        let mut n = 2;
        while !used.insert(symbol.clone()) {
            symbol = format!("{base}_{n}");
            n += 1;
        }
        out.push((c.kind, c.name, symbol));
    }
    out
}

fn bicep(ns: &Namespace) -> String {
    let mut out =
        String::from("// Generated by `topicgate policy export --to eventgrid-bicep`.\n\n");
    out.push_str("@description('The Event Grid namespace.')\n@minLength(3)\n@maxLength(50)\n");
    match &ns.name {
        Some(n) => out.push_str(&format!(
            "param namespaceName string = {}\n",
            bicep_string(n)
        )),
        None => out.push_str("param namespaceName string\n"),
    }
    out.push_str("param location string = resourceGroup().location\n\n");
    out.push_str(&format!(
        "resource namespace '{NAMESPACE_TYPE}@{API_VERSION}' = {{\n  name: namespaceName\n  location: location\n  sku: {{\n    name: 'Standard'\n    capacity: 1\n  }}\n  properties: "
    ));
    bicep_value(&ns.properties(), 1, &mut out);
    out.push_str("\n}\n");
    let symbols = symbols(ns);
    let symbol_of = |kind: Kind, name: &str| {
        symbols
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, s)| s.clone())
    };
    for c in ns.children() {
        let symbol = symbol_of(c.kind, &c.name).unwrap_or_default();
        out.push_str(&format!(
            "\nresource {symbol} '{}@{API_VERSION}' = {{\n  parent: namespace\n  name: {}\n  properties: ",
            c.kind.type_name(),
            bicep_string(&c.name)
        ));
        bicep_value(&c.properties, 1, &mut out);
        out.push('\n');
        if c.kind == Kind::PermissionBinding {
            if let Some(b) = ns.permission_bindings.iter().find(|b| b.name == c.name) {
                let deps: Vec<String> = binding_dependencies(b)
                    .into_iter()
                    .filter_map(|(k, n)| symbol_of(k, n))
                    .collect();
                out.push_str("  dependsOn: [\n");
                for d in deps {
                    out.push_str(&format!("    {d}\n"));
                }
                out.push_str("  ]\n");
            }
        }
        out.push_str("}\n");
    }
    out
}

// ------------------------------------------------------------------ az script

/// A single-quoted shell word: nothing inside is expanded (`$all`, `${...}`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn az(ns: &Namespace) -> String {
    let mut out = String::from(
        "#!/usr/bin/env bash\n# Generated by `topicgate policy export --to eventgrid-az`.\n\
         # Creates the Event Grid namespace and its MQTT resources with `az resource create`\n\
         # (API version ",
    );
    out.push_str(API_VERSION);
    out.push_str("); each body is the resource's ARM `properties`, single-quoted.\n");
    out.push_str("# Usage: RESOURCE_GROUP=my-rg [LOCATION=westeurope] [NAMESPACE=name] bash THIS_FILE\nset -euo pipefail\n\n");
    out.push_str(": \"${RESOURCE_GROUP:?set RESOURCE_GROUP to the resource group}\"\n");
    match &ns.name {
        Some(n) => out.push_str(&format!(
            "if [ -z \"${{NAMESPACE:-}}\" ]; then NAMESPACE={}; fi\n",
            shell_quote(n)
        )),
        None => out.push_str(": \"${NAMESPACE:?set NAMESPACE to the namespace name}\"\n"),
    }
    out.push_str("LOCATION=\"${LOCATION:-$(az group show --name \"$RESOURCE_GROUP\" --query location --output tsv)}\"\n");
    out.push_str("SUBSCRIPTION=\"$(az account show --query id --output tsv)\"\n");
    out.push_str(&format!("NAMESPACE_ID=\"/subscriptions/$SUBSCRIPTION/resourceGroups/$RESOURCE_GROUP/providers/{NAMESPACE_TYPE}/$NAMESPACE\"\n\n"));
    let full = json!({
        "location": "LOCATION_PLACEHOLDER",
        "sku": { "name": "Standard", "capacity": 1 },
        "properties": ns.properties(),
    });
    let body = serde_json::to_string(&full).unwrap_or_default();
    let (before, after) = body
        .split_once("\"LOCATION_PLACEHOLDER\"")
        .unwrap_or((&body, ""));
    out.push_str("echo \"namespace $NAMESPACE\" >&2\n");
    out.push_str(&format!(
        "az resource create --api-version {API_VERSION} --id \"$NAMESPACE_ID\" --is-full-object \\\n  --properties {}\"\\\"$LOCATION\\\"\"{} \\\n  --output none\n",
        shell_quote(before),
        shell_quote(after)
    ));
    for c in ns.children() {
        let body = serde_json::to_string(&c.properties).unwrap_or_default();
        out.push_str(&format!(
            "\necho {} >&2\naz resource create --api-version {API_VERSION} --id \"$NAMESPACE_ID\"/{}/{} \\\n  --properties {} \\\n  --output none\n",
            shell_quote(&format!("{} {}", c.kind.segment(), c.name)),
            c.kind.segment(),
            shell_quote(&c.name),
            shell_quote(&body)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_escapes_only_what_it_would_evaluate() {
        assert_eq!(arm_literal("[parameters('x')]"), "[[parameters('x')]");
        assert_eq!(arm_literal("[a"), "[a");
        assert_eq!(arm_literal("a]"), "a]");
        assert_eq!(
            arm_literal("${client.authenticationName}"),
            "${client.authenticationName}"
        );
    }

    #[test]
    fn bicep_strings_do_not_interpolate() {
        assert_eq!(
            bicep_string("clients/${client.authenticationName}/status"),
            "'clients/\\${client.authenticationName}/status'"
        );
        assert_eq!(bicep_string("it's a \\ $x"), "'it\\'s a \\\\ $x'");
        assert_eq!(bicep_string("a\nb"), "'a\\nb'");
    }

    #[test]
    fn shell_words_are_single_quoted() {
        assert_eq!(shell_quote("$all"), "'$all'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
