//! Subscription trie: which sessions receive a message published to a topic.
//!
//! Publishing takes only a read lock on the trie (many publishers route at
//! once); subscribe and unsubscribe take the write lock briefly.

use super::message::{min_qos, qos_u8};
use super::session::Session;
use super::sub_options::SubOptions;
use crate::topic::SubFilter;
use mqtt_protocol_core::mqtt::packet::Qos;
use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
struct Subscriber {
    session: Arc<Session>,
    opts: SubOptions,
}

#[derive(Default)]
struct SharedGroup {
    members: Vec<(String, Subscriber)>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Node {
    children: HashMap<String, Node>,
    subs: HashMap<String, Subscriber>,
    shared: HashMap<String, SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty() && self.shared.is_empty()
    }
}

/// The derived drop would recurse once per level of the deepest filter: this one
/// moves descendants onto a heap stack, so each node drops with no children left.
impl Drop for Node {
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack: Vec<Node> = self.children.drain().map(|(_, n)| n).collect();
        while let Some(mut n) = stack.pop() {
            stack.extend(n.children.drain().map(|(_, c)| c));
        }
    }
}

/// One copy to deliver: the session, the QoS and every matching subscription identifier.
pub struct Target {
    pub session: Arc<Session>,
    pub qos: Qos,
    pub retain_as_published: bool,
    pub subscription_ids: Vec<u32>,
}

/// The subscription trie.
#[derive(Default)]
pub struct Router {
    root: RwLock<Node>,
}

impl Router {
    /// Adds or replaces `session`'s subscription to `sub`. Returns true when it existed before.
    pub fn subscribe(&self, session: &Arc<Session>, sub: &SubFilter<'_>, opts: SubOptions) -> bool {
        let mut root = self.root.write().unwrap_or_else(|e| e.into_inner());
        let mut node = &mut *root;
        for level in sub.filter.split('/') {
            node = node.children.entry(level.to_string()).or_default();
        }
        let subscriber = Subscriber {
            session: session.clone(),
            opts,
        };
        let id = session.client_id.clone();
        match sub.share {
            None => node.subs.insert(id, subscriber).is_some(),
            Some(group) => {
                let g = node.shared.entry(group.to_string()).or_default();
                if let Some(m) = g.members.iter_mut().find(|(c, _)| *c == id) {
                    m.1 = subscriber;
                    true
                } else {
                    g.members.push((id, subscriber));
                    false
                }
            }
        }
    }

    /// Removes `client_id`'s subscription to `sub`. Returns true when it existed.
    pub fn unsubscribe(&self, client_id: &str, sub: &SubFilter<'_>) -> bool {
        let mut root = self.root.write().unwrap_or_else(|e| e.into_inner());
        remove(&mut root, sub.filter, client_id, sub.share)
    }

    /// Every delivery for `topic` published by `origin`: one copy per session
    /// (highest QoS, all subscription identifiers) plus one per shared group.
    pub fn route(&self, topic: &str, origin: &str, msg_qos: Qos) -> Vec<Target> {
        let root = self.root.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<&Node> = Vec::new();
        collect(&root, topic, &mut found);

        let mut targets: Vec<Target> = Vec::new();
        // One matching node (the common case) cannot hold a session twice: only
        // several nodes need the per-client merge.
        let merge = found.len() > 1;
        let mut by_client: HashMap<&str, usize> = HashMap::default();
        for node in &found {
            for (client, s) in &node.subs {
                if s.opts.no_local && client == origin {
                    continue;
                }
                let qos = min_qos(msg_qos, s.opts.qos);
                let seen = if merge {
                    by_client.get(client.as_str()).copied()
                } else {
                    None
                };
                if let Some(i) = seen {
                    let t = &mut targets[i];
                    if qos_u8(qos) > qos_u8(t.qos) {
                        t.qos = qos;
                    }
                    t.retain_as_published |= s.opts.retain_as_published;
                    t.subscription_ids.extend(s.opts.subscription_id);
                } else {
                    if merge {
                        by_client.insert(client, targets.len());
                    }
                    targets.push(Target {
                        session: s.session.clone(),
                        qos,
                        retain_as_published: s.opts.retain_as_published,
                        subscription_ids: s.opts.subscription_id.into_iter().collect(),
                    });
                }
            }
            for g in node.shared.values() {
                if g.members.is_empty() {
                    continue;
                }
                // Round robin, preferring a member that is connected now.
                let start = g.next.fetch_add(1, Ordering::Relaxed);
                let n = g.members.len();
                let pick = (0..n)
                    .map(|k| &g.members[(start + k) % n].1)
                    .find(|s| s.session.is_online())
                    .unwrap_or(&g.members[start % n].1);
                targets.push(Target {
                    session: pick.session.clone(),
                    qos: min_qos(msg_qos, pick.opts.qos),
                    retain_as_published: pick.opts.retain_as_published,
                    subscription_ids: pick.opts.subscription_id.into_iter().collect(),
                });
            }
        }
        targets
    }

    /// Number of nodes with subscriptions (for tests and stats).
    pub fn is_empty(&self) -> bool {
        self.root
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Every trie node whose filter matches `topic`, walked with an explicit stack:
/// a topic's depth comes from a client, so it must not become call depth.
fn collect<'a>(root: &'a Node, topic: &'a str, out: &mut Vec<&'a Node>) {
    let dollar = topic.starts_with('$');
    // (node, the levels left after it, whether it is the root). `None` = no level left.
    let mut stack: SmallVec<[(&Node, Option<&str>, bool); 16]> = SmallVec::new();
    stack.push((root, Some(topic), true));
    while let Some((node, rest, at_root)) = stack.pop() {
        // A filter starting with a wildcard never matches a `$` topic.
        let wild_ok = !(dollar && at_root);
        if wild_ok {
            if let Some(h) = node.children.get("#") {
                out.push(h);
            }
        }
        let Some(rest) = rest else {
            out.push(node);
            continue;
        };
        let (level, after) = match rest.split_once('/') {
            Some((level, after)) => (level, Some(after)),
            None => (rest, None),
        };
        // Pushed in reverse: the literal child is walked first, as before.
        if wild_ok {
            if let Some(c) = node.children.get("+") {
                stack.push((c, after, false));
            }
        }
        if let Some(c) = node.children.get(level) {
            stack.push((c, after, false));
        }
    }
}

/// Removes `client`'s subscription at `filter` and prunes the branch it leaves empty,
/// in loops rather than recursion (a filter's depth comes from a client).
fn remove(root: &mut Node, filter: &str, client: &str, share: Option<&str>) -> bool {
    // 1. Find the subscription's node, and the deepest node on the way that keeps
    //    something else (so stays when the subscription's branch goes).
    let mut keep_depth = 0;
    let mut node = &*root;
    let mut depth = 0;
    for level in filter.split('/') {
        if depth > 0
            && !(node.children.len() == 1 && node.subs.is_empty() && node.shared.is_empty())
        {
            keep_depth = depth;
        }
        let Some(child) = node.children.get(level) else {
            return false;
        };
        node = child;
        depth += 1;
    }
    // 2. Remove it.
    let Some(leaf) = descend(root, filter, depth) else {
        return false;
    };
    let removed = match share {
        None => leaf.subs.remove(client).is_some(),
        Some(group) => match leaf.shared.get_mut(group) {
            None => false,
            Some(g) => {
                let before = g.members.len();
                g.members.retain(|(c, _)| c != client);
                let removed = g.members.len() != before;
                if g.members.is_empty() {
                    leaf.shared.remove(group);
                }
                removed
            }
        },
    };
    // 3. Cut the branch below the deepest node that keeps something.
    if leaf.is_empty() {
        if let (Some(parent), Some(level)) = (
            descend(root, filter, keep_depth),
            filter.split('/').nth(keep_depth),
        ) {
            // Dropping the branch is iterative too (`Drop for Node`).
            parent.children.remove(level);
        }
    }
    removed
}

/// The node `depth` levels down along `filter`, if the trie has it.
fn descend<'a>(root: &'a mut Node, filter: &str, depth: usize) -> Option<&'a mut Node> {
    let mut node = root;
    for level in filter.split('/').take(depth) {
        node = node.children.get_mut(level)?;
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_protocol_core::mqtt::packet::RetainHandling;

    fn opts() -> SubOptions {
        SubOptions {
            qos: Qos::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendRetained,
            subscription_id: None,
        }
    }

    fn plain(filter: &str) -> SubFilter<'_> {
        SubFilter {
            share: None,
            filter,
        }
    }

    fn routed(r: &Router, topic: &str) -> Vec<String> {
        let mut ids: Vec<String> = r
            .route(topic, "publisher", Qos::AtLeastOnce)
            .into_iter()
            .map(|t| t.session.client_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Far deeper than any limit allows: insert, route, remove and drop are loops.
    #[test]
    fn depth_100000_subscribe_route_unsubscribe_drop() {
        let deep = "a/".repeat(100_000) + "a";
        let deep_plus = "+/".repeat(100_000) + "a";
        let r = Router::default();
        let s = Session::new("deep", "alice");
        let t = Session::new("wild", "bob");
        r.subscribe(&s, &plain(&deep), opts());
        r.subscribe(&t, &plain(&deep_plus), opts());
        assert_eq!(routed(&r, &deep), ["deep", "wild"]);
        assert!(routed(&r, &(deep.clone() + "/a")).is_empty());
        assert!(r.unsubscribe("deep", &plain(&deep)));
        assert!(!r.unsubscribe("deep", &plain(&deep)));
        assert_eq!(routed(&r, &deep), ["wild"]);
        // Dropping a router that still holds a deep branch.
        drop(r);
    }

    #[test]
    fn unsubscribe_prunes_only_the_emptied_branch() {
        let r = Router::default();
        let s = Session::new("s", "alice");
        for f in ["a/b/c/d", "a/b", "a/x/y"] {
            r.subscribe(&s, &plain(f), opts());
        }
        assert!(r.unsubscribe("s", &plain("a/b/c/d")));
        assert_eq!(routed(&r, "a/b"), ["s"]);
        assert_eq!(routed(&r, "a/x/y"), ["s"]);
        assert!(r.unsubscribe("s", &plain("a/b")));
        assert!(routed(&r, "a/b").is_empty());
        assert!(!r.is_empty());
        assert!(r.unsubscribe("s", &plain("a/x/y")));
        assert!(r.is_empty());
    }

    #[test]
    fn shared_groups_and_dollar_topics() {
        let r = Router::default();
        let s = Session::new("s", "alice");
        let g = SubFilter {
            share: Some("g"),
            filter: "a/+",
        };
        r.subscribe(&s, &g, opts());
        r.subscribe(&s, &plain("#"), opts());
        r.subscribe(&s, &plain("$SYS/#"), opts());
        assert_eq!(routed(&r, "a/b"), ["s", "s"]);
        assert_eq!(routed(&r, "$SYS/x"), ["s"]);
        assert!(r.unsubscribe("s", &g));
        assert!(r.unsubscribe("s", &plain("#")));
        assert!(r.unsubscribe("s", &plain("$SYS/#")));
        assert!(r.is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const LEVELS: [&str; 6] = ["a", "b", "", "$s", "+", "#"];

        /// A valid filter of 1-4 levels (`#` only last), possibly shared.
        fn filter() -> impl Strategy<Value = (String, bool)> {
            (
                prop::collection::vec(prop::sample::select(LEVELS.to_vec()), 1..=4),
                any::<bool>(),
            )
                .prop_map(|(mut levels, shared)| {
                    let last = levels.len() - 1;
                    for l in &mut levels[..last] {
                        if *l == "#" {
                            *l = "+";
                        }
                    }
                    (levels.join("/"), shared)
                })
        }

        fn topic() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(vec!["a", "b", "", "$s", "c"]), 1..=5)
                .prop_map(|l| l.join("/"))
                .prop_filter("a topic is not empty", |t| !t.is_empty())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// The trie routes a topic to exactly the subscriptions whose filter
            /// `topic::matches` it, one copy per session and per shared group, and
            /// unsubscribing everything leaves it empty.
            #[test]
            fn routing_agrees_with_topic_matching(
                filters in prop::collection::vec(filter(), 1..8),
                topics in prop::collection::vec(topic(), 1..8),
            ) {
                let r = Router::default();
                let sessions: Vec<_> = (0..filters.len())
                    .map(|i| Session::new(&format!("c{i}"), "alice"))
                    .collect();
                let subs: Vec<SubFilter<'_>> = filters
                    .iter()
                    .enumerate()
                    .map(|(i, (f, shared))| SubFilter {
                        share: shared.then_some(if i % 2 == 0 { "g" } else { "h" }),
                        filter: f,
                    })
                    .collect();
                for (s, sub) in sessions.iter().zip(&subs) {
                    r.subscribe(s, sub, opts());
                }
                for t in &topics {
                    let mut want: Vec<String> = Vec::new();
                    let mut groups: Vec<(&str, &str)> = Vec::new();
                    for (i, sub) in subs.iter().enumerate() {
                        if !crate::topic::matches(sub.filter, t) {
                            continue;
                        }
                        match sub.share {
                            None => {
                                let id = format!("c{i}");
                                if !want.contains(&id) {
                                    want.push(id);
                                }
                            }
                            Some(g) => {
                                if !groups.contains(&(g, sub.filter)) {
                                    groups.push((g, sub.filter));
                                }
                            }
                        }
                    }
                    let got = r.route(t, "publisher", Qos::AtLeastOnce);
                    let plain: Vec<String> = got
                        .iter()
                        .map(|t| t.session.client_id.clone())
                        .collect();
                    prop_assert_eq!(got.len(), want.len() + groups.len(), "topic {} filters {:?}", t, filters);
                    for id in &want {
                        prop_assert!(plain.contains(id), "topic {} misses {}", t, id);
                    }
                }
                for (i, sub) in subs.iter().enumerate() {
                    let removed = r.unsubscribe(&format!("c{i}"), sub);
                    prop_assert!(removed, "unsubscribe {:?}", sub);
                }
                prop_assert!(r.is_empty());
            }
        }
    }
}
