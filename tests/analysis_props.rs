//! `diff` and `flow` against brute force: random small policies (templates with `+`,
//! `#`, whole- and partial-level variables substituted per client), every topic and
//! filter over a small alphabet enumerated, and each answer compared with the
//! decisions the broker makes.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use topicgate::analysis::diff::diff;
use topicgate::analysis::flow::flow;
use topicgate::compiler::CompiledPolicy;
use topicgate::pipeline::compile_text;
use topicgate::pipeline::from_compilation;

const TEMPLATE_LEVELS: [&str; 7] = [
    "a",
    "b",
    "+",
    "$<client.authenticationName>",
    "x$<client.authenticationName>",
    "$<client.attributes.t>",
    "c",
];
const CLIENTS: [&str; 3] = ["a", "b", "c"];
/// Level values a topic can have: the literals, the substituted values, one other.
const TOPIC_LEVELS: [&str; 7] = ["a", "b", "c", "xa", "xb", "xc", "d"];

fn template() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(TEMPLATE_LEVELS.to_vec()), 1..=2),
        any::<bool>(),
    )
        .prop_map(|(l, hash)| {
            let mut s = l.join("/");
            if hash {
                s.push_str("/#");
            }
            s
        })
}

/// Two topic spaces of 1-2 templates; bindings from groups `t-a`, `t-b`, `$all` to them.
#[derive(Debug, Clone)]
struct Shape {
    /// Each client's attribute `t` (`a` or `b`): a change between two shapes changes
    /// the client's groups and substituted values.
    ts: Vec<bool>,
    spaces: Vec<Vec<String>>,
    /// (group, space, publisher?)
    bindings: Vec<(usize, usize, bool)>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(any::<bool>(), CLIENTS.len()),
        prop::collection::vec(prop::collection::vec(template(), 1..=2), 2),
        prop::collection::vec((0..3usize, 0..2usize, any::<bool>()), 1..=3),
    )
        .prop_map(|(ts, spaces, bindings)| Shape {
            ts,
            spaces,
            bindings,
        })
}

fn policy(s: &Shape) -> CompiledPolicy {
    let mut y = String::from("clients:\n");
    for (name, t) in CLIENTS.iter().zip(&s.ts) {
        let t = if *t { "a" } else { "b" };
        y.push_str(&format!("  {name}:\n    attributes: {{ t: {t} }}\n"));
    }
    y.push_str("clientGroups:\n  t-a:\n    query: attributes.t = 'a'\n  t-b:\n    query: attributes.t = 'b'\ntopicSpaces:\n");
    for (i, templates) in s.spaces.iter().enumerate() {
        let list: Vec<String> = templates.iter().map(|t| format!("\"{t}\"")).collect();
        y.push_str(&format!(
            "  space{i}:\n    topicTemplates: [{}]\n",
            list.join(", ")
        ));
    }
    y.push_str("permissionBindings:\n");
    for (i, (g, sp, publish)) in s.bindings.iter().enumerate() {
        let group = ["t-a", "t-b", "$all"][*g];
        let perm = if *publish { "publisher" } else { "subscriber" };
        y.push_str(&format!("  bind{i}:\n    clientGroup: {group}\n    topicSpace: space{sp}\n    permission: {perm}\n"));
    }
    let c = compile_text("gen.yaml", &y, None);
    match from_compilation(c) {
        Ok(l) => l.policy,
        Err(e) => panic!("generated policy does not compile: {e}\n{y}"),
    }
}

fn topics() -> Vec<String> {
    let mut all: Vec<String> = TOPIC_LEVELS.iter().map(|s| s.to_string()).collect();
    let mut layer = all.clone();
    for _ in 1..3 {
        layer = layer
            .iter()
            .flat_map(|t| TOPIC_LEVELS.iter().map(move |l| format!("{t}/{l}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    all
}

fn filters() -> Vec<String> {
    let mut levels: Vec<&str> = TOPIC_LEVELS.to_vec();
    levels.push("+");
    let mut all: Vec<String> = levels.iter().map(|s| s.to_string()).collect();
    let mut layer = all.clone();
    for _ in 1..3 {
        layer = layer
            .iter()
            .flat_map(|t| levels.iter().map(move |l| format!("{t}/{l}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    let with_hash: Vec<String> = all
        .iter()
        .filter(|f| f.split('/').count() < 3)
        .map(|f| format!("{f}/#"))
        .collect();
    all.extend(with_hash);
    all.push("#".into());
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    #[test]
    fn diff_reports_exactly_the_access_gained_and_lost(old in shape(), new in shape()) {
        let (po, pn) = (policy(&old), policy(&new));
        let d = diff(&po, &pn);
        let (topics, filters) = (topics(), filters());
        for id in 0..CLIENTS.len() as u32 {
            let name = CLIENTS[id as usize];
            let changed = d.clients_changed.iter().find(|c| c.client == name);
            for (gained_side, from, to) in [(true, &po, &pn), (false, &pn, &po)] {
                let pub_changes = changed.map(|c| if gained_side { &c.publish_gained } else { &c.publish_lost });
                let sub_changes = changed.map(|c| if gained_side { &c.subscribe_gained } else { &c.subscribe_lost });
                let pub_brute = topics.iter().any(|t| to.decide_publish(id, t).allowed && !from.decide_publish(id, t).allowed);
                prop_assert_eq!(pub_changes.is_some_and(|c| !c.is_empty()), pub_brute, "publish change for {}", name);
                for c in pub_changes.into_iter().flatten() {
                    let w = c.witness_topic.as_deref().unwrap_or("");
                    prop_assert!(to.decide_publish(id, w).allowed && !from.decide_publish(id, w).allowed, "publish witness {}", w);
                }
                let sub_brute = filters.iter().any(|f| to.decide_subscribe(id, f).allowed && !from.decide_subscribe(id, f).allowed);
                prop_assert_eq!(sub_changes.is_some_and(|c| !c.is_empty()), sub_brute, "subscribe change for {}", name);
                for c in sub_changes.into_iter().flatten() {
                    let f = &c.grant.filter;
                    prop_assert!(to.decide_subscribe(id, f).allowed && !from.decide_subscribe(id, f).allowed, "subscribe witness {}", f);
                }
            }
        }
    }

    #[test]
    fn flow_exists_exactly_when_a_shared_topic_exists(s in shape()) {
        let p = policy(&s);
        let topics = topics();
        for a in 0..CLIENTS.len() as u32 {
            for b in 0..CLIENTS.len() as u32 {
                let f = flow(&p, a, b);
                let brute = topics.iter().any(|t| p.decide_publish(a, t).allowed && p.decide_subscribe(b, t).allowed);
                prop_assert_eq!(f.flows, brute, "flow {} -> {}", a, b);
                for path in &f.paths {
                    prop_assert!(p.decide_publish(a, &path.witness).allowed && p.decide_subscribe(b, &path.witness).allowed);
                }
            }
        }
    }
}
