//! Reports over several files, in the machine formats `policy check` offers:
//! JSON (the shape issue 3 fixes), SARIF 2.1.0 for code-scanning dashboards, and
//! GitHub Actions workflow commands. The human format is [`super::render`].

use super::render::{to_json, JsonDiagnostic};
use super::span::SourceFile;
use super::{Code, Diagnostic, Severity};
use serde::Serialize;
use serde_json::{json, Value};

/// The findings of one file.
pub struct FileReport<'a> {
    pub file: &'a SourceFile,
    pub diagnostics: &'a [Diagnostic],
}

/// Findings in the order they are printed, causes first: syntax and schema errors,
/// then the rest by position (errors first at a position), then the findings marked
/// as consequences of an earlier error ([`Diagnostic::as_consequence_of`]).
pub fn sorted(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    let mut out: Vec<&Diagnostic> = diags.iter().collect();
    out.sort_by_key(|d| {
        let stage = if d.is_schema() {
            0
        } else if d.severity == Severity::Info {
            2
        } else {
            1
        };
        (
            stage,
            d.span.map(|s| s.start).unwrap_or(0),
            d.severity,
            d.code,
        )
    });
    out
}

pub fn count(reports: &[FileReport], severity: Severity) -> usize {
    reports
        .iter()
        .flat_map(|r| r.diagnostics)
        .filter(|d| d.severity == severity)
        .count()
}

/// `{"diagnostics": [...], "errors": N, "warnings": N}`
#[derive(Debug, Serialize)]
pub struct JsonReport {
    pub diagnostics: Vec<JsonDiagnostic>,
    pub errors: usize,
    pub warnings: usize,
}

pub fn json_report(reports: &[FileReport]) -> JsonReport {
    JsonReport {
        diagnostics: reports
            .iter()
            .flat_map(|r| {
                sorted(r.diagnostics)
                    .into_iter()
                    .map(|d| to_json(d, r.file))
            })
            .collect(),
        errors: count(reports, Severity::Error),
        warnings: count(reports, Severity::Warning),
    }
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file path as a relative URI reference, as SARIF wants it.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn region(file: &SourceFile, span: super::span::Span) -> Value {
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    json!({ "startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column })
}

/// A SARIF 2.1.0 log with one run: every code as a rule, every finding as a result.
pub fn sarif(reports: &[FileReport], rule_doc: impl Fn(Code) -> String) -> Value {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.name(),
                "shortDescription": { "text": c.summary() },
                "fullDescription": { "text": rule_doc(*c) },
                "defaultConfiguration": { "level": sarif_level(c.default_severity()) },
            })
        })
        .collect();
    let mut results = Vec::new();
    for r in reports {
        for d in sorted(r.diagnostics) {
            let location = |span| json!({ "physicalLocation": { "artifactLocation": { "uri": uri(&r.file.name) }, "region": region(r.file, span) } });
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str(&format!("\nhelp: {h}"));
            }
            let mut result = json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == d.code).unwrap_or(0),
                "level": sarif_level(d.severity),
                "message": { "text": text },
                "locations": [location(d.span.unwrap_or_default())],
            });
            if !d.related.is_empty() {
                result["relatedLocations"] = d
                    .related
                    .iter()
                    .enumerate()
                    .map(|(i, (span, label))| {
                        let mut l = location(*span);
                        l["id"] = json!(i);
                        l["message"] = json!({ "text": label });
                        l
                    })
                    .collect();
            }
            results.push(result);
        }
    }
    let mut driver = json!({
        "name": "topicgate",
        "version": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    if let Some(uri) = information_uri(env!("CARGO_PKG_REPOSITORY")) {
        driver["informationUri"] = json!(uri);
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// Where the rules are documented: `docs/rules.md` in the crate's `repository`
/// (Cargo.toml). SARIF's `informationUri` is optional, and each rule's full text is
/// in the report anyway, so without a repository there is none rather than a guess.
pub fn information_uri(repository: &str) -> Option<String> {
    let repository = repository.trim().trim_end_matches('/');
    let repository = repository.strip_suffix(".git").unwrap_or(repository);
    repository
        .starts_with("https://")
        .then(|| format!("{repository}/blob/HEAD/docs/rules.md"))
}

/// GitHub Actions workflow commands: `::error file=F,line=L,...::message`.
pub fn github(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for d in sorted(r.diagnostics) {
            let j = to_json(d, r.file);
            let command = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "notice",
            };
            let mut message = d.message.clone();
            if let Some(h) = &d.help {
                message.push_str(&format!("\nhelp: {h}"));
            }
            out.push_str(&format!(
                "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
                escape_property(&j.file),
                j.line,
                j.column,
                j.end_line,
                j.end_column,
                escape_property(&format!("{} {}", d.code.as_str(), d.code.summary())),
                escape_data(&message),
            ));
        }
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::information_uri;

    #[test]
    fn information_uri_is_the_rules_page_of_the_repository_or_none() {
        assert_eq!(
            information_uri("https://github.com/o/topicgate.git").as_deref(),
            Some("https://github.com/o/topicgate/blob/HEAD/docs/rules.md")
        );
        assert_eq!(information_uri(""), None);
        assert_eq!(information_uri("git@github.com:o/t.git"), None);
    }
}
