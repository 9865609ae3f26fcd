//! Subscription trie: which sessions receive a message published to a topic.
//!
//! Publishing takes only a read lock on the trie (many publishers route at
//! once); subscribe and unsubscribe take the write lock briefly.

use super::message::{min_qos, qos_u8};
use super::session::Session;
use super::topic::SubFilter;
use mqtt_protocol_core::mqtt::packet::{Qos, RetainHandling};
use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Options a client chose for one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    /// Granted QoS.
    pub qos: Qos,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    pub subscription_id: Option<u32>,
}

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
        let levels: Vec<&str> = sub.filter.split('/').collect();
        remove(&mut root, &levels, client_id, sub.share)
    }

    /// Every delivery for `topic` published by `origin`: one copy per session
    /// (highest QoS, all subscription identifiers) plus one per shared group.
    pub fn route(&self, topic: &str, origin: &str, msg_qos: Qos) -> Vec<Target> {
        let root = self.root.read().unwrap_or_else(|e| e.into_inner());
        let levels: Vec<&str> = topic.split('/').collect();
        let mut found: Vec<&Node> = Vec::new();
        collect(&root, &levels, 0, topic.starts_with('$'), &mut found);

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

fn collect<'a>(node: &'a Node, levels: &[&str], i: usize, dollar: bool, out: &mut Vec<&'a Node>) {
    let wild_ok = !(dollar && i == 0);
    if wild_ok {
        if let Some(h) = node.children.get("#") {
            out.push(h);
        }
    }
    if i == levels.len() {
        out.push(node);
        return;
    }
    if let Some(c) = node.children.get(levels[i]) {
        collect(c, levels, i + 1, dollar, out);
    }
    if wild_ok {
        if let Some(c) = node.children.get("+") {
            collect(c, levels, i + 1, dollar, out);
        }
    }
}

fn remove(node: &mut Node, levels: &[&str], client: &str, share: Option<&str>) -> bool {
    if let Some((first, rest)) = levels.split_first() {
        let Some(child) = node.children.get_mut(*first) else {
            return false;
        };
        let removed = remove(child, rest, client, share);
        if child.is_empty() {
            node.children.remove(*first);
        }
        return removed;
    }
    match share {
        None => node.subs.remove(client).is_some(),
        Some(group) => {
            let Some(g) = node.shared.get_mut(group) else {
                return false;
            };
            let before = g.members.len();
            g.members.retain(|(c, _)| c != client);
            let removed = g.members.len() != before;
            if g.members.is_empty() {
                node.shared.remove(group);
            }
            removed
        }
    }
}
