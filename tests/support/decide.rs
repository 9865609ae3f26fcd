//! Publish and subscribe decisions of a compiled policy, each checked against the
//! reference evaluator, and a policy's diagnostics.

use topicgate::compiler::{compile_text, CompiledPolicy};
use topicgate::decisions::reference;
use topicgate::diag::Diagnostic;

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
    agree(
        fast,
        reference::may_publish(&p.policy, c as usize, topic),
        client,
        "publish",
        topic,
    )
}

/// Subscribe decision, asserting that the index and the reference evaluator agree.
pub fn may_subscribe(p: &CompiledPolicy, client: &str, filter: &str) -> bool {
    let c = id(p, client);
    let fast = p.decide_subscribe(c, filter).allowed;
    agree(
        fast,
        reference::may_subscribe(&p.policy, c as usize, filter),
        client,
        "subscribe",
        filter,
    )
}

fn agree(fast: bool, slow: bool, client: &str, action: &str, topic: &str) -> bool {
    assert_eq!(
        fast, slow,
        "index and reference disagree on {client} {action} {topic}"
    );
    fast
}
