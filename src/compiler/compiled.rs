//! The compiled policy: the resolved policy plus everything a decision needs,
//! computed once: each client's groups and permission profile, its variable values,
//! the template index, and the authentication-name lookup.

use super::index::{TemplateIndex, TemplateRef};
use super::membership;
use super::model::*;
use crate::source::model::{AttrValue, Permission};
use crate::topic::{is_safe_value, Filter, Template, Var};
use rustc_hash::FxHashMap;
use std::collections::HashMap;

/// Index of a client in the compiled policy. Stable for the lifetime of one policy.
/// It lives with the compiled model it indexes; the decisions and analyses above
/// take it from here.
pub type ClientId = u32;

/// For each topic space, the first binding (in policy order) through which a
/// profile holds one permission on it, or none. `contains` is the hot-path test;
/// `binding` names what granted it without a search.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SpaceGrants(Box<[BindingId]>);

const NO_BINDING: BindingId = BindingId::MAX;

impl SpaceGrants {
    fn new(spaces: usize) -> Self {
        SpaceGrants(vec![NO_BINDING; spaces].into_boxed_slice())
    }
    fn grant(&mut self, space: SpaceId, binding: BindingId) {
        if let Some(slot) = self.0.get_mut(space as usize) {
            if *slot == NO_BINDING {
                *slot = binding;
            }
        }
    }
    #[inline]
    pub fn contains(&self, space: SpaceId) -> bool {
        self.binding(space).is_some()
    }
    #[inline]
    pub fn binding(&self, space: SpaceId) -> Option<BindingId> {
        self.0
            .get(space as usize)
            .copied()
            .filter(|b| *b != NO_BINDING)
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == NO_BINDING)
    }
    /// The granted spaces, in order.
    pub fn spaces(&self) -> impl Iterator<Item = SpaceId> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != NO_BINDING)
            .map(|(s, _)| s as SpaceId)
    }
}

/// What a set of groups grants: shared by every client with the same groups.
#[derive(Debug, Clone)]
pub struct Profile {
    pub groups: Vec<GroupId>,
    pub publish: SpaceGrants,
    pub subscribe: SpaceGrants,
}

#[derive(Debug, Clone)]
pub struct ClientData {
    pub profile: u32,
    /// The client's value of each index variable; `None` where it has no value that
    /// can be substituted (missing, an array, or one that would change a template's shape).
    pub values: Box<[Option<Box<str>>]>,
}

#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: ResolvedPolicy,
    /// SHA-256 of the policy source text.
    pub source_hash: [u8; 32],
    pub(crate) index: TemplateIndex,
    pub(crate) clients: Vec<ClientData>,
    pub(crate) profiles: Vec<Profile>,
    by_auth_name: FxHashMap<String, ClientId>,
}

// How many decision structures this thread has built: the pipeline's tests check
// that a load builds one, not one for the verifier and another for decisions.
#[cfg(test)]
thread_local! {
    pub(crate) static BUILDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl CompiledPolicy {
    /// Builds the decision structure. The policy must have resolved without errors.
    pub fn build(policy: ResolvedPolicy, source_hash: [u8; 32]) -> Self {
        #[cfg(test)]
        BUILDS.with(|b| b.set(b.get() + 1));
        let mut index = TemplateIndex::new();
        for (s, space) in policy.topic_spaces.iter().enumerate() {
            for (i, t) in space.templates.iter().enumerate() {
                index.insert(
                    &t.value,
                    TemplateRef {
                        space: s as SpaceId,
                        index: i as u32,
                    },
                );
            }
        }
        let n_spaces = policy.topic_spaces.len();
        let mut profile_ids: HashMap<Vec<GroupId>, u32> = HashMap::new();
        let mut profiles = Vec::new();
        let mut clients = Vec::with_capacity(policy.clients.len());
        let mut by_auth_name = FxHashMap::default();
        for (id, c) in policy.clients.iter().enumerate() {
            by_auth_name
                .entry(c.authentication_name.value.to_lowercase())
                .or_insert(id as ClientId);
            let groups: Vec<GroupId> = policy
                .groups
                .iter()
                .enumerate()
                .filter(|(g, group)| {
                    *g as GroupId == ALL_GROUP
                        || group.query.as_ref().is_some_and(|q| membership::eval(q, c))
                })
                .map(|(g, _)| g as GroupId)
                .collect();
            let profile = *profile_ids.entry(groups.clone()).or_insert_with(|| {
                let mut publish = SpaceGrants::new(n_spaces);
                let mut subscribe = SpaceGrants::new(n_spaces);
                for (i, b) in policy.bindings.iter().enumerate() {
                    if groups.contains(&b.group.value) {
                        match b.permission.value {
                            Permission::Publisher => {
                                publish.grant(b.topic_space.value, i as BindingId)
                            }
                            Permission::Subscriber => {
                                subscribe.grant(b.topic_space.value, i as BindingId)
                            }
                        }
                    }
                }
                profiles.push(Profile {
                    groups,
                    publish,
                    subscribe,
                });
                (profiles.len() - 1) as u32
            });
            let values = index
                .vars
                .iter()
                .map(|v| {
                    variable_value(c, v)
                        .filter(|s| is_safe_value(s))
                        .map(Into::into)
                })
                .collect();
            clients.push(ClientData { profile, values });
        }
        CompiledPolicy {
            policy,
            source_hash,
            index,
            clients,
            profiles,
            by_auth_name,
        }
    }

    pub fn source_hash_hex(&self) -> String {
        hex::encode(self.source_hash)
    }

    /// The client with this authentication name, compared case-insensitively.
    pub fn client_by_authentication_name(&self, name: &str) -> Option<ClientId> {
        self.by_auth_name.get(&name.to_lowercase()).copied()
    }

    pub fn client(&self, id: ClientId) -> &Client {
        &self.policy.clients[id as usize]
    }

    pub fn client_count(&self) -> usize {
        self.policy.clients.len()
    }

    /// The groups a client belongs to (always including `$all`).
    pub fn groups_of(&self, id: ClientId) -> &[GroupId] {
        &self.profiles[self.clients[id as usize].profile as usize].groups
    }

    pub fn profile_of(&self, id: ClientId) -> &Profile {
        &self.profiles[self.clients[id as usize].profile as usize]
    }

    pub fn is_member(&self, id: ClientId, group: GroupId) -> bool {
        self.groups_of(id).contains(&group)
    }

    /// Where template `t` of the index comes from.
    pub fn template_ref(&self, t: super::index::TemplateId) -> TemplateRef {
        self.index.templates[t as usize]
    }

    pub fn index_node_count(&self) -> usize {
        self.index.node_count()
    }
}

/// A client's own value of a template variable, as text; `None` when the attribute
/// is missing, an array or a boolean (semantics.md §3: such a template grants
/// nothing; decision 0019 for booleans).
pub fn variable_value<'a>(client: &'a Client, var: &Var) -> Option<std::borrow::Cow<'a, str>> {
    match var {
        Var::AuthenticationName => Some(client.authentication_name.value.as_str().into()),
        Var::Attribute(k) => match client.attributes.get(k).map(|v| &v.value) {
            Some(AttrValue::Str(s)) => Some(s.as_str().into()),
            Some(AttrValue::Int(i)) => Some(i.to_string().into()),
            Some(AttrValue::Array(_) | AttrValue::Bool(_)) | None => None,
        },
    }
}

/// `template` as a filter for client `id`; `None` when a variable has no value that
/// can be substituted (missing, an array, or one that would change the template's shape).
pub fn substitute_for(
    policy: &CompiledPolicy,
    id: ClientId,
    template: &Template,
) -> Option<Filter> {
    let client = policy.client(id);
    let values: Vec<_> = template
        .variables()
        .map(|v| (v.clone(), variable_value(client, v)))
        .collect();
    template
        .substitute(|v| {
            values
                .iter()
                .find(|(k, _)| k == v)
                .and_then(|(_, val)| val.as_deref())
                .filter(|s| is_safe_value(s))
        })
        .map(|s| Filter::parse(&s))
}
