//! What each client may do, as filters: every template of every topic space bound to
//! one of the client's groups, substituted with the client's own values. This is the
//! per-client view that query, flow and diff reason about with the filter algebra.

pub use crate::compiler::compiled::substitute_for;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::CompiledPolicy;
use crate::compiler::model::{BindingId, SpaceId};
use crate::source::model::Permission;
use crate::topic::{algebra, Filter, Vocabulary};

/// One substituted template and the binding that grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedFilter {
    pub filter: Filter,
    pub binding: BindingId,
    pub space: SpaceId,
    /// Index of the template within its topic space.
    pub template: u32,
}

/// A client's substituted publish and subscribe filters (empty for a disabled client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAccess {
    pub publish: Vec<GrantedFilter>,
    pub subscribe: Vec<GrantedFilter>,
}

impl ClientAccess {
    pub fn of(&self, permission: Permission) -> &[GrantedFilter] {
        match permission {
            Permission::Publisher => &self.publish,
            Permission::Subscriber => &self.subscribe,
        }
    }
}

/// Every filter client `id` is granted, in binding and template order, without duplicates.
pub fn client_access(policy: &CompiledPolicy, id: ClientId) -> ClientAccess {
    let mut access = ClientAccess::default();
    if !policy.client(id).is_enabled() {
        return access;
    }
    let groups = policy.groups_of(id);
    for (b, binding) in policy.policy.bindings.iter().enumerate() {
        if !groups.contains(&binding.group.value) {
            continue;
        }
        let space = &policy.policy.topic_spaces[binding.topic_space.value as usize];
        let list = match binding.permission.value {
            Permission::Publisher => &mut access.publish,
            Permission::Subscriber => &mut access.subscribe,
        };
        for (t, template) in space.templates.iter().enumerate() {
            let Some(filter) = substitute_for(policy, id, &template.value) else {
                continue;
            };
            if list.iter().any(|g| g.filter == filter) {
                continue;
            }
            list.push(GrantedFilter {
                filter,
                binding: b as BindingId,
                space: binding.topic_space.value,
                template: t as u32,
            });
        }
    }
    access
}

/// The filters that are not contained in another one of the list: the same set of
/// topics, said with fewer filters (the first of two equal filters is kept).
pub fn merged(filters: &[GrantedFilter]) -> Vec<GrantedFilter> {
    filters
        .iter()
        .enumerate()
        .filter(|(i, g)| {
            !filters.iter().enumerate().any(|(j, h)| {
                j != *i
                    && algebra::is_subset(&g.filter, &h.filter)
                    && (!algebra::is_subset(&h.filter, &g.filter) || j < *i)
            })
        })
        .map(|(_, g)| g.clone())
        .collect()
}

/// The literal levels of every client's filters: the values witnesses prefer.
pub fn vocabulary<'a>(accesses: impl IntoIterator<Item = &'a ClientAccess>) -> Vocabulary {
    let mut v = Vocabulary::new();
    for a in accesses {
        for g in a.publish.iter().chain(&a.subscribe) {
            v.add(&g.filter);
        }
    }
    v
}

/// Every client's access, indexed by client id.
pub fn all_access(policy: &CompiledPolicy) -> Vec<ClientAccess> {
    (0..policy.client_count() as ClientId)
        .map(|id| client_access(policy, id))
        .collect()
}

/// May a client holding template filter `template` subscribe to `filter`? The one
/// subset rule ([`crate::topic::is_subset`]), as the decisions and the broker apply it.
pub fn subscribe_allows(template: &Filter, filter: &Filter) -> bool {
    algebra::is_subset(filter, template)
}
