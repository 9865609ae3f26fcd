//! Who may publish (or subscribe to) a topic name, answered without trying every
//! client: templates without variables are indexed once per topic space (their
//! audience is the members of the profiles granted that space); templates with
//! variables are indexed once per client granted them, substituted with that
//! client's values. One walk of the trie then finds every template that matches.

use super::Context;
use crate::compiler::compiled::{variable_value, ClientId};
use crate::compiler::index::{TemplateIndex, TemplateRef};
use crate::compiler::model::Client;
use crate::compiler::model::SpaceId;
use crate::source::model::Permission;
use crate::topic::{is_safe_value, Level, Segment, Template};
use std::cell::RefCell;

#[derive(Debug, Clone, Copy)]
enum Owner {
    /// A template without variables: every enabled client granted the space.
    Space(SpaceId),
    /// A template substituted for one client.
    Client(ClientId),
}

pub struct Reach {
    permission: Permission,
    index: TemplateIndex,
    owners: Vec<Owner>,
}

impl Reach {
    pub fn build(cx: &Context, permission: Permission) -> Reach {
        let policy = cx.resolved();
        let mut index = TemplateIndex::new();
        let mut owners = Vec::new();
        for (s, space) in policy.topic_spaces.iter().enumerate() {
            let s = s as SpaceId;
            let profiles: Vec<usize> = cx.profiles_granting(s, permission).collect();
            if profiles.is_empty() {
                continue;
            }
            for (i, t) in space.templates.iter().enumerate() {
                let at = TemplateRef {
                    space: s,
                    index: i as u32,
                };
                if !t.value.has_variables() {
                    index.insert(&t.value, at);
                    owners.push(Owner::Space(s));
                    continue;
                }
                for &p in &profiles {
                    for &c in cx.profile_members(p) {
                        let client = cx.policy.client(c);
                        if !client.is_enabled() {
                            continue;
                        }
                        if let Some(own) = substituted(&t.value, client) {
                            index.insert(&own, at);
                            owners.push(Owner::Client(c));
                        }
                    }
                }
            }
        }
        Reach {
            permission,
            index,
            owners,
        }
    }

    /// Up to `limit` enabled clients other than `except` that may publish (or
    /// subscribe to) topic name `topic`, and whether there are more.
    pub fn who(
        &self,
        cx: &Context,
        topic: &str,
        except: ClientId,
        limit: usize,
    ) -> (Vec<ClientId>, bool) {
        let matched = RefCell::new(Vec::new());
        self.index.find_publish(topic, &[], &|t| {
            matched.borrow_mut().push(t);
            false
        });
        let mut found: Vec<ClientId> = Vec::new();
        for t in matched.into_inner() {
            let candidates: Box<dyn Iterator<Item = ClientId>> = match self.owners[t as usize] {
                Owner::Client(c) => Box::new(std::iter::once(c)),
                Owner::Space(s) => Box::new(
                    cx.profiles_granting(s, self.permission)
                        .flat_map(|p| cx.profile_members(p).iter().copied())
                        .filter(|c| cx.policy.client(*c).is_enabled()),
                ),
            };
            for c in candidates {
                if c == except || found.contains(&c) {
                    continue;
                }
                if found.len() == limit {
                    return (found, true);
                }
                found.push(c);
            }
        }
        (found, false)
    }
}

/// The template with the client's values in place of its variables (levels stay
/// levels: no re-parsing); `None` when a value is missing or unsafe, as at the broker.
fn substituted(t: &Template, client: &Client) -> Option<Template> {
    let mut levels = Vec::with_capacity(t.levels.len());
    for level in &t.levels {
        levels.push(match level {
            Level::Pattern(segs) => {
                let mut text = String::new();
                for seg in segs {
                    match seg {
                        Segment::Text(x) => text.push_str(x),
                        Segment::Var(v) => {
                            let value = variable_value(client, v)?;
                            if !is_safe_value(&value) {
                                return None;
                            }
                            text.push_str(&value);
                        }
                    }
                }
                Level::Literal(text)
            }
            other => other.clone(),
        });
    }
    Some(Template { levels })
}
