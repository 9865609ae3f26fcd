//! Subscription trie: which sessions receive a message published to a topic.
//!
//! Publishing takes only a read lock on the trie (many publishers route at
//! once); subscribe and unsubscribe take the write lock briefly.
//!
//! The trie also keeps the *epoch*: the policy generation its subscriptions
//! were last revalidated for. A policy reload holds the write lock while it
//! swaps the policy and removes what the new one revokes, then publishes the
//! new epoch; deliveries carry the epoch they were routed in, so a copy
//! routed before a reload is checked again before it is sent (decision 0023).

use super::message::{min_qos, qos_u8};
use super::session::Session;
use super::sub_options::SubOptions;
use crate::topic::trie::{self, levels, LevelTrie};
use crate::topic::SubFilter;
use mqtt_protocol_core::mqtt::packet::Qos;
use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

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

impl LevelTrie for Node {
    fn child(&self, level: &str) -> Option<&Self> {
        self.children.get(level)
    }
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
    /// The policy generation the subscriptions in the trie were granted or
    /// revalidated under. Written only with the write lock held.
    epoch: AtomicU64,
}

/// A SUBSCRIBE decided under a policy that a reload replaced before the
/// subscription reached the trie: decide it again under the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleEpoch;

/// The trie held for a policy reload: nothing routes or subscribes meanwhile.
pub struct ReloadGuard<'a> {
    root: RwLockWriteGuard<'a, Node>,
    epoch: &'a AtomicU64,
}

impl ReloadGuard<'_> {
    /// Removes `client_id`'s subscription to `sub`. Returns true when it existed.
    pub fn unsubscribe(&mut self, client_id: &str, sub: &SubFilter<'_>) -> bool {
        remove(&mut self.root, sub.filter, client_id, sub.share)
    }

    /// Ends the reload: the trie now holds only what policy generation
    /// `epoch` grants, and routes from now on carry it.
    pub fn finish(self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
    }
}

impl Router {
    /// The epoch of the trie (see the module comment). Read before routing:
    /// a route that starts after a reload finished sees its trie.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Holds the trie for a policy reload until the guard is finished or dropped.
    pub fn begin_reload(&self) -> ReloadGuard<'_> {
        ReloadGuard {
            root: self.root.write().unwrap_or_else(|e| e.into_inner()),
            epoch: &self.epoch,
        }
    }

    /// Like [`subscribe`](Self::subscribe) for a subscription the policy of
    /// generation `epoch` granted: refused when a reload has revalidated the
    /// trie for another generation since (checked under the write lock, so the
    /// reload cannot miss the subscription).
    pub fn subscribe_at(
        &self,
        session: &Arc<Session>,
        sub: &SubFilter<'_>,
        opts: SubOptions,
        epoch: u64,
    ) -> Result<bool, StaleEpoch> {
        let mut root = self.root.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Err(StaleEpoch);
        }
        Ok(insert(&mut root, session, sub, opts))
    }

    /// Adds or replaces `session`'s subscription to `sub`. Returns true when it existed before.
    pub fn subscribe(&self, session: &Arc<Session>, sub: &SubFilter<'_>, opts: SubOptions) -> bool {
        let mut root = self.root.write().unwrap_or_else(|e| e.into_inner());
        insert(&mut root, session, sub, opts)
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
        // Few nodes match a topic: kept inline, no allocation per PUBLISH.
        let mut found: SmallVec<[&Node; 8]> = SmallVec::new();
        trie::matching_nodes(&*root, topic, &mut found);

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

/// Adds or replaces `session`'s subscription to `sub`. True when it existed before.
fn insert(root: &mut Node, session: &Arc<Session>, sub: &SubFilter<'_>, opts: SubOptions) -> bool {
    let mut node = root;
    for level in levels(sub.filter) {
        node = node.children.entry(level.to_string()).or_default();
    }
    let subscriber = Subscriber {
        session: session.clone(),
        opts,
    };
    let id = session.client_id.to_string();
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

/// Removes `client`'s subscription at `filter` and prunes the branch it leaves empty,
/// in loops rather than recursion (a filter's depth comes from a client).
fn remove(root: &mut Node, filter: &str, client: &str, share: Option<&str>) -> bool {
    // 1. Find the subscription's node, and the deepest node on the way that keeps
    //    something else (so stays when the subscription's branch goes).
    let mut keep_depth = 0;
    let mut node = &*root;
    let mut depth = 0;
    for level in levels(filter) {
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
            levels(filter).nth(keep_depth),
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
    for level in levels(filter).take(depth) {
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
            .map(|t| t.session.client_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// A subscription decided under a policy generation that a reload has
    /// since revalidated the trie past is refused, not inserted; the current
    /// generation is taken.
    #[test]
    fn a_subscription_decided_before_a_reload_is_refused_after_it() {
        let r = Router::default();
        let s = Session::new("c", "alice");
        let decided_at = r.epoch();
        let mut guard = r.begin_reload();
        assert!(!guard.unsubscribe("c", &plain("a/b")));
        guard.finish(decided_at + 1);
        assert_eq!(
            r.subscribe_at(&s, &plain("a/b"), opts(), decided_at),
            Err(StaleEpoch)
        );
        assert!(routed(&r, "a/b").is_empty());
        assert_eq!(
            r.subscribe_at(&s, &plain("a/b"), opts(), r.epoch()),
            Ok(false)
        );
        assert_eq!(routed(&r, "a/b"), ["c"]);
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
                        .map(|t| t.session.client_id.to_string())
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

        /// One step of a random history: client `client` subscribes (with QoS
        /// `qos`) or unsubscribes filter number `filter` of the pool.
        #[derive(Debug, Clone)]
        enum Op {
            Subscribe {
                client: usize,
                filter: usize,
                qos: u8,
            },
            Unsubscribe {
                client: usize,
                filter: usize,
            },
        }

        fn op(clients: usize, filters: usize) -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..clients, 0..filters, 0..3u8).prop_map(|(client, filter, qos)| Op::Subscribe {
                    client,
                    filter,
                    qos
                }),
                (0..clients, 0..filters)
                    .prop_map(|(client, filter)| Op::Unsubscribe { client, filter }),
            ]
        }

        /// The pool's filter `i` as subscribed: plain, or in group `g` or `h`.
        fn sub_of(pool: &[(String, bool)], i: usize) -> SubFilter<'_> {
            let (f, shared) = &pool[i];
            SubFilter {
                share: shared.then_some(if i.is_multiple_of(2) { "g" } else { "h" }),
                filter: f,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// After any history of subscribes (replacing options) and
            /// unsubscribes, the trie routes every topic exactly as brute force
            /// over the live subscriptions with `topic::matches` says: the same
            /// sessions, each once at the highest granted QoS with every matching
            /// subscription identifier, plus one member of each matching shared
            /// group. Unsubscribe reports whether the subscription existed.
            #[test]
            fn any_history_routes_like_brute_force_matching(
                pool in prop::collection::vec(filter(), 1..6),
                ops in prop::collection::vec(op(3, 6), 1..24),
                topics in prop::collection::vec(topic(), 1..6),
            ) {
                let r = Router::default();
                let sessions: Vec<_> = (0..3)
                    .map(|i| Session::new(&format!("c{i}"), "alice"))
                    .collect();
                // The model: (client, pool index) -> granted QoS.
                let mut live: std::collections::BTreeMap<(usize, usize), u8> = Default::default();
                for op in &ops {
                    match *op {
                        Op::Subscribe { client, filter, qos } if filter < pool.len() => {
                            let o = SubOptions {
                                qos: crate::broker::message::qos_from_u8(qos),
                                subscription_id: Some(filter as u32 + 1),
                                ..opts()
                            };
                            // Identical filters in the pool are one subscription.
                            let same: Vec<usize> = (0..pool.len())
                                .filter(|j| sub_of(&pool, *j) == sub_of(&pool, filter))
                                .collect();
                            let existed = same.iter().any(|j| live.contains_key(&(client, *j)));
                            for j in &same {
                                live.remove(&(client, *j));
                            }
                            prop_assert_eq!(r.subscribe(&sessions[client], &sub_of(&pool, filter), o), existed);
                            live.insert((client, filter), qos);
                        }
                        Op::Unsubscribe { client, filter } if filter < pool.len() => {
                            let same: Vec<usize> = (0..pool.len())
                                .filter(|j| sub_of(&pool, *j) == sub_of(&pool, filter))
                                .collect();
                            let existed = same.iter().any(|j| live.remove(&(client, *j)).is_some());
                            prop_assert_eq!(r.unsubscribe(&format!("c{client}"), &sub_of(&pool, filter)), existed);
                        }
                        _ => {}
                    }
                }
                for t in &topics {
                    // Plain: client -> (highest QoS, subscription ids).
                    let mut want: std::collections::BTreeMap<String, (u8, Vec<u32>)> = Default::default();
                    // Shared: (group, filter) -> members.
                    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<String>> = Default::default();
                    for (&(client, i), &qos) in &live {
                        let sub = sub_of(&pool, i);
                        if !crate::topic::matches(sub.filter, t) {
                            continue;
                        }
                        let id = format!("c{client}");
                        match sub.share {
                            None => {
                                let e = want.entry(id).or_insert((0, Vec::new()));
                                e.0 = e.0.max(qos.min(2));
                                e.1.push(i as u32 + 1);
                            }
                            Some(g) => groups.entry((g, sub.filter)).or_default().push(id),
                        }
                    }
                    let got = r.route(t, "publisher", Qos::ExactlyOnce);
                    prop_assert_eq!(got.len(), want.len() + groups.len(), "topic {}", t);
                    let mut plain: Vec<&Target> = Vec::new();
                    let mut picked: Vec<String> = Vec::new();
                    for target in &got {
                        if target.subscription_ids.iter().all(|id| pool[*id as usize - 1].1) {
                            picked.push(target.session.client_id.to_string());
                        } else {
                            plain.push(target);
                        }
                    }
                    prop_assert_eq!(plain.len(), want.len(), "topic {}", t);
                    for target in plain {
                        let Some((qos, ids)) = want.get(&*target.session.client_id) else {
                            return Err(TestCaseError::fail(format!("{t}: unexpected {}", target.session.client_id)));
                        };
                        prop_assert_eq!(qos_u8(target.qos), *qos);
                        let mut got_ids = target.subscription_ids.clone();
                        got_ids.sort_unstable();
                        let mut ids = ids.clone();
                        ids.sort_unstable();
                        prop_assert_eq!(got_ids, ids);
                    }
                    // Each shared copy goes to a member of a matching group.
                    for p in &picked {
                        prop_assert!(groups.values().any(|m| m.contains(p)), "{} got a shared copy of {}", p, t);
                    }
                }
            }
        }
    }
}
