//! `policy fmt`: converting YAML to the DSL and back keeps the policy's meaning and
//! its decisions, and formatting either form is idempotent.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use topicgate::diag::has_errors;
use topicgate::diag::span::Sp;
use topicgate::pipeline::compile_text;
use topicgate::source::format::{header_comment, to_dsl, to_yaml};
use topicgate::source::model::*;
use topicgate::source::{dsl, yaml};

fn sp<T>(v: T) -> Sp<T> {
    Sp::unspanned(v)
}

/// Text that exercises quoting in both forms.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}",
        Just("true".to_string()),
        Just("3".to_string()),
        Just("-1x".to_string()),
        Just("a \"quoted\" # not a comment".to_string()),
        Just("back\\slash and 'single'".to_string()),
        Just("two\nlines\ttab".to_string()),
        Just("ünïcode ✓".to_string()),
        Just("$dollar: colon, comma".to_string()),
    ]
}

fn attr() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        prop_oneof![
            Just("sensor"),
            Just("actuator"),
            Just("a/b"),
            Just("+"),
            Just("yes"),
            Just("007")
        ]
        .prop_map(|s| AttrValue::Str(s.into())),
        (-5i64..5).prop_map(AttrValue::Int),
        prop::collection::vec(
            prop_oneof![Just("l1".to_string()), Just("l 2".to_string())],
            0..3
        )
        .prop_map(AttrValue::Array),
        any::<bool>().prop_map(AttrValue::Bool),
    ]
}

/// Namespace settings: each field set or left to Event Grid's default.
fn settings() -> impl Strategy<Value = SettingsDoc> {
    (
        prop::option::of(1i64..=8),
        prop::option::of(1i64..=100),
        prop::sample::subsequence(ALTERNATIVE_NAME_SOURCES.to_vec(), 0..3),
    )
        .prop_map(|(hours, sessions, sources)| SettingsDoc {
            span: Default::default(),
            maximum_session_expiry_in_hours: hours.map(sp),
            maximum_client_sessions_per_authentication_name: sessions.map(sp),
            alternative_authentication_name_sources: sources
                .into_iter()
                .map(|s| sp(s.to_string()))
                .collect(),
        })
}

const QUERIES: &[&str] = &[
    "attributes.type = 'sensor'",
    "attributes.type = 'actuator' or attributes.floor >= 0",
    "attributes.floor < 2 AND (attributes.type IN ['sensor', \"x'y\"] OR authenticationName = 'c1')",
    "attributes.line = 'l1'",
    "attributes.type <> 'sensor'",
];

const TEMPLATES: &[&str] = &[
    "clients/${client.authenticationName}/status",
    "clients/+/status",
    "lines/$<client.attributes.line>/#",
    "m/$<client.attributes.type>.f$<client.attributes.floor>/t",
    "#",
    "a//b",
];

const TOPICS: &[&str] = &[
    "clients/c0/status",
    "clients/c1/status",
    "lines/l1/x",
    "m/sensor.f1/t",
    "a//b",
    "clients/+/status",
    "lines/#",
];

fn client(i: usize) -> impl Strategy<Value = ClientDoc> {
    (
        prop::option::of(prop_oneof![Just("Dev"), Just("c1"), Just("n x")]),
        prop::option::of(any::<bool>()),
        prop::option::of(text()),
        prop::collection::btree_map(
            prop_oneof![Just("type"), Just("floor"), Just("line")],
            attr(),
            0..3,
        ),
        prop::option::of((
            prop::sample::select(TOPICS),
            prop::option::of(0u8..3),
            prop::option::of(any::<bool>()),
            prop::option::of(0u32..400),
        )),
        prop::collection::vec(prop::sample::select(TOPICS), 0..2),
        prop::collection::vec(prop::sample::select(TOPICS), 0..2),
        prop::option::of(prop::collection::vec(Just("3a:1f".repeat(16)), 1..3)),
    )
        .prop_map(
            move |(auth, state, description, attrs, will, publishes, subscribes, thumbs)| {
                ClientDoc {
                    name: sp(format!("c{i}")),
                    authentication_name: auth.map(|a| sp(a.to_string())),
                    state: state.map(|s| {
                        sp(if s {
                            ClientState::Enabled
                        } else {
                            ClientState::Disabled
                        })
                    }),
                    description: description.map(sp),
                    attributes: attrs
                        .into_iter()
                        .map(|(k, v)| (sp(k.to_string()), sp(v)))
                        .collect(),
                    authentication: thumbs.map(|t| AuthDoc {
                        span: Default::default(),
                        validation_scheme: Some(sp(ValidationScheme::ThumbprintMatch)),
                        allowed_thumbprints: t.into_iter().map(sp).collect(),
                        password_hash: None,
                    }),
                    will: will.map(|(topic, qos, retain, delay)| WillDoc {
                        span: Default::default(),
                        topic: sp(topic.to_string()),
                        qos: qos.map(sp),
                        retain: retain.map(sp),
                        delay_seconds: delay.map(sp),
                    }),
                    publishes: publishes.into_iter().map(|t| sp(t.to_string())).collect(),
                    subscribes: subscribes.into_iter().map(|t| sp(t.to_string())).collect(),
                }
            },
        )
}

fn policy() -> impl Strategy<Value = PolicyDoc> {
    (1usize..4, 0usize..3, 1usize..3, 0usize..4)
        .prop_flat_map(|(nc, ng, ns, nb)| {
            let clients: Vec<_> = (0..nc).map(client).collect();
            (
                clients,
                prop::collection::vec(
                    (prop::sample::select(QUERIES), prop::option::of(text())),
                    ng,
                ),
                prop::collection::vec(
                    (
                        prop::collection::vec(prop::sample::select(TEMPLATES), 1..3),
                        prop::option::of(text()),
                    ),
                    ns,
                ),
                prop::collection::vec((0..=ng, 0..ns, any::<bool>()), nb),
                prop::collection::vec(
                    (0..nc, prop::sample::select(TOPICS), 0u8..4, any::<bool>()),
                    0..3,
                ),
                (prop::option::of(text()), prop::option::of(settings())),
            )
        })
        .prop_map(
            |(clients, groups, spaces, bindings, tests, (namespace, settings))| {
                let group_name = |g: usize| {
                    if g == 0 {
                        "$all".to_string()
                    } else {
                        format!("grp{g}")
                    }
                };
                PolicyDoc {
                    namespace: namespace.map(sp),
                    settings,
                    clients,
                    client_groups: groups
                        .iter()
                        .enumerate()
                        .map(|(i, (q, d))| GroupDoc {
                            name: sp(group_name(i + 1)),
                            query: sp(q.to_string()),
                            description: d.clone().map(sp),
                        })
                        .collect(),
                    topic_spaces: spaces
                        .iter()
                        .enumerate()
                        .map(|(i, (ts, d))| TopicSpaceDoc {
                            name: sp(format!("space{i}")),
                            topic_templates: ts.iter().map(|t| sp(t.to_string())).collect(),
                            description: d.clone().map(sp),
                        })
                        .collect(),
                    permission_bindings: bindings
                        .iter()
                        .enumerate()
                        .map(|(i, (g, s, p))| BindingDoc {
                            name: sp(format!("bind{i}")),
                            client_group: Some(sp(group_name(*g))),
                            topic_space: Some(sp(format!("space{s}"))),
                            permission: Some(sp(if *p {
                                Permission::Publisher
                            } else {
                                Permission::Subscriber
                            })),
                            description: None,
                        })
                        .collect(),
                    ca_certificates: Vec::new(),
                    tests: tests
                        .iter()
                        .map(|(c, t, a, allow)| TestDoc {
                            span: Default::default(),
                            client: sp(format!("c{c}")),
                            action: match a {
                                0 => TestAction::Publish(sp(t.to_string())),
                                1 => TestAction::Subscribe(sp(t.to_string())),
                                2 => TestAction::Connect {
                                    will: Some(sp(t.to_string())),
                                },
                                _ => TestAction::Connect { will: None },
                            },
                            expect: sp(if *allow { Expect::Allow } else { Expect::Deny }),
                            granted_by: None,
                        })
                        .collect(),
                }
            },
        )
}

fn read_yaml(text: &str) -> PolicyDoc {
    let (doc, diags) = yaml::parse_policy(text);
    assert!(
        !has_errors(&diags),
        "YAML does not read back:\n{text}\n{diags:#?}"
    );
    doc.expect("a document")
}

fn read_dsl(text: &str) -> PolicyDoc {
    let (doc, diags) = dsl::parse_policy(text);
    assert!(
        !has_errors(&diags),
        "DSL does not read back:\n{text}\n{diags:#?}"
    );
    doc.expect("a document")
}

/// Every decision the policy makes for its clients on a fixed set of topics.
fn decisions(name: &str, text: &str) -> Vec<(bool, bool, bool)> {
    let c = compile_text(name, text, None);
    let Some(p) = c.compiled else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for id in 0..p.client_count() as u32 {
        for t in TOPICS {
            out.push((
                p.decide_publish(id, t).allowed,
                p.decide_subscribe(id, t).allowed,
                p.decide_connect(id, Some(t)).allowed,
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn yaml_to_dsl_and_back_keeps_meaning_and_decisions(doc in policy()) {
        let header = "# a policy\n# with a header comment\n";
        let yaml1 = to_yaml(&read_yaml(&to_yaml(&doc, header)), header);
        let dsl1 = to_dsl(&read_yaml(&yaml1), &header_comment(&yaml1));
        let yaml2 = to_yaml(&read_dsl(&dsl1), &header_comment(&dsl1));
        prop_assert_eq!(&yaml1, &yaml2, "DSL:\n{}", dsl1);
        prop_assert_eq!(decisions("p.yaml", &yaml1), decisions("p.policy", &dsl1));
        // Formatting is idempotent in both forms.
        prop_assert_eq!(&to_yaml(&read_yaml(&yaml1), &header_comment(&yaml1)), &yaml1);
        prop_assert_eq!(&to_dsl(&read_dsl(&dsl1), &header_comment(&dsl1)), &dsl1);
        prop_assert!(yaml1.starts_with(header) && dsl1.starts_with(header));
    }
}

#[test]
fn the_seed_scenario_converts_both_ways() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml_text = std::fs::read_to_string(root.join("policies/lwt.yaml")).unwrap();
    let dsl_text = std::fs::read_to_string(root.join("policies/lwt.policy")).unwrap();
    assert_eq!(
        to_dsl(&read_yaml(&yaml_text), &header_comment(&yaml_text)),
        dsl_text,
        "policies/lwt.policy is lwt.yaml in the DSL"
    );
    assert_eq!(
        decisions("lwt.yaml", &yaml_text),
        decisions("lwt.policy", &dsl_text)
    );
}
