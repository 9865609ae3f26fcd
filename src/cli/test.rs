//! `topicgate policy test POLICY [TESTFILE...] [--format human|json|junit]`

use super::{exit, load, output};
use crate::decisions::test_runner::{read_test_file, run, TestReport, TestSource};
use crate::diag::render;
use crate::pipeline::read_text;
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TestFormat {
    Human,
    Json,
    /// JUnit XML, for CI dashboards.
    Junit,
}

/// Run the policy's `tests:` and those of separate test files. Exit status: 0 when
/// every test passes, 1 when one fails, 2 on errors (unreadable policy or test file).
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A policy file or a compiled artifact.
    pub policy: PathBuf,
    /// YAML files whose only key is `tests:`, a list in the same form as the policy's.
    pub test_files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
}

pub fn run_command(args: TestArgs) -> u8 {
    let loaded = match load::policy(&args.policy) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut sources = vec![TestSource {
        file: loaded.file.clone(),
        tests: loaded.policy.policy.tests.clone(),
    }];
    for path in &args.test_files {
        let text = match read_text(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        };
        match read_test_file(&path.display().to_string(), &text) {
            Ok(s) => sources.push(s),
            Err((file, diags)) => {
                eprint!("{}", render::human_all(&diags, &file, output::color()));
                eprintln!("error: test file `{}` is not valid", path.display());
                return exit::ERROR;
            }
        }
    }
    let report = run(&loaded.policy, &sources);
    match args.format {
        TestFormat::Human => load::emit(&render_human(&report)),
        TestFormat::Json => {
            if let Err(code) = load::print_json(&report) {
                return code;
            }
        }
        TestFormat::Junit => load::emit(&render_junit(&report, &args.policy.display().to_string())),
    }
    if report.ok() {
        exit::OK
    } else {
        exit::FINDING
    }
}

fn case_title(c: &crate::decisions::test_runner::CaseResult) -> String {
    match (&c.topic, c.action) {
        (Some(t), "connect") => format!("{} connect with will `{t}`", c.client),
        (Some(t), a) => format!("{} {a} `{t}`", c.client),
        (None, a) => format!("{} {a}", c.client),
    }
}

pub fn render_human(r: &TestReport) -> String {
    let mut out = String::new();
    for c in &r.cases {
        let status = if c.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "{status} {}  {}: {}", c.name, case_title(c), c.actual);
        if !c.passed {
            let _ = writeln!(out, "     {}", c.message);
        }
    }
    let cov = &r.coverage;
    let _ = writeln!(
        out,
        "\n{} tests: {} passed, {} failed",
        r.passed + r.failed,
        r.passed,
        r.failed
    );
    let _ = writeln!(
        out,
        "coverage: {} of {} bindings and {} of {} templates exercised by a passing allow test",
        cov.bindings_total - cov.bindings_not_exercised.len(),
        cov.bindings_total,
        cov.templates_total - cov.templates_not_exercised.len(),
        cov.templates_total
    );
    for b in &cov.bindings_not_exercised {
        let _ = writeln!(out, "  binding not exercised: {b}");
    }
    for t in &cov.templates_not_exercised {
        let _ = writeln!(out, "  template not exercised: {t}");
    }
    out
}

/// Escapes text for an XML attribute or element.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub fn render_junit(r: &TestReport, suite: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = r.passed + r.failed;
    let _ = writeln!(
        out,
        "<testsuites name=\"topicgate policy test\" tests=\"{total}\" failures=\"{}\">",
        r.failed
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{total}\" failures=\"{}\">",
        xml(suite),
        r.failed
    );
    for c in &r.cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&c.name),
            xml(&format!("{}: expect {}", case_title(c), c.expected))
        );
        if c.passed {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\"/>\n    </testcase>",
                xml(&c.message)
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_escapes_markup_and_control_characters() {
        assert_eq!(
            super::xml("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}"
        );
    }
}
