//! The three renderings of an Event Grid namespace. Each string reaches Event Grid
//! unchanged: ARM JSON escapes a string ARM would evaluate (`[...]`), Bicep escapes
//! `${`, `'` and `\\`, the shell script single-quotes every value.

use super::resources::{binding_dependencies, Child, Kind, Namespace, NAMESPACE_TYPE};
use super::API_VERSION;
use serde_json::{json, Value};
use std::collections::BTreeSet;

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

pub fn arm(ns: &Namespace) -> String {
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

pub fn bicep(ns: &Namespace) -> String {
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

pub fn az(ns: &Namespace) -> String {
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
