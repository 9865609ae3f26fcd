//! Differential test: on random policies, topics and filters, the template index
//! and the naive reference evaluator always agree.
//!
//! A policy is generated from a vector of random choices (so proptest can shrink
//! it) as YAML text, and goes through the whole front end and compiler.

mod support;

use proptest::prelude::*;
use topicgate::decisions::reference;

/// Reads choices from proptest's random vector.
struct Choices<'a> {
    data: &'a [u32],
    at: usize,
}

impl Choices<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let v = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v as usize % n
    }
    fn one<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.pick(items.len())]
    }
}

const AUTH_NAMES: &[&str] = &["a", "b", "x1", "B2", "c", "3", "Ab"];
const STRINGS: &[&str] = &["a", "b", "x1", "", "a/b", "+", "$x", "3"];
const LITERALS: &[&str] = &["a", "b", "x1", "", "3", "xa", "x3"];
/// Authentication names as a query may write them: exact, in another case, or nobody's.
const AUTH_NAME_LITERALS: &[&str] = &["a", "A", "b2", "B2", "ab", "X1", "3", "zz"];

fn query(c: &mut Choices, depth: u32) -> String {
    if depth > 0 && c.pick(3) == 0 {
        let op = c.one(&[" AND ", " OR ", " and ", " or "]);
        let (l, r) = (query(c, depth - 1), query(c, depth - 1));
        return if c.pick(2) == 0 {
            format!("({l}){op}({r})")
        } else {
            format!("{l}{op}{r}")
        };
    }
    match c.pick(9) {
        0 => format!(
            "attributes.k1 {} '{}'",
            c.one(&["=", "!=", "<>"]),
            c.one(STRINGS)
        ),
        1 => format!(
            "attributes.k2 {} {}",
            c.one(&["=", "!=", "<", ">", "<=", ">="]),
            c.pick(5)
        ),
        2 => format!("attributes.k3 {} '{}'", c.one(&["=", "!="]), c.one(STRINGS)),
        3 => format!(
            "attributes.k{} IN ['{}', '{}']",
            1 + c.pick(3),
            c.one(STRINGS),
            c.one(STRINGS)
        ),
        4 => format!(
            "authenticationName {} '{}'",
            c.one(&["=", "!=", "<>"]),
            c.one(AUTH_NAME_LITERALS)
        ),
        // k4 is an array, an integer, a string or a boolean depending on the
        // client (issues 12 and 13).
        5 => format!(
            "attributes.k4 {} {}",
            c.one(&["=", "!=", "<>", "<", ">="]),
            c.one(&["1", "3", "'a'", "'3'", "'x1'", "'true'", "'FALSE'"])
        ),
        6 => format!(
            "attributes.k4 IN [{}, {}]",
            c.one(&["1", "'a'"]),
            c.one(&["3", "'x1'"])
        ),
        7 => format!("authenticationName IN ['{}']", c.one(AUTH_NAME_LITERALS)),
        _ => format!("attributes.k2 IN [{}, {}]", c.pick(5), c.pick(5)),
    }
}

fn template(c: &mut Choices) -> String {
    let n = 1 + c.pick(4);
    let mut levels = Vec::new();
    for i in 0..n {
        let last = i + 1 == n;
        let level = match c.pick(if last { 9 } else { 8 }) {
            0 | 1 => c.one(LITERALS).to_string(),
            2 => "+".into(),
            3 => "$<client.authenticationName>".into(),
            4 => "${client.attributes.k1}".into(),
            5 => "$<client.attributes.k2>".into(),
            6 => format!("x$<client.attributes.k{}>", 1 + c.pick(3)),
            7 if c.pick(2) == 0 => "$<client.attributes.k4>".into(),
            7 => "$<client.attributes.k3>".into(),
            _ => "#".into(),
        };
        levels.push(level);
    }
    if levels[0].is_empty() && n == 1 {
        levels[0] = "a".into();
    }
    levels.join("/")
}

fn policy(c: &mut Choices) -> String {
    let mut y = String::from("clients:\n");
    let n_clients = 1 + c.pick(AUTH_NAMES.len());
    for (i, auth) in AUTH_NAMES.iter().take(n_clients).enumerate() {
        y += &format!("  cl{i}:\n    authenticationName: \"{auth}\"\n");
        if c.pick(6) == 0 {
            y += "    state: Disabled\n";
        }
        y += "    attributes:\n";
        if c.pick(4) != 0 {
            y += &format!("      k1: \"{}\"\n", c.one(STRINGS));
        }
        if c.pick(4) != 0 {
            y += &format!("      k2: {}\n", c.pick(5));
        }
        match c.pick(3) {
            0 => {
                y += &format!(
                    "      k3: [\"{}\", \"{}\"]\n",
                    c.one(STRINGS),
                    c.one(STRINGS)
                )
            }
            1 => y += &format!("      k3: \"{}\"\n", c.one(STRINGS)),
            _ => {}
        }
        match c.pick(5) {
            0 => {
                y += &format!(
                    "      k4: [\"{}\", \"{}\"]\n",
                    c.one(STRINGS),
                    c.one(STRINGS)
                )
            }
            1 => y += &format!("      k4: {}\n", c.pick(4)),
            2 => y += &format!("      k4: \"{}\"\n", c.one(STRINGS)),
            3 => y += &format!("      k4: {}\n", c.one(&["true", "false"])),
            _ => {}
        }
    }
    let n_groups = 1 + c.pick(4);
    y += "clientGroups:\n";
    for g in 0..n_groups {
        y += &format!("  grp{g}:\n    query: \"{}\"\n", query(c, 2));
    }
    let n_spaces = 1 + c.pick(3);
    y += "topicSpaces:\n";
    for s in 0..n_spaces {
        y += &format!("  spc{s}:\n    topicTemplates:\n");
        for _ in 0..1 + c.pick(4) {
            y += &format!("      - \"{}\"\n", template(c));
        }
    }
    y += "permissionBindings:\n";
    for b in 0..1 + c.pick(5) {
        let group = if c.pick(4) == 0 {
            "$all".to_string()
        } else {
            format!("grp{}", c.pick(n_groups))
        };
        y += &format!(
            "  bnd{b}:\n    clientGroup: \"{group}\"\n    topicSpace: spc{}\n    permission: {}\n",
            c.pick(n_spaces),
            c.one(&["publisher", "subscriber"])
        );
    }
    y
}

fn topic(c: &mut Choices, filter: bool) -> String {
    let n = 1 + c.pick(4);
    let mut levels = Vec::new();
    for i in 0..n {
        let last = i + 1 == n;
        let level = match c.pick(if filter { 10 } else { 8 }) {
            0..=4 => c.one(LITERALS).to_string(),
            5 => c.one(AUTH_NAMES).to_string(),
            6 => format!("x{}", c.one(&["1", "3", "a", "b", "x1"])),
            7 if i == 0 => "$s".into(),
            7 => "a".into(),
            8 => "+".into(),
            _ if last => "#".into(),
            _ => "+".into(),
        };
        levels.push(level);
    }
    let t = levels.join("/");
    if filter && c.pick(8) == 0 {
        format!("$share/g/{t}")
    } else {
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_reference(data in proptest::collection::vec(any::<u32>(), 600)) {
        let mut c = Choices { data: &data, at: 0 };
        let yaml = policy(&mut c);
        let p = support::policy::compiled(&yaml);
        // Membership: the compiler's evaluation against the reference's own.
        for client in 0..p.client_count() {
            for g in 0..p.policy.groups.len() {
                prop_assert_eq!(
                    p.is_member(client as u32, g as u32),
                    reference::is_member(&p.policy, client, g),
                    "client {} group {}\n{}", client, g, yaml
                );
            }
        }
        for _ in 0..24 {
            let client = c.pick(p.client_count());
            let t = topic(&mut c, false);
            let fast = p.decide_publish(client as u32, &t).allowed;
            let slow = reference::may_publish(&p.policy, client, &t);
            prop_assert_eq!(fast, slow, "publish {} by client {}\n{}", t, client, yaml);
            let f = topic(&mut c, true);
            let d = p.decide_subscribe(client as u32, &f);
            let slow_grants = reference::grants(&p.policy, client, topicgate::source::model::Permission::Subscriber, &f);
            prop_assert_eq!(d.allowed, !slow_grants.is_empty(), "subscribe {} by client {}\n{}", f, client, yaml);
            // Receive: only what can be published (issue 12: `+`, `$share/g/a` listed receivers).
            let r = if c.pick(2) == 0 { topic(&mut c, true) } else { t.clone() };
            let fast = p.decide_receive(client as u32, &r).allowed;
            let slow = reference::may_receive(&p.policy, client, &r);
            prop_assert_eq!(fast, slow, "receive {} by client {}\n{}", r, client, yaml);
            // What the index names as the grant is one the reference accepts too.
            if let Some(g) = d.grant {
                prop_assert!(slow_grants.contains(&(g.binding as usize, g.template as usize)),
                    "grant {:?} for subscribe {} is not one of {:?}\n{}", g, f, slow_grants, yaml);
            }
        }
    }
}

/// A name a user might type for a client: its authentication name (in its own or
/// another case), its resource name, or nobody's.
fn client_name(c: &mut Choices, p: &topicgate::compiler::CompiledPolicy) -> String {
    let client = p.client(c.pick(p.client_count()) as u32);
    match c.pick(4) {
        0 => client.authentication_name.value.clone(),
        1 => client.authentication_name.value.to_uppercase(),
        2 => client.name.value.clone(),
        _ => "nobody".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// `policy test` and `policy explain` read a client name the same way (semantics.md
    /// §8), so they give the same answer to the same request (issue 12: a test resolved
    /// `client:` by resource name where explain takes the authentication name).
    #[test]
    fn policy_test_and_explain_agree_on_who_a_name_is(data in proptest::collection::vec(any::<u32>(), 600)) {
        use topicgate::compiler::model::{PolicyTest, TestAction};
        use topicgate::decisions::explain::{explain, Question};
        use topicgate::decisions::test_runner::{run, TestSource};
        use topicgate::source::model::Expect;
        use topicgate::source::span::{Sp, Span};
        let mut c = Choices { data: &data, at: 0 };
        let yaml = policy(&mut c);
        let p = support::policy::compiled(&yaml);
        for _ in 0..8 {
            let name = client_name(&mut c, &p);
            let t = topic(&mut c, false);
            let test = PolicyTest {
                span: Span::NONE,
                client: Sp::unspanned(name.clone()),
                action: TestAction::Publish(Sp::unspanned(t.clone())),
                expect: Sp::unspanned(Expect::Allow),
                granted_by: None,
            };
            let report = run(&p, &[TestSource { file: None, tests: vec![test] }]);
            let case = &report.cases[0];
            let e = explain(&p, &name, &Question::Publish(t.clone()));
            prop_assert_eq!(case.actual, e.decision, "{} publish {}: test says {}, explain {}\n{}", name, t, case.message, e.reason, yaml);
            let test_unknown = case.message.starts_with("unknown client");
            prop_assert_eq!(test_unknown, e.chain.is_none(), "{} publish {}: {} / {}\n{}", name, t, case.message, e.reason, yaml);
        }
    }
}

/// Issue 12 regressions, asked of the index, the reference evaluator and `explain`
/// (whose chain marks the template that contains the filter).
fn agree_on_subscribe(p: &topicgate::compiler::CompiledPolicy, client: &str, filter: &str) -> bool {
    use topicgate::decisions::explain::{explain, Question};
    let allowed = support::decide::may_subscribe(p, client, filter);
    let e = explain(p, client, &Question::Subscribe(filter.to_string()));
    assert_eq!(
        e.allowed(),
        allowed,
        "explain disagrees on {client} subscribe {filter}"
    );
    let chain = e.chain.expect("a known client has a chain");
    let matched = chain
        .bindings
        .iter()
        .any(|b| b.templates.iter().any(|t| t.matches));
    assert_eq!(
        matched, allowed,
        "explain's chain disagrees on {client} subscribe {filter}"
    );
    allowed
}

const PLUS_HASH: &str = r##"
clients:
  s1: { authenticationName: s1 }
clientGroups:
  all: { query: "authenticationName = 's1'" }
topicSpaces:
  below-a-level: { topicTemplates: ["+/#"] }
permissionBindings:
  sub: { clientGroup: all, topicSpace: below-a-level, permission: subscriber }
"##;

/// Every topic has at least one level, so `+/#` covers every topic `#` covers
/// (neither matches `$` topics).
#[test]
fn plus_hash_grants_hash_and_shared_hash() {
    let p = support::policy::compiled(PLUS_HASH);
    for f in ["#", "$share/g/#", "/#", "+/#", "a/#", "+", "a/b/#"] {
        assert!(agree_on_subscribe(&p, "s1", f), "{f}");
    }
    for f in ["$SYS/#", "$share/g/$SYS/#"] {
        assert!(!agree_on_subscribe(&p, "s1", f), "{f}");
    }
}

const HASH: &str = r##"
clients:
  s1: { authenticationName: s1 }
clientGroups:
  all: { query: "authenticationName = 's1'" }
topicSpaces:
  everything: { topicTemplates: ["#"] }
permissionBindings:
  sub: { clientGroup: all, topicSpace: everything, permission: subscriber }
"##;

/// MQTT carries `$share/NAME/F` as one field: 65,535 bytes in all, prefix included.
#[test]
fn a_shared_filter_of_65536_bytes_is_invalid() {
    let p = support::policy::compiled(HASH);
    let fits = format!("$share/g/{}", "a".repeat(65_535 - "$share/g/".len()));
    assert_eq!(fits.len(), 65_535);
    assert!(agree_on_subscribe(&p, "s1", &fits));
    let over = fits + "a";
    assert!(!agree_on_subscribe(&p, "s1", &over));
    assert!(!agree_on_subscribe(&p, "s1", &"a".repeat(65_536)));
}
