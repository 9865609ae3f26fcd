//! Helpers shared by the integration tests.
#![allow(dead_code)]

use topicgate::compiler::load::from_compilation;
use topicgate::compiler::{compile_text, CompiledPolicy};
use topicgate::decisions::reference;
use topicgate::diag::Diagnostic;

/// Compiles a YAML policy that must have no errors.
pub fn compile(yaml: &str) -> CompiledPolicy {
    let c = compile_text("test.yaml", yaml, None);
    let errors: Vec<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    match from_compilation(c) {
        Ok(l) => l.policy,
        Err(e) => panic!("policy does not compile: {e}"),
    }
}

/// The diagnostics of a policy (errors and warnings).
pub fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    compile_text("test.yaml", yaml, None).diagnostics
}

fn id(p: &CompiledPolicy, client: &str) -> u32 {
    p.client_by_authentication_name(client)
        .unwrap_or_else(|| panic!("no client {client}"))
}

/// Publish decision, asserting that the index and the reference evaluator agree.
pub fn may_publish(p: &CompiledPolicy, client: &str, topic: &str) -> bool {
    let c = id(p, client);
    let fast = p.decide_publish(c, topic).allowed;
    let slow = reference::may_publish(&p.policy, c as usize, topic);
    assert_eq!(
        fast, slow,
        "index and reference disagree on {client} publish {topic}"
    );
    fast
}

/// Subscribe decision, asserting that the index and the reference evaluator agree.
pub fn may_subscribe(p: &CompiledPolicy, client: &str, filter: &str) -> bool {
    let c = id(p, client);
    let fast = p.decide_subscribe(c, filter).allowed;
    let slow = reference::may_subscribe(&p.policy, c as usize, filter);
    assert_eq!(
        fast, slow,
        "index and reference disagree on {client} subscribe {filter}"
    );
    fast
}
