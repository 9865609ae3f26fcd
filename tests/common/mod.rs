//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod mosquitto;
pub mod peers;

use topicgate::analysis::rules::rule_for;
use topicgate::compiler::CompiledPolicy;
use topicgate::decisions::reference;
use topicgate::diag::Diagnostic;
use topicgate::pipeline::compile_text;

/// Compiles a YAML policy that must have no front-end errors. The verifier's errors
/// (a value that would change a template's shape, a type mismatch in a query) stop
/// `policy compile`, but these tests exercise exactly how decisions treat such
/// policies, so the decision structure is built from the resolved policy directly.
pub fn compile(yaml: &str) -> CompiledPolicy {
    let c = compile_text("test.yaml", yaml, None);
    let errors: Vec<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && rule_for(d.code).is_none())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    match c.compiled {
        Some(policy) => policy,
        None => panic!("policy does not resolve"),
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
