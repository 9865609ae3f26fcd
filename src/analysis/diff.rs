//! `policy diff`: the semantic difference between two policies. Clients are matched by
//! authentication name (case-insensitively, as the broker matches them); for each, the
//! publish and subscribe access gained and lost is computed exactly with the filter
//! algebra and reported with a witness.
//!
//! - Publish: a new filter grants new access when some topic it matches is matched by
//!   none of the old filters; that topic is the witness.
//! - Subscribe: a subscription is allowed when the filter is inside ONE template
//!   (semantics.md §3), so a new template grants new access exactly when it is not a
//!   subset of any single old template; the template itself is the witness filter
//!   (and a witness topic is given when one exists outside all old templates).
//!
//! Speed: a client whose state, authentication name, attributes and granted templates
//! are the same on both sides has the same access, and is skipped without substituting
//! anything; a filter present on both sides needs no witness search.

use super::access::{client_access, subscribe_allows, substitute_for, ClientAccess, GrantedFilter};
use super::query::FilterGrant;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::{variable_value, CompiledPolicy};
use crate::source::model::Permission;
use crate::topic::{intersect, witness, Filter, Vocabulary};
use crate::topic::{is_safe_value, Level, Segment};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One filter of access gained or lost.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    #[serde(flatten)]
    pub grant: FilterGrant,
    /// A topic in the gained (or lost) access; for subscribe it may be `None` when
    /// every topic is still covered by the union of the other side's templates.
    pub witness_topic: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientDiff {
    pub client: String,
    pub publish_gained: Vec<Change>,
    pub publish_lost: Vec<Change>,
    pub subscribe_gained: Vec<Change>,
    pub subscribe_lost: Vec<Change>,
}

impl ClientDiff {
    pub fn gains(&self) -> bool {
        !self.publish_gained.is_empty() || !self.subscribe_gained.is_empty()
    }
    pub fn is_empty(&self) -> bool {
        !self.gains() && self.publish_lost.is_empty() && self.subscribe_lost.is_empty()
    }
}

/// A client present in only one of the policies, with the access it has there.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientOnOneSide {
    pub client: String,
    pub enabled: bool,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDiff {
    pub clients_added: Vec<ClientOnOneSide>,
    pub clients_removed: Vec<ClientOnOneSide>,
    pub clients_changed: Vec<ClientDiff>,
}

impl PolicyDiff {
    /// Does the new policy let anyone do something the old one did not? An added,
    /// enabled client counts: it can at least connect.
    pub fn grants_new_access(&self) -> bool {
        self.clients_added.iter().any(|c| c.enabled)
            || self.clients_changed.iter().any(ClientDiff::gains)
    }
    pub fn has_changes(&self) -> bool {
        !self.clients_added.is_empty()
            || !self.clients_removed.is_empty()
            || !self.clients_changed.is_empty()
    }
}

/// One template a profile grants, with the first binding that grants it.
struct Entry {
    text: String,
    /// The template with each variable level as `+`: every filter it gives any client
    /// is inside this one (`None` when that cannot be said: a level-0 pattern
    /// starting with `$`), so it tells cheaply which templates can overlap.
    skeleton: Option<Filter>,
    binding: u32,
    space: u32,
    template: u32,
}

/// What one permission profile grants, per permission, in binding order without duplicates.
struct ProfileGrants {
    publish: Vec<Entry>,
    subscribe: Vec<Entry>,
    publish_texts: BTreeSet<String>,
    subscribe_texts: BTreeSet<String>,
}

impl ProfileGrants {
    fn of(&self, perm: Permission) -> (&[Entry], &BTreeSet<String>) {
        match perm {
            Permission::Publisher => (&self.publish, &self.publish_texts),
            Permission::Subscriber => (&self.subscribe, &self.subscribe_texts),
        }
    }
}

fn profile_grants(p: &CompiledPolicy) -> Vec<ProfileGrants> {
    p.profiles
        .iter()
        .map(|profile| {
            let list = |perm: Permission| {
                let mut entries: Vec<Entry> = Vec::new();
                let mut texts = BTreeSet::new();
                for (b, binding) in p.policy.bindings.iter().enumerate() {
                    if binding.permission.value != perm
                        || !profile.groups.contains(&binding.group.value)
                    {
                        continue;
                    }
                    let space = binding.topic_space.value;
                    for (i, t) in p.policy.topic_spaces[space as usize]
                        .templates
                        .iter()
                        .enumerate()
                    {
                        let text = t.value.to_string();
                        if texts.insert(text.clone()) {
                            let skeleton = t.value.skeleton();
                            entries.push(Entry {
                                text,
                                skeleton,
                                binding: b as u32,
                                space,
                                template: i as u32,
                            });
                        }
                    }
                }
                (entries, texts)
            };
            let (publish, publish_texts) = list(Permission::Publisher);
            let (subscribe, subscribe_texts) = list(Permission::Subscriber);
            ProfileGrants {
                publish,
                subscribe,
                publish_texts,
                subscribe_texts,
            }
        })
        .collect()
}

/// Same state, authentication name and attributes: every variable has the same value,
/// so a template gives the client the same filter on both sides.
fn same_identity(old: &CompiledPolicy, o: ClientId, new: &CompiledPolicy, n: ClientId) -> bool {
    let (co, cn) = (old.client(o), new.client(n));
    co.is_enabled() == cn.is_enabled()
        && co.authentication_name.value == cn.authentication_name.value
        && co.attributes.len() == cn.attributes.len()
        && co
            .attributes
            .iter()
            .zip(&cn.attributes)
            .all(|((ka, va), (kb, vb))| ka == kb && va.value == vb.value)
}

/// `entries` substituted for client `id`, keeping those `keep` accepts.
fn substituted(p: &CompiledPolicy, id: ClientId, entries: &[&Entry]) -> Vec<GrantedFilter> {
    entries
        .iter()
        .filter_map(|e| {
            let t = &p.policy.topic_spaces[e.space as usize].templates[e.template as usize].value;
            let filter = substitute_for(p, id, t)?;
            Some(GrantedFilter {
                filter,
                binding: e.binding,
                space: e.space,
                template: e.template,
            })
        })
        .collect()
}

/// For one pair of profiles and one permission: the templates only the `have` side grants,
/// and the other side's templates whose shape can overlap one of them. Shared by every
/// client with that pair of profiles, so each client substitutes only these.
#[derive(Debug, Default)]
struct Plan {
    only: Vec<usize>,
    overlapping: Vec<usize>,
}

fn plan(have: &ProfileGrants, other: &ProfileGrants, perm: Permission) -> Plan {
    let (have_entries, _) = have.of(perm);
    let (other_entries, other_texts) = other.of(perm);
    let only: Vec<usize> = (0..have_entries.len())
        .filter(|&i| !other_texts.contains(&have_entries[i].text))
        .collect();
    let overlapping = if only.is_empty() {
        Vec::new()
    } else {
        (0..other_entries.len())
            .filter(|&j| {
                only.iter().any(|&i| {
                    match (&have_entries[i].skeleton, &other_entries[j].skeleton) {
                        (Some(a), Some(b)) => intersect(a, b).is_some(),
                        _ => true,
                    }
                })
            })
            .collect()
    };
    Plan { only, overlapping }
}

/// For a client with the same identity on both sides: the filters only the `have` side
/// grants (substituted), and the other side's filters that overlap them (substituted).
fn changed_part(
    have: (&CompiledPolicy, ClientId, &ProfileGrants),
    other: (&CompiledPolicy, ClientId, &ProfileGrants),
    perm: Permission,
    plan: &Plan,
) -> (Vec<GrantedFilter>, Vec<GrantedFilter>) {
    if plan.only.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let (have_entries, _) = have.2.of(perm);
    let (other_entries, _) = other.2.of(perm);
    let only: Vec<&Entry> = plan.only.iter().map(|&i| &have_entries[i]).collect();
    let mine = substituted(have.0, have.1, &only);
    let overlapping: Vec<&Entry> = plan
        .overlapping
        .iter()
        .map(|&j| &other_entries[j])
        .filter(|e| match &e.skeleton {
            None => true,
            Some(s) => mine.iter().any(|g| intersect(s, &g.filter).is_some()),
        })
        .collect();
    (mine, substituted(other.0, other.1, &overlapping))
}

/// Witness values: literal template levels, and where a whole level is a variable, the
/// values of the clients the template is granted to (so a witness names a topic that a
/// real client uses, e.g. `clients/sensor2/status`).
fn policy_vocabulary(policies: [&CompiledPolicy; 2], vocab: &mut Vocabulary) {
    for p in policies {
        let mut seen = HashSet::new();
        for binding in &p.policy.bindings {
            let group = binding.group.value;
            for t in &p.policy.topic_spaces[binding.topic_space.value as usize].templates {
                for (d, level) in t.value.levels.iter().enumerate() {
                    match level {
                        Level::Literal(s) => vocab.add_level(d, s),
                        Level::Pattern(segs) => {
                            let [Segment::Var(v)] = segs.as_slice() else {
                                continue;
                            };
                            if !seen.insert((d, v.clone(), group)) {
                                continue;
                            }
                            for (id, c) in p.policy.clients.iter().enumerate() {
                                if !p.is_member(id as ClientId, group) {
                                    continue;
                                }
                                if let Some(val) = variable_value(c, v).filter(|s| is_safe_value(s))
                                {
                                    vocab.add_level(d, &val);
                                }
                            }
                        }
                        Level::Plus | Level::Hash => {}
                    }
                }
            }
        }
    }
}

/// The access `new` grants beyond `old`, and the reverse, for every client.
pub fn diff(old: &CompiledPolicy, new: &CompiledPolicy) -> PolicyDiff {
    let (old_g, new_g) = (profile_grants(old), profile_grants(new));
    let key =
        |p: &CompiledPolicy, i: usize| p.policy.clients[i].authentication_name.value.to_lowercase();
    let old_by_name: BTreeMap<String, usize> =
        (0..old.client_count()).map(|i| (key(old, i), i)).collect();
    let new_by_name: BTreeMap<String, usize> =
        (0..new.client_count()).map(|i| (key(new, i), i)).collect();
    let mut out = PolicyDiff::default();
    // First the clients whose access may have changed; the rest are skipped unread.
    let mut work: Vec<(ClientId, ClientId)> = Vec::new();
    for (name, &n) in &new_by_name {
        let Some(&o) = old_by_name.get(name) else {
            out.clients_added
                .push(one_side(new, n, &client_access(new, n as ClientId)));
            continue;
        };
        let (o, n) = (o as ClientId, n as ClientId);
        if same_identity(old, o, new, n) {
            let (go, gn) = (
                &old_g[old.clients[o as usize].profile as usize],
                &new_g[new.clients[n as usize].profile as usize],
            );
            let same_templates =
                go.publish_texts == gn.publish_texts && go.subscribe_texts == gn.subscribe_texts;
            if !old.client(o).is_enabled() || same_templates {
                continue;
            }
        }
        work.push((o, n));
    }
    let mut vocab = Vocabulary::new();
    if !work.is_empty() {
        policy_vocabulary([old, new], &mut vocab);
    }
    let mut plans: HashMap<(u32, u32, Permission), (Plan, Plan)> = HashMap::new();
    for (o, n) in work {
        let d = if same_identity(old, o, new, n) {
            let (go, gn) = (
                &old_g[old.clients[o as usize].profile as usize],
                &new_g[new.clients[n as usize].profile as usize],
            );
            let (po, pn) = (
                old.clients[o as usize].profile,
                new.clients[n as usize].profile,
            );
            for perm in [Permission::Publisher, Permission::Subscriber] {
                plans
                    .entry((po, pn, perm))
                    .or_insert_with(|| (plan(gn, go, perm), plan(go, gn, perm)));
            }
            let delta = |perm: Permission, publish: bool| {
                let Some((gain_plan, loss_plan)) = plans.get(&(po, pn, perm)) else {
                    return (Vec::new(), Vec::new());
                };
                let (gained_have, gained_other) =
                    changed_part((new, n, gn), (old, o, go), perm, gain_plan);
                let (lost_have, lost_other) =
                    changed_part((old, o, go), (new, n, gn), perm, loss_plan);
                if publish {
                    (
                        publish_delta(new, &gained_have, &gained_other, &vocab),
                        publish_delta(old, &lost_have, &lost_other, &vocab),
                    )
                } else {
                    (
                        subscribe_delta(new, &gained_have, &gained_other, &vocab),
                        subscribe_delta(old, &lost_have, &lost_other, &vocab),
                    )
                }
            };
            let (publish_gained, publish_lost) = delta(Permission::Publisher, true);
            let (subscribe_gained, subscribe_lost) = delta(Permission::Subscriber, false);
            ClientDiff {
                client: new.client(n).authentication_name.value.clone(),
                publish_gained,
                publish_lost,
                subscribe_gained,
                subscribe_lost,
            }
        } else {
            let (a_old, a_new) = (client_access(old, o), client_access(new, n));
            ClientDiff {
                client: new.client(n).authentication_name.value.clone(),
                publish_gained: publish_delta(new, &a_new.publish, &a_old.publish, &vocab),
                publish_lost: publish_delta(old, &a_old.publish, &a_new.publish, &vocab),
                subscribe_gained: subscribe_delta(new, &a_new.subscribe, &a_old.subscribe, &vocab),
                subscribe_lost: subscribe_delta(old, &a_old.subscribe, &a_new.subscribe, &vocab),
            }
        };
        if !d.is_empty() {
            out.clients_changed.push(d);
        }
    }
    for (name, &o) in &old_by_name {
        if !new_by_name.contains_key(name) {
            out.clients_removed
                .push(one_side(old, o, &client_access(old, o as ClientId)));
        }
    }
    out
}

fn one_side(p: &CompiledPolicy, i: usize, a: &ClientAccess) -> ClientOnOneSide {
    let c = &p.policy.clients[i];
    ClientOnOneSide {
        client: c.authentication_name.value.clone(),
        enabled: c.is_enabled(),
        publish: a.publish.iter().map(|g| g.filter.to_string()).collect(),
        subscribe: a.subscribe.iter().map(|g| g.filter.to_string()).collect(),
    }
}

/// Filters of `have` that match a topic none of `other` matches, with that topic.
fn publish_delta(
    p: &CompiledPolicy,
    have: &[GrantedFilter],
    other: &[GrantedFilter],
    vocab: &Vocabulary,
) -> Vec<Change> {
    let exact: HashSet<&Filter> = other.iter().map(|g| &g.filter).collect();
    let others: Vec<&Filter> = other.iter().map(|g| &g.filter).collect();
    have.iter()
        .filter(|g| !exact.contains(&g.filter))
        .filter_map(|g| {
            let topic = witness(&g.filter, &others, vocab)?;
            Some(Change {
                grant: FilterGrant::new(p, g),
                witness_topic: Some(topic),
            })
        })
        .collect()
}

/// Templates of `have` that are not inside any single template of `other`.
fn subscribe_delta(
    p: &CompiledPolicy,
    have: &[GrantedFilter],
    other: &[GrantedFilter],
    vocab: &Vocabulary,
) -> Vec<Change> {
    let exact: HashSet<&Filter> = other.iter().map(|g| &g.filter).collect();
    let others: Vec<&Filter> = other.iter().map(|g| &g.filter).collect();
    have.iter()
        .filter(|g| {
            !exact.contains(&g.filter) && !others.iter().any(|o| subscribe_allows(o, &g.filter))
        })
        .map(|g| Change {
            grant: FilterGrant::new(p, g),
            witness_topic: witness(&g.filter, &others, vocab),
        })
        .collect()
}
