//! The topic algebra against brute force: over a small alphabet, every topic up to
//! one level longer than the longest filter is enumerated, and matching, subset (the
//! one rule the index, explain, query, diff and the broker use), intersection and
//! witnesses are checked against MQTT's matching rule written out here on its own
//! (`spec_matches`), so that a mistake in `topicgate::topic` cannot hide in its oracle.
//! The topic alphabet has one value no filter uses, so "some other value" is
//! represented too.

// Tests fail loudly: unwrap, expect and panic are their assertions (decision 0026).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use topicgate::topic::{self, example_topic, intersect, is_subset, witness, Filter, Vocabulary};

const FILTER_LEVELS: [&str; 5] = ["a", "b", "", "+", "$s"];
const TOPIC_LEVELS: [&str; 5] = ["a", "b", "", "$s", "c"];

/// MQTT 5 §4.7 read literally: `+` is one level, `#` (last) is the parent and any
/// levels below, and a filter starting with a wildcard never matches a topic
/// starting with `$` (§4.7.2). Recursive, for the test's tiny inputs only.
fn spec_matches(filter: &str, topic: &str) -> bool {
    fn go(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => true,
            (Some(&"+"), Some(_)) => go(&f[1..], &t[1..]),
            (Some(x), Some(y)) => x == y && go(&f[1..], &t[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    if topic.is_empty() || (topic.starts_with('$') && filter.starts_with(['+', '#'])) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    go(&f, &t)
}

/// Filters of 1-4 levels, the last possibly `#` (a lone `#` included).
fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(FILTER_LEVELS.to_vec()), 1..=4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(levels, hash, lone_hash)| {
            if lone_hash && levels.len() == 1 {
                return "#".to_string();
            }
            let mut levels = levels;
            if hash {
                // `#` replaces the last level, so filters stay at most 4 levels.
                if let Some(last) = levels.last_mut() {
                    *last = "#";
                }
            }
            let s = levels.join("/");
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
    fn matching_agrees_with_the_spec(f in filter()) {
        let parsed = Filter::parse(&f);
        for t in universe(&[&f]) {
            let want = spec_matches(&f, &t);
            prop_assert_eq!(topic::matches(&f, &t), want, "filter {} topic {}", f, t);
            prop_assert_eq!(parsed.matches(&t), want, "filter {} topic {}", f, t);
        }
    }

    #[test]
    fn intersection_is_exact(a in filter(), b in filter()) {
        let i = intersect(&Filter::parse(&a), &Filter::parse(&b));
        for t in universe(&[&a, &b]) {
            let both = spec_matches(&a, &t) && spec_matches(&b, &t);
            let got = i.as_ref().is_some_and(|i| spec_matches(&i.to_string(), &t));
            prop_assert_eq!(got, both, "{} ∩ {} = {:?} on {}", a, b, i.as_ref().map(|f| f.to_string()), t);
        }
    }

    #[test]
    fn subset_is_exact(a in filter(), b in filter()) {
        let expected = universe(&[&a, &b]).iter().all(|t| !spec_matches(&a, t) || spec_matches(&b, t));
        prop_assert_eq!(is_subset(&Filter::parse(&a), &Filter::parse(&b)), expected, "{} ⊆ {}", a, b);
    }

    #[test]
    fn witness_is_exact(a in filter(), minus in prop::collection::vec(filter(), 0..4)) {
        let fa = Filter::parse(&a);
        let fm: Vec<Filter> = minus.iter().map(|m| Filter::parse(m)).collect();
        let refs: Vec<&Filter> = fm.iter().collect();
        let mut all: Vec<&str> = minus.iter().map(String::as_str).collect();
        all.push(&a);
        let outside = |t: &str| spec_matches(&a, t) && !minus.iter().any(|m| spec_matches(m, t));
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
        assert!(spec_matches(f, &t), "{f} does not match its example {t}");
    }
}

/// Issue 12: `#` lies inside `+/#` (every topic has at least one level, and neither
/// matches `$` topics); decision 0014 replaced the second, inexact subset rule.
#[test]
fn a_lone_hash_equals_plus_hash() {
    let s = |a: &str, b: &str| is_subset(&Filter::parse(a), &Filter::parse(b));
    assert!(s("#", "+/#"));
    assert!(s("+/#", "#"));
    assert!(s("/#", "/+/#"));
    assert!(!s("a/#", "a/+/#"));
    assert!(!s("#", "+/+/#"));
    assert!(!s("$s/#", "+/#"));
}

/// Every pair of filters of up to 2 levels over {a, b, empty, +, #}, exhaustively.
#[test]
fn subset_is_exact_on_every_short_pair() {
    let mut filters: Vec<String> = vec!["#".into()];
    for x in ["a", "b", "", "+"] {
        if !x.is_empty() {
            // The empty string is no filter.
            filters.push(x.into());
        }
        for y in ["a", "b", "", "+", "#"] {
            filters.push(format!("{x}/{y}"));
        }
    }
    let all = topics(3);
    for a in &filters {
        for b in &filters {
            let want = all
                .iter()
                .all(|t| !spec_matches(a, t) || spec_matches(b, t));
            assert_eq!(
                is_subset(&Filter::parse(a), &Filter::parse(b)),
                want,
                "{a} ⊆ {b}"
            );
        }
    }
}
