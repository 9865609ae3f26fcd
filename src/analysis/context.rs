//! What every rule reads: the compiled policy, the source file for precise spans,
//! the target, and per-profile facts computed once (which clients share a profile,
//! how many members each group has).

use super::reach::Reach;
use super::{Options, Target};
use crate::compiler::compiled::{ClientId, CompiledPolicy};
use crate::compiler::model::{GroupId, ResolvedPolicy, SpaceId};
use crate::diag::span::{SourceFile, Span};
use crate::diag::Severity;
use crate::source::model::Permission;
use std::cell::OnceCell;

pub struct Context<'a> {
    pub file: &'a SourceFile,
    pub policy: &'a CompiledPolicy,
    pub options: Options,
    /// The clients of each profile, in policy order.
    members: Vec<Vec<ClientId>>,
    /// The number of clients in each group.
    group_sizes: Vec<usize>,
    publishers: OnceCell<Reach>,
    subscribers: OnceCell<Reach>,
}

impl<'a> Context<'a> {
    pub fn new(file: &'a SourceFile, policy: &'a CompiledPolicy, options: Options) -> Self {
        let mut members = vec![Vec::new(); policy.profiles.len()];
        for (id, data) in policy.clients.iter().enumerate() {
            members[data.profile as usize].push(id as ClientId);
        }
        let mut group_sizes = vec![0; policy.policy.groups.len()];
        for (p, profile) in policy.profiles.iter().enumerate() {
            for g in &profile.groups {
                group_sizes[*g as usize] += members[p].len();
            }
        }
        Context {
            file,
            policy,
            options,
            members,
            group_sizes,
            publishers: OnceCell::new(),
            subscribers: OnceCell::new(),
        }
    }

    pub fn resolved(&self) -> &ResolvedPolicy {
        &self.policy.policy
    }

    /// The severity of an Event Grid compatibility finding: an error only when the
    /// policy is checked for Event Grid.
    pub fn compatibility_severity(&self) -> Severity {
        match self.options.target {
            Target::Local => Severity::Warning,
            Target::EventGrid => Severity::Error,
        }
    }

    /// Profiles (ids) whose groups grant `permission` on `space`.
    pub fn profiles_granting(
        &self,
        space: SpaceId,
        permission: Permission,
    ) -> impl Iterator<Item = usize> + '_ {
        self.policy
            .profiles
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| {
                let set = match permission {
                    Permission::Publisher => &p.publish,
                    Permission::Subscriber => &p.subscribe,
                };
                set.contains(space).then_some(i)
            })
    }

    pub fn profile_members(&self, profile: usize) -> &[ClientId] {
        &self.members[profile]
    }

    /// The clients of a group, profile by profile.
    pub fn group_members(&self, group: GroupId) -> impl Iterator<Item = ClientId> + '_ {
        self.policy
            .profiles
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.groups.contains(&group))
            .flat_map(move |(i, _)| self.members[i].iter().copied())
    }

    pub fn group_size(&self, group: GroupId) -> usize {
        self.group_sizes.get(group as usize).copied().unwrap_or(0)
    }

    /// Who may publish a given topic (built on first use).
    pub fn publishers(&self) -> &Reach {
        self.publishers
            .get_or_init(|| Reach::build(self, Permission::Publisher))
    }

    /// Who may subscribe to a given topic (built on first use).
    pub fn subscribers(&self) -> &Reach {
        self.subscribers
            .get_or_init(|| Reach::build(self, Permission::Subscriber))
    }

    /// A span inside a string value (a query, a template), exact when the value is
    /// written plainly in the file.
    pub fn inner(&self, value_span: Span, value: &str, at: (usize, usize)) -> Span {
        self.file.inner_span(value_span, value, at.0, at.1)
    }

    /// `a`, `b`, `c` and N more.
    pub fn name_list(&self, clients: &[ClientId], total: usize) -> String {
        let mut names: Vec<String> = clients
            .iter()
            .map(|c| format!("`{}`", self.policy.client(*c).name.value))
            .collect();
        if total > clients.len() {
            names.push(format!("{} more", total - clients.len()));
        }
        match names.len() {
            0 => String::new(),
            1 => names.remove(0),
            n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
        }
    }
}
