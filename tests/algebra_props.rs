//! The filter algebra against brute force: over a small alphabet, every topic up to
//! one level longer than the longest filter is enumerated, and intersection, subset,
//! witness and matching are checked against the plain MQTT matching rule of
//! `source::topic::matches`. The topic alphabet has one value no filter uses, so
//! "some other value" is represented too.

use proptest::prelude::*;
use topicgate::analysis::algebra::{
    example_topic, intersect, is_subset, matches_str, witness, Filter, Vocabulary,
};
use topicgate::source::topic;

const FILTER_LEVELS: [&str; 5] = ["a", "b", "", "+", "$s"];
const TOPIC_LEVELS: [&str; 5] = ["a", "b", "", "$s", "c"];

/// Filters of 1-2 levels, optionally ending in `#` (up to 3 levels, so topics up to 4).
fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(FILTER_LEVELS.to_vec()), 1..=2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(levels, hash, lone_hash)| {
            if lone_hash && levels.len() == 1 {
                return "#".to_string();
            }
            let mut s = levels.join("/");
            if hash {
                s.push_str("/#");
            }
            if s.is_empty() {
                "a".into()
            } else {
                s
            }
        })
}

/// Every topic name with 1..=max levels over the topic alphabet.
fn topics(max: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut layer: Vec<String> = TOPIC_LEVELS.iter().map(|s| s.to_string()).collect();
    for depth in 1..=max {
        all.extend(layer.iter().filter(|t| !t.is_empty()).cloned());
        if depth == max {
            break;
        }
        layer = layer
            .iter()
            .flat_map(|t| TOPIC_LEVELS.iter().map(move |l| format!("{t}/{l}")))
            .collect();
    }
    all
}

fn universe(filters: &[&str]) -> Vec<String> {
    let max = filters
        .iter()
        .map(|f| f.split('/').count())
        .max()
        .unwrap_or(1)
        + 1;
    topics(max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn matching_agrees_with_the_plain_rule(f in filter()) {
        let parsed = Filter::parse(&f);
        for t in universe(&[&f]) {
            prop_assert_eq!(matches_str(&parsed, &t), topic::matches(&f, &t), "filter {} topic {}", f, t);
        }
    }

    #[test]
    fn intersection_is_exact(a in filter(), b in filter()) {
        let i = intersect(&Filter::parse(&a), &Filter::parse(&b));
        for t in universe(&[&a, &b]) {
            let both = topic::matches(&a, &t) && topic::matches(&b, &t);
            let got = i.as_ref().is_some_and(|i| matches_str(i, &t));
            prop_assert_eq!(got, both, "{} ∩ {} = {:?} on {}", a, b, i.as_ref().map(|f| f.to_string()), t);
        }
    }

    #[test]
    fn subset_is_exact(a in filter(), b in filter()) {
        let expected = universe(&[&a, &b]).iter().all(|t| !topic::matches(&a, t) || topic::matches(&b, t));
        prop_assert_eq!(is_subset(&Filter::parse(&a), &Filter::parse(&b)), expected, "{} ⊆ {}", a, b);
    }

    #[test]
    fn witness_is_exact(a in filter(), minus in prop::collection::vec(filter(), 0..4)) {
        let fa = Filter::parse(&a);
        let fm: Vec<Filter> = minus.iter().map(|m| Filter::parse(m)).collect();
        let refs: Vec<&Filter> = fm.iter().collect();
        let mut all: Vec<&str> = minus.iter().map(String::as_str).collect();
        all.push(&a);
        let outside = |t: &str| topic::matches(&a, t) && !minus.iter().any(|m| topic::matches(m, t));
        match witness(&fa, &refs, &Vocabulary::new()) {
            Some(w) => prop_assert!(outside(&w), "witness {} of {} minus {:?} is wrong", w, a, minus),
            None => prop_assert!(!universe(&all).iter().any(|t| outside(t)), "{} minus {:?} is not empty", a, minus),
        }
    }
}

#[test]
fn every_filter_has_an_example_topic() {
    for f in ["#", "+", "a/#", "+/+/#", "$s/#", "a//b"] {
        let parsed = Filter::parse(f);
        let t = example_topic(&parsed, &Vocabulary::new()).expect("a filter matches some topic");
        assert!(topic::matches(f, &t), "{f} does not match its example {t}");
    }
}

#[test]
fn a_lone_hash_equals_plus_hash() {
    // Both match every topic not starting with `$` (a topic has at least one level).
    assert!(is_subset(&Filter::parse("#"), &Filter::parse("+/#")));
    assert!(is_subset(&Filter::parse("+/#"), &Filter::parse("#")));
    assert!(!is_subset(&Filter::parse("a/#"), &Filter::parse("a/+/#")));
}
