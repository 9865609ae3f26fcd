//! The user documentation of every code: `docs/rules.md` is this text (a test keeps
//! the file and the code in step), and SARIF output carries it per rule.

use super::rules::rule_for;
use crate::diag::Code;

/// The documentation of one code: the rule file's doc comment for the verifier's
/// rules, the registry's doc comment for the front end's checks.
pub fn documentation(code: Code) -> String {
    match rule_for(code) {
        Some(rule) => rule.doc(),
        None => {
            code.registry_doc()
                .lines()
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
    }
}

/// `docs/rules.md`: every code in code order, with its severity and documentation.
pub fn rules_markdown() -> String {
    let mut codes: Vec<Code> = Code::ALL.to_vec();
    codes.sort_by_key(|c| c.as_str());
    let mut out = String::from(
        "# topicgate rules\n\n\
         <!-- Generated from the rule registry (src/diag/codes.rs) and the rule files\n\
         (src/analysis/rules/*.rs). Do not edit: run\n\
         `UPDATE_RULES_DOC=1 cargo test --test rules_doc` to regenerate. -->\n\n\
         Every finding of `topicgate policy check` has one of these codes. Severities are the\n\
         defaults; with `--target eventgrid` the Event Grid compatibility findings (TG405, TG701-TG703)\n\
         are errors, and `--deny-warnings` makes any warning fail the check.\n\n\
         | code | name | severity | summary |\n|---|---|---|---|\n",
    );
    for c in &codes {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            c.as_str(),
            c.as_str().to_lowercase(),
            c.name(),
            c.default_severity().as_str(),
            c.summary()
        ));
    }
    for c in &codes {
        let doc = documentation(*c);
        // Rule docs use `##` sections; nest them under the code's heading.
        let doc = doc
            .lines()
            .map(|l| {
                if l.starts_with("## ") {
                    format!("#{l}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&format!(
            "\n## {}\n\n**{}** ({}): {}\n\n{}\n",
            c.as_str(),
            c.name(),
            c.default_severity().as_str(),
            c.summary(),
            doc.trim_end()
        ));
    }
    out
}
