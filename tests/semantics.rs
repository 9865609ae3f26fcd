//! Every rule of semantics.md §1-§3 and §8, each with its allowed and its denied side.

mod support;
use support::decide::*;
use support::policy::compiled;
use topicgate::diag::Code;

const SEED: &str = include_str!("../policies/lwt.yaml");

#[test]
fn seed_scenario_decisions() {
    let p = compiled(SEED);
    assert!(may_publish(&p, "sensor1", "clients/sensor1/status"));
    assert!(!may_publish(&p, "sensor2", "clients/sensor1/status"));
    assert!(
        !may_publish(&p, "actuator1", "clients/actuator1/status"),
        "no publisher binding for actuators"
    );
    assert!(may_subscribe(&p, "actuator1", "clients/+/status"));
    assert!(may_subscribe(&p, "actuator2", "clients/sensor1/status"));
    assert!(!may_subscribe(&p, "actuator1", "clients/#"), "subset rule");
    assert!(
        !may_subscribe(&p, "sensor1", "clients/+/status"),
        "publisher does not imply subscriber"
    );
    let s1 = p.client_by_authentication_name("sensor1").unwrap();
    assert!(p.decide_connect(s1, Some("clients/sensor1/status")).allowed);
    let d = p.decide_connect(s1, Some("clients/sensor2/status"));
    assert!(!d.allowed);
    assert!(
        d.reason.contains("will topic `clients/sensor2/status`"),
        "{}",
        d.reason
    );
}

#[test]
fn authentication_names_are_case_insensitive_for_lookup_but_substituted_in_original_case() {
    let p = compiled(
        r##"
clients:
  dev-1: { authenticationName: Sensor-A, attributes: { t: s } }
clientGroups:
  all-s: { query: "attributes.t = 's'" }
topicSpaces:
  own: { topicTemplates: [ "d/$<client.authenticationName>" ] }
permissionBindings:
  b-own: { clientGroup: all-s, topicSpace: own, permission: publisher }
"##,
    );
    assert_eq!(
        p.client_by_authentication_name("sensor-a"),
        p.client_by_authentication_name("SENSOR-A")
    );
    assert!(
        p.client_by_authentication_name("dev-1").is_none(),
        "the client name is not the authentication name"
    );
    // The tools name clients the same way (semantics.md §8), and say what went wrong
    // when given the resource name.
    use topicgate::decisions::naming::find_client;
    assert_eq!(
        find_client(&p, "SENSOR-a").ok(),
        p.client_by_authentication_name("sensor-a")
    );
    let unknown = find_client(&p, "dev-1").unwrap_err();
    assert_eq!(unknown.suggestions, ["Sensor-A"]);
    assert!(unknown.to_string().contains("resource name"), "{unknown}");
    assert!(may_publish(&p, "sensor-a", "d/Sensor-A"));
    assert!(
        !may_publish(&p, "sensor-a", "d/sensor-a"),
        "topics are case-sensitive"
    );
}

#[test]
fn duplicate_authentication_names_compare_case_insensitively() {
    let d = diagnostics(
        r##"
clients:
  a: { authenticationName: Dev }
  b: { authenticationName: dEV }
"##,
    );
    assert!(
        d.iter()
            .any(|d| d.code == Code::DuplicateAuthenticationName),
        "{d:#?}"
    );
    let ok = diagnostics(
        "clients:\n  a: { authenticationName: Dev }\n  b: { authenticationName: Dev2 }\n",
    );
    assert!(!ok
        .iter()
        .any(|d| d.code == Code::DuplicateAuthenticationName));
}

#[test]
fn disabled_clients_can_do_nothing() {
    let p = compiled(
        r##"
clients:
  on: {}
  off: { state: Disabled }
topicSpaces:
  any: { topicTemplates: [ "#" ] }
permissionBindings:
  all-pub: { clientGroup: $all, topicSpace: any, permission: publisher }
  all-sub: { clientGroup: $all, topicSpace: any, permission: subscriber }
"##,
    );
    assert!(may_publish(&p, "on", "x"));
    assert!(!may_publish(&p, "off", "x"));
    assert!(!may_subscribe(&p, "off", "x"));
    let off = p.client_by_authentication_name("off").unwrap();
    assert!(!p.decide_connect(off, None).allowed);
    let on = p.client_by_authentication_name("on").unwrap();
    assert!(p.decide_connect(on, None).allowed);
}

#[test]
fn the_all_group_contains_everyone_and_cannot_be_redefined() {
    let p = compiled(
        r##"
clients: { a: {}, b: { attributes: { k: 1 } } }
topicSpaces: { tsp: { topicTemplates: [ "x/+" ] }, tsp2: { topicTemplates: [ "y" ] } }
permissionBindings: { bpb: { clientGroup: $all, topicSpace: tsp, permission: Publisher } }
"##,
    );
    assert!(may_publish(&p, "a", "x/1"));
    assert!(may_publish(&p, "b", "x/1"));
    assert!(!may_publish(&p, "b", "y"));
    let d = diagnostics("clientGroups:\n  $all: { query: \"attributes.x = 1\" }\n");
    assert!(d.iter().any(|d| d.code == Code::RedefinedAll), "{d:#?}");
}

const ATTRS: &str = r##"
clients:
  s1: { attributes: { type: sensor, floor: 3, tags: [hot, north], Type: other } }
  s2: { attributes: { type: sensor, floor: 1, tags: [cold] } }
  h1: { attributes: { type: human } }
clientGroups:
  GROUP: { query: "QUERY" }
topicSpaces:
  tsp: { topicTemplates: [ "x" ] }
permissionBindings:
  bpb: { clientGroup: GROUP, topicSpace: tsp, permission: publisher }
"##;

/// The clients (sorted) that a query selects.
fn members(query: &str) -> Vec<String> {
    let p = compiled(&ATTRS.replace("QUERY", query));
    let mut out: Vec<String> = ["s1", "s2", "h1"]
        .iter()
        .filter(|c| may_publish(&p, c, "x"))
        .map(|c| c.to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn queries_compare_strings_integers_and_arrays() {
    assert_eq!(members("attributes.type = 'sensor'"), ["s1", "s2"]);
    assert_eq!(
        members("attributes.Type = 'other'"),
        ["s1"],
        "attribute keys are case-sensitive"
    );
    assert_eq!(
        members("attributes.type = 'SENSOR'"),
        Vec::<String>::new(),
        "values are case-sensitive"
    );
    assert_eq!(members("attributes.floor >= 3"), ["s1"]);
    assert_eq!(members("attributes.floor < 3"), ["s2"]);
    assert_eq!(
        members("attributes.floor <> 3"),
        ["s2"],
        "missing attribute: != is false"
    );
    assert_eq!(
        members("attributes.floor = '3'"),
        Vec::<String>::new(),
        "integer vs string never equal"
    );
    assert_eq!(
        members("attributes.type > 3"),
        Vec::<String>::new(),
        "ordering on strings is false"
    );
    assert_eq!(
        members("attributes.tags = 'hot'"),
        ["s1"],
        "= on an array is membership"
    );
    assert_eq!(members("attributes.tags IN ['cold', 'x']"), ["s2"]);
    assert_eq!(
        members("attributes.tags != 'hot'"),
        ["s2"],
        "!= on an array: no element matches"
    );
    assert_eq!(members("attributes.nothing != 'x'"), Vec::<String>::new());
    assert_eq!(
        members("authenticationName IN ['S1', 'h1']"),
        ["h1", "s1"],
        "authentication names ignore case"
    );
}

#[test]
fn and_binds_tighter_than_or_and_keywords_ignore_case() {
    assert_eq!(
        members("attributes.type = 'human' or attributes.type = 'sensor' and attributes.floor = 3"),
        ["h1", "s1"]
    );
    assert_eq!(
        members(
            "(attributes.type = 'human' OR attributes.type = 'sensor') AND attributes.floor = 3"
        ),
        ["s1"]
    );
}

#[test]
fn not_is_not_part_of_the_language() {
    let d = diagnostics(&ATTRS.replace("QUERY", "NOT attributes.type = 'sensor'"));
    assert!(
        d.iter()
            .any(|d| d.code == Code::QuerySyntax && d.message.contains("NOT")),
        "{d:#?}"
    );
}

const TEMPLATES: &str = r##"
clients:
  m1: { attributes: { line: L1, floor: 3, zones: [a, b], evil: "a/b", plus: "+", dollar: "$x" } }
  m2: { attributes: { line: L2, floor: 4 } }
topicSpaces:
  tsp: { topicTemplates: [ TEMPLATE ] }
permissionBindings:
  bpp: { clientGroup: $all, topicSpace: tsp, permission: publisher }
  bps: { clientGroup: $all, topicSpace: tsp, permission: subscriber }
"##;

fn with_template(t: &str) -> topicgate::compiler::CompiledPolicy {
    compiled(&TEMPLATES.replace("TEMPLATE", &format!("\"{t}\"")))
}

#[test]
fn hash_matches_its_parent_level() {
    let p = with_template("a/#");
    assert!(may_publish(&p, "m1", "a"));
    assert!(may_publish(&p, "m1", "a/b/c"));
    assert!(!may_publish(&p, "m1", "ab"));
    assert!(may_subscribe(&p, "m1", "a"));
    assert!(may_subscribe(&p, "m1", "a/+/c"));
    assert!(may_subscribe(&p, "m1", "a/#"));
    assert!(!may_subscribe(&p, "m1", "#"));
}

#[test]
fn plus_is_exactly_one_level_and_empty_levels_are_levels() {
    let p = with_template("a/+/c");
    assert!(may_publish(&p, "m1", "a/b/c"));
    assert!(may_publish(&p, "m1", "a//c"));
    assert!(!may_publish(&p, "m1", "a/c"));
    assert!(!may_publish(&p, "m1", "a/b/b/c"));
}

#[test]
fn dollar_topics_are_reserved() {
    let p = with_template("#");
    assert!(may_publish(&p, "m1", "x/$y"));
    assert!(!may_publish(&p, "m1", "$SYS/x"));
    assert!(may_subscribe(&p, "m1", "#"));
    assert!(!may_subscribe(&p, "m1", "$SYS/#"));
    assert!(!may_subscribe(&p, "m1", "$SYS/x"));
    let d = diagnostics(&TEMPLATES.replace("TEMPLATE", "\"$SYS/x\""));
    assert!(d.iter().any(|d| d.code == Code::ReservedTemplate), "{d:#?}");
}

#[test]
fn whole_and_partial_level_variables() {
    let p = with_template("m/$<client.attributes.line>.f$<client.attributes.floor>/temp");
    assert!(may_publish(&p, "m1", "m/L1.f3/temp"));
    assert!(may_publish(&p, "m2", "m/L2.f4/temp"));
    assert!(!may_publish(&p, "m1", "m/L2.f4/temp"));
    assert!(!may_publish(&p, "m1", "m/L1.f/temp"));
    assert!(!may_publish(&p, "m1", "m/L1.f3x/temp"));
    assert!(may_subscribe(&p, "m1", "m/L1.f3/temp"));
    assert!(
        !may_subscribe(&p, "m1", "m/+/temp"),
        "a variable level does not contain `+`"
    );
}

#[test]
fn integer_attributes_substitute_as_decimal_text() {
    let p = with_template("floors/${client.attributes.floor}/#");
    assert!(may_publish(&p, "m1", "floors/3/x"));
    assert!(!may_publish(&p, "m1", "floors/03/x"));
    assert!(may_publish(&p, "m2", "floors/4"));
}

#[test]
fn arrays_missing_and_shape_changing_values_grant_nothing() {
    let p = with_template("z/$<client.attributes.zones>");
    assert!(!may_publish(&p, "m1", "z/a"));
    assert!(!may_publish(&p, "m1", "z/[a, b]"));
    let p = with_template("z/$<client.attributes.line>/$<client.attributes.missing>");
    assert!(!may_publish(&p, "m1", "z/L1/"));
    for (attr, topic) in [
        ("evil", "e/a/b"),
        ("plus", "e/+"),
        ("plus", "e/x"),
        ("dollar", "e/$x"),
    ] {
        let p = with_template(&format!("e/$<client.attributes.{attr}>"));
        assert!(
            !may_publish(&p, "m1", topic),
            "{attr} must not be substituted ({topic})"
        );
        assert!(
            !may_subscribe(&p, "m1", topic.replace('x', "+").as_str()),
            "{attr}"
        );
    }
}

#[test]
fn subscribe_needs_one_template_containing_the_whole_filter() {
    let p = compiled(
        r##"
clients: { c: {} }
topicSpaces: { tsp: { topicTemplates: [ "a/+/x", "a/+/y", "b/#" ] } }
permissionBindings: { bsub: { clientGroup: $all, topicSpace: tsp, permission: subscriber } }
"##,
    );
    assert!(may_subscribe(&p, "c", "a/+/x"));
    assert!(may_subscribe(&p, "c", "a/1/y"));
    assert!(
        !may_subscribe(&p, "c", "a/+/+"),
        "x and y together would cover it, but no single template does"
    );
    assert!(!may_subscribe(&p, "c", "a/#"));
    assert!(may_subscribe(&p, "c", "b"));
    assert!(may_subscribe(&p, "c", "b/+/#"));
    assert!(
        may_subscribe(&p, "c", "$share/g1/a/+/x"),
        "shared subscriptions are authorized as their filter"
    );
    assert!(!may_subscribe(&p, "c", "$share/g1/a/#"));
    assert!(
        !may_subscribe(&p, "c", "$share//a/+/x"),
        "malformed shared subscription"
    );
    assert!(!may_subscribe(&p, "c", "a/#/x"), "invalid filter");
    assert!(
        !may_publish(&p, "c", "a/1/x"),
        "subscriber does not imply publisher"
    );
}

#[test]
fn rights_are_the_union_of_all_bindings_of_all_groups() {
    let p = compiled(
        r##"
clients: { c: { attributes: { a: 1, b: 2 } } }
clientGroups: { gra: { query: "attributes.a = 1" }, grb: { query: "attributes.b = 2" } }
topicSpaces: { tsa: { topicTemplates: [ "a" ] }, tsb: { topicTemplates: [ "b" ] } }
permissionBindings:
  bba: { clientGroup: gra, topicSpace: tsa, permission: publisher }
  bbb: { clientGroup: grb, topicSpace: tsb, permission: publisher }
"##,
    );
    assert!(may_publish(&p, "c", "a"));
    assert!(may_publish(&p, "c", "b"));
    assert!(!may_publish(&p, "c", "c"));
}

#[test]
fn wildcards_in_published_topic_names_are_refused() {
    let p = with_template("#");
    assert!(!may_publish(&p, "m1", "a/+"));
    assert!(!may_publish(&p, "m1", "a/#"));
    assert!(!may_publish(&p, "m1", ""));
}

#[test]
fn authentication_names_in_queries_ignore_case_and_check_warns_when_a_policy_relies_on_it() {
    assert_eq!(members("authenticationName = 'S1'"), ["s1"]);
    assert_eq!(
        members("authenticationName != 'S1'"),
        ["h1", "s2"],
        "!= ignores case too"
    );
    assert_eq!(members("authenticationName = 's'"), Vec::<String>::new());
    let relies = diagnostics(&ATTRS.replace("QUERY", "authenticationName IN ['S1', 'h1']"));
    let warned: Vec<_> = relies
        .iter()
        .filter(|d| d.code == Code::AuthenticationNameCase)
        .collect();
    assert_eq!(warned.len(), 1, "only `S1` differs in case: {relies:#?}");
    assert!(warned[0].message.contains("`S1`"), "{warned:#?}");
    let exact =
        diagnostics(&ATTRS.replace("QUERY", "authenticationName IN ['s1', 'h1', 'nobody']"));
    assert!(
        !exact.iter().any(|d| d.code == Code::AuthenticationNameCase),
        "{exact:#?}"
    );
}

#[test]
fn not_equal_on_an_array_holds_when_no_element_matches_even_against_an_integer() {
    // `k` is an array on one client and an integer on another (issue 12).
    let policy = |query: &str| {
        compiled(&format!(
            r##"
clients:
  arr: {{ attributes: {{ k: [a, b] }} }}
  int: {{ attributes: {{ k: 7 }} }}
  str: {{ attributes: {{ k: "7" }} }}
  none: {{}}
clientGroups:
  grp: {{ query: "{query}" }}
topicSpaces:
  tsp: {{ topicTemplates: [ "x" ] }}
permissionBindings:
  bpb: {{ clientGroup: grp, topicSpace: tsp, permission: publisher }}
"##
        ))
    };
    let members = |query: &str| {
        let p = policy(query);
        ["arr", "int", "str", "none"]
            .into_iter()
            .filter(|c| may_publish(&p, c, "x"))
            .collect::<Vec<_>>()
    };
    assert_eq!(members("attributes.k != 5"), ["arr", "int"]);
    assert_eq!(members("attributes.k <> 7"), ["arr"]);
    assert_eq!(members("attributes.k = 7"), ["int"]);
    assert_eq!(
        members("attributes.k != 'a'"),
        ["str"],
        "the array holds `a`"
    );
    assert_eq!(members("attributes.k != 'c'"), ["arr", "str"]);
    assert_eq!(members("attributes.k IN [7, 'b']"), ["arr", "int"]);
    assert_eq!(
        members("attributes.k > 1"),
        ["int"],
        "ordering on an array is false"
    );
    // Where `k` is an array on every client, `!= 5` is a type error, which holds.
    let d = diagnostics(&ATTRS.replace("QUERY", "attributes.tags != 5"));
    let mismatch = d.iter().find(|d| d.code == Code::QueryType);
    assert!(
        mismatch.is_some_and(|d| d.label.as_deref().is_some_and(|l| l.starts_with("true"))),
        "{d:#?}"
    );
}

#[test]
fn nobody_receives_what_cannot_be_published() {
    use topicgate::analysis::query::{who_may, Ask};
    let p = with_template("#");
    let receivers = |t: &str| who_may(&p, &Ask::Receive(t.into())).clients.len();
    assert_eq!(receivers("a/b"), 2);
    for t in ["+", "a/#", "#", "$share/g/a", "$SYS/x", ""] {
        assert_eq!(receivers(t), 0, "`{t}` cannot be published");
        let m1 = p.client_by_authentication_name("m1").unwrap();
        assert!(!p.decide_receive(m1, t).allowed, "{t}");
    }
    // Subscribing to those filters is another question.
    assert!(may_subscribe(&p, "m1", "+"));
    assert!(may_subscribe(&p, "m1", "$share/g/a"));
}
