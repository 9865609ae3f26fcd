//! `policy test`: runs scenario tests (the policy's `tests:` and separate test files
//! holding a `tests:` list) against the compiled policy, and reports which bindings and
//! templates no passing `allow` case exercised.

use super::naming::find_client;
use super::reference;
use crate::compiler::compiled::CompiledPolicy;
use crate::compiler::model::{PolicyTest, TestAction};
use crate::compiler::resolve::resolve_test;
use crate::diag::span::SourceFile;
use crate::diag::Diagnostics;
use crate::source::model::{Expect, Permission, PolicyDoc};
use crate::source::yaml;
use serde::Serialize;
use std::collections::BTreeSet;

/// Tests and the file they were written in (`None` for tests stored in an artifact).
pub struct TestSource {
    pub file: Option<SourceFile>,
    pub tests: Vec<PolicyTest>,
}

/// Reads a test file: a YAML document whose only key is `tests:`.
pub fn read_test_file(name: &str, text: &str) -> Result<TestSource, (SourceFile, Diagnostics)> {
    let file = SourceFile::new(name, text);
    let (doc, mut diags) = yaml::parse_policy(text);
    let doc: PolicyDoc = match doc {
        Some(d) => d,
        None => return Err((file, diags)),
    };
    let extra = !doc.clients.is_empty()
        || !doc.client_groups.is_empty()
        || !doc.topic_spaces.is_empty()
        || !doc.permission_bindings.is_empty()
        || !doc.ca_certificates.is_empty();
    if extra {
        diags.push(crate::diag::Diagnostic::new(
            crate::diag::Code::InvalidValue,
            "a test file holds only a `tests:` list; put the policy itself in the policy file",
        ));
    }
    if crate::diag::has_errors(&diags) {
        return Err((file, diags));
    }
    let tests = doc.tests.iter().map(resolve_test).collect();
    Ok(TestSource {
        file: Some(file),
        tests,
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    /// `file:line`, or `test #N` for tests without a file.
    pub name: String,
    pub client: String,
    pub action: &'static str,
    pub topic: Option<String>,
    pub expected: &'static str,
    pub actual: &'static str,
    pub expected_binding: Option<String>,
    /// The bindings that granted it (empty on a denial).
    pub granted_by: Vec<String>,
    pub passed: bool,
    /// The decision's reason, and on a failure what differed.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    pub bindings_total: usize,
    pub templates_total: usize,
    /// Bindings that granted no passing `allow` case.
    pub bindings_not_exercised: Vec<String>,
    /// Templates (as `space: template`) that granted no passing `allow` case.
    pub templates_not_exercised: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<CaseResult>,
    pub coverage: Coverage,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

/// Runs every test of every source.
pub fn run(policy: &CompiledPolicy, sources: &[TestSource]) -> TestReport {
    let mut cases = Vec::new();
    let mut used: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut number = 0;
    for source in sources {
        for test in &source.tests {
            number += 1;
            let name = match &source.file {
                Some(f) => format!("{}:{}", f.name, f.line_col(test.span.start as usize).0),
                None => format!("test #{number}"),
            };
            cases.push(run_case(policy, test, name, &mut used));
        }
    }
    let coverage = coverage(policy, &used);
    let failed = cases.iter().filter(|c| !c.passed).count();
    TestReport {
        passed: cases.len() - failed,
        failed,
        cases,
        coverage,
    }
}

fn run_case(
    policy: &CompiledPolicy,
    test: &PolicyTest,
    name: String,
    used: &mut BTreeSet<(usize, usize)>,
) -> CaseResult {
    let (action, topic) = match &test.action {
        TestAction::Publish(t) => ("publish", Some(t.value.clone())),
        TestAction::Subscribe(f) => ("subscribe", Some(f.value.clone())),
        TestAction::Receive(t) => ("receive", Some(t.value.clone())),
        TestAction::Connect { will } => ("connect", will.as_ref().map(|w| w.value.clone())),
    };
    let expected = match test.expect.value {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    };
    let mut result = CaseResult {
        name,
        client: test.client.value.clone(),
        action,
        topic: topic.clone(),
        expected,
        actual: "deny",
        expected_binding: test.granted_by.as_ref().map(|b| b.value.clone()),
        granted_by: Vec::new(),
        passed: false,
        message: String::new(),
    };
    // A test naming no known client fails whatever it expects: it is most likely a typo
    // that would otherwise make an `expect: deny` pass for the wrong reason.
    let id = match find_client(policy, &test.client.value) {
        Ok(id) => id,
        Err(unknown) => {
            result.message = unknown.to_string();
            return result;
        }
    };
    let decision = match &test.action {
        TestAction::Publish(t) => policy.decide_publish(id, &t.value),
        TestAction::Subscribe(f) => policy.decide_subscribe(id, &f.value),
        TestAction::Receive(t) => policy.decide_receive(id, &t.value),
        TestAction::Connect { will } => {
            policy.decide_connect(id, will.as_ref().map(|w| w.value.as_str()))
        }
    };
    result.actual = if decision.allowed { "allow" } else { "deny" };
    let permission = match &test.action {
        TestAction::Publish(_) | TestAction::Connect { .. } => Permission::Publisher,
        TestAction::Subscribe(_) | TestAction::Receive(_) => Permission::Subscriber,
    };
    let grants = match (&topic, decision.allowed) {
        (Some(t), true) => reference::grants(&policy.policy, id as usize, permission, t),
        _ => Vec::new(),
    };
    let mut bindings: Vec<String> = grants
        .iter()
        .map(|(b, _)| policy.policy.bindings[*b].name.value.clone())
        .collect();
    bindings.dedup();
    result.granted_by = bindings;
    let binding_ok = match (&result.expected_binding, decision.allowed) {
        (Some(b), true) => result.granted_by.contains(b),
        _ => true,
    };
    result.passed = result.actual == expected && binding_ok;
    // An allowed decision is described by what granted it.
    let reason = match &decision.grant {
        Some(g) => policy.describe_grant(g),
        None => decision.reason.clone(),
    };
    result.message = if result.actual != expected {
        format!("expected {expected}, got {}: {reason}", result.actual)
    } else if !binding_ok {
        format!(
            "expected binding `{}` to grant it, but it was granted by {}",
            result.expected_binding.as_deref().unwrap_or(""),
            result
                .granted_by
                .iter()
                .map(|b| format!("`{b}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        reason
    };
    if result.passed && decision.allowed {
        for (b, t) in grants {
            used.insert((b, t));
        }
    }
    result
}

fn coverage(policy: &CompiledPolicy, used: &BTreeSet<(usize, usize)>) -> Coverage {
    let p = &policy.policy;
    let mut c = Coverage {
        bindings_total: p.bindings.len(),
        ..Coverage::default()
    };
    for (b, binding) in p.bindings.iter().enumerate() {
        if !used.iter().any(|(ub, _)| *ub == b) {
            c.bindings_not_exercised.push(binding.name.value.clone());
        }
    }
    // A template is exercised when a case was granted through it by any binding of its space.
    for (s, space) in p.topic_spaces.iter().enumerate() {
        for (t, template) in space.templates.iter().enumerate() {
            c.templates_total += 1;
            let hit = used
                .iter()
                .any(|(b, ut)| p.bindings[*b].topic_space.value as usize == s && *ut == t);
            if !hit {
                c.templates_not_exercised
                    .push(format!("{}: {}", space.name.value, template.value));
            }
        }
    }
    c
}
