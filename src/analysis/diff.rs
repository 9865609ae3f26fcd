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

use super::access::{all_access, subscribe_allows, vocabulary, ClientAccess, GrantedFilter};
use super::algebra::{witness, Filter, Vocabulary};
use super::query::FilterGrant;
use crate::compiler::compiled::CompiledPolicy;
use serde::Serialize;
use std::collections::BTreeMap;

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

/// The access `new` grants beyond `old`, and the reverse, for every client.
pub fn diff(old: &CompiledPolicy, new: &CompiledPolicy) -> PolicyDiff {
    let old_access = all_access(old);
    let new_access = all_access(new);
    let vocab = vocabulary(old_access.iter().chain(&new_access));
    let key =
        |p: &CompiledPolicy, i: usize| p.policy.clients[i].authentication_name.value.to_lowercase();
    let old_by_name: BTreeMap<String, usize> =
        (0..old.client_count()).map(|i| (key(old, i), i)).collect();
    let new_by_name: BTreeMap<String, usize> =
        (0..new.client_count()).map(|i| (key(new, i), i)).collect();
    let mut out = PolicyDiff::default();
    for (name, &n) in &new_by_name {
        match old_by_name.get(name) {
            None => out.clients_added.push(one_side(new, n, &new_access[n])),
            Some(&o) => {
                let d = ClientDiff {
                    client: new.policy.clients[n].authentication_name.value.clone(),
                    publish_gained: publish_delta(
                        new,
                        &new_access[n].publish,
                        &old_access[o].publish,
                        &vocab,
                    ),
                    publish_lost: publish_delta(
                        old,
                        &old_access[o].publish,
                        &new_access[n].publish,
                        &vocab,
                    ),
                    subscribe_gained: subscribe_delta(
                        new,
                        &new_access[n].subscribe,
                        &old_access[o].subscribe,
                        &vocab,
                    ),
                    subscribe_lost: subscribe_delta(
                        old,
                        &old_access[o].subscribe,
                        &new_access[n].subscribe,
                        &vocab,
                    ),
                };
                if !d.is_empty() {
                    out.clients_changed.push(d);
                }
            }
        }
    }
    for (name, &o) in &old_by_name {
        if !new_by_name.contains_key(name) {
            out.clients_removed.push(one_side(old, o, &old_access[o]));
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
    let others: Vec<&Filter> = other.iter().map(|g| &g.filter).collect();
    have.iter()
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
    let others: Vec<&Filter> = other.iter().map(|g| &g.filter).collect();
    have.iter()
        .filter(|g| !others.iter().any(|o| subscribe_allows(o, &g.filter)))
        .map(|g| Change {
            grant: FilterGrant::new(p, g),
            witness_topic: witness(&g.filter, &others, vocab),
        })
        .collect()
}
