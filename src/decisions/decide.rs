//! The fast path: connect, publish and subscribe decisions on the compiled index.

use super::access::{AccessPolicy, ClientId, PasswordCheck, Verdict};
use super::{Decision, DenyKind, Grant};
use crate::compiler::compiled::{CompiledPolicy, SpaceGrants};
use crate::compiler::model::BindingId;
use crate::source::model::Permission;
use crate::topic::{parse_subscription, validate_name};

impl CompiledPolicy {
    /// May `client` publish to `topic`?
    pub fn decide_publish(&self, client: ClientId, topic: &str) -> Decision {
        if let Some(d) = self.precheck(client).or_else(|| not_publishable(topic)) {
            return d;
        }
        let data = &self.clients[client as usize];
        let profile = &self.profiles[data.profile as usize];
        let found = self.index.find_publish(topic, &data.values, &|t| {
            profile.publish.contains(self.template_ref(t).space)
        });
        match found {
            Some(t) => self.allowed(t, &profile.publish),
            None => Decision::deny(
                DenyKind::NotGranted,
                format!(
                    "no publisher binding grants `{topic}` to `{}`",
                    self.client(client).authentication_name.value
                ),
            ),
        }
    }

    /// May `client` subscribe to `filter`? `$share/NAME/F` is decided as `F`.
    pub fn decide_subscribe(&self, client: ClientId, filter: &str) -> Decision {
        if let Some(d) = self.precheck(client) {
            return d;
        }
        let inner = match parse_subscription(filter) {
            Ok(sub) => sub.filter,
            Err(e) => {
                return Decision::deny(
                    DenyKind::InvalidTopic,
                    format!("invalid filter: {}", e.message),
                )
            }
        };
        if inner.starts_with('$') {
            return Decision::deny(
                DenyKind::ReservedTopic,
                "topics starting with `$` are reserved for the broker",
            );
        }
        let data = &self.clients[client as usize];
        let profile = &self.profiles[data.profile as usize];
        let found = self.index.find_subscribe(inner, &data.values, &|t| {
            profile.subscribe.contains(self.template_ref(t).space)
        });
        match found {
            Some(t) => self.allowed(t, &profile.subscribe),
            None => Decision::deny(
                DenyKind::NotGranted,
                format!(
                    "no subscriber binding grants a template containing `{inner}` to `{}`",
                    self.client(client).authentication_name.value
                ),
            ),
        }
    }

    /// May `client` receive a message published on `topic`? Only a topic name a client
    /// may publish can be received (semantics.md §3): not a filter, not a `$` topic
    /// (`$share/...` included). Then it is exactly subscribing to `topic` itself.
    pub fn decide_receive(&self, client: ClientId, topic: &str) -> Decision {
        if let Some(d) = self.precheck(client).or_else(|| not_publishable(topic)) {
            return d;
        }
        self.decide_subscribe(client, topic)
    }

    /// May `client` connect, with a will on `will_topic` if given?
    pub fn decide_connect(&self, client: ClientId, will_topic: Option<&str>) -> Decision {
        if let Some(d) = self.precheck(client) {
            return d;
        }
        match will_topic {
            None => Decision {
                allowed: true,
                grant: None,
                reason: "client is enabled".into(),
                deny: None,
            },
            Some(topic) => {
                let d = self.decide_publish(client, topic);
                if d.allowed {
                    d
                } else {
                    Decision {
                        reason: format!("will topic `{topic}` is not allowed: {}", d.reason),
                        ..d
                    }
                }
            }
        }
    }

    fn precheck(&self, client: ClientId) -> Option<Decision> {
        let c = self.policy.clients.get(client as usize)?;
        (!c.is_enabled()).then(|| {
            Decision::deny(
                DenyKind::ClientDisabled,
                format!("client `{}` is disabled", c.authentication_name.value),
            )
        })
    }

    /// The fast path allocates nothing on success: the reason is left empty and
    /// [`CompiledPolicy::describe_grant`] renders it when someone asks. `grants` is
    /// the asking client's profile for the permission asked (what
    /// [`CompiledPolicy::granting_binding`] would look up again).
    fn allowed(&self, template: u32, grants: &SpaceGrants) -> Decision {
        let at = self.template_ref(template);
        let binding = grants.binding(at.space).unwrap_or(0);
        let grant = Grant {
            binding,
            topic_space: at.space,
            template: at.index,
        };
        Decision {
            allowed: true,
            grant: Some(grant),
            reason: String::new(),
            deny: None,
        }
    }

    /// "granted by binding `b` (topic space `s`, template `t`)"
    pub fn describe_grant(&self, grant: &Grant) -> String {
        let space = &self.policy.topic_spaces[grant.topic_space as usize];
        format!(
            "granted by binding `{}` (topic space `{}`, template `{}`)",
            self.policy.bindings[grant.binding as usize].name.value,
            space.name.value,
            space.templates[grant.template as usize].value,
        )
    }

    /// The first binding (in policy order) that gives `client` `permission` on `space`.
    pub fn granting_binding(
        &self,
        client: ClientId,
        space: u32,
        permission: Permission,
    ) -> Option<BindingId> {
        let profile = self.profile_of(client);
        match permission {
            Permission::Publisher => profile.publish.binding(space),
            Permission::Subscriber => profile.subscribe.binding(space),
        }
    }
}

impl AccessPolicy for CompiledPolicy {
    fn lookup_client(&self, authentication_name: &str) -> Option<ClientId> {
        self.client_by_authentication_name(authentication_name)
    }
    fn authentication_name(&self, client: ClientId) -> &str {
        self.policy
            .clients
            .get(client as usize)
            .map(|c| c.authentication_name.value.as_str())
            .unwrap_or("")
    }
    fn is_enabled(&self, client: ClientId) -> bool {
        self.policy
            .clients
            .get(client as usize)
            .is_some_and(|c| c.is_enabled())
    }
    fn verify_password(&self, client: ClientId, password: &[u8]) -> PasswordCheck {
        use argon2::PasswordVerifier;
        let hash = self
            .policy
            .clients
            .get(client as usize)
            .and_then(|c| c.authentication.as_ref())
            .and_then(|a| a.password_hash.as_ref());
        let Some(hash) = hash else {
            return PasswordCheck::NotConfigured;
        };
        match argon2::PasswordHash::new(&hash.value) {
            Ok(parsed)
                if argon2::Argon2::default()
                    .verify_password(password, &parsed)
                    .is_ok() =>
            {
                PasswordCheck::Valid
            }
            _ => PasswordCheck::Invalid,
        }
    }
    fn has_password_clients(&self) -> bool {
        self.policy.clients.iter().any(|c| {
            c.authentication
                .as_ref()
                .is_some_and(|a| a.password_hash.is_some())
        })
    }
    fn may_publish(&self, client: ClientId, topic: &str) -> Verdict {
        self.decide_publish(client, topic).into()
    }
    fn may_subscribe(&self, client: ClientId, filter: &str) -> Verdict {
        self.decide_subscribe(client, filter).into()
    }
    fn policy_hash(&self) -> String {
        self.source_hash_hex()
    }
    fn authenticate_certificate(
        &self,
        peer: &crate::decisions::access::PeerCertificates,
        username: Option<&str>,
    ) -> Result<ClientId, crate::decisions::access::CertificateRefusal> {
        let now = rustls::pki_types::UnixTime::now();
        crate::decisions::identity::authenticate(&self.policy, peer, username, now)
            .map(|i| i as ClientId)
    }
}

/// Why no client may publish `topic` (and so nobody receives it), if that is so:
/// it is not a valid topic name, or it is reserved for the broker (semantics.md §3).
fn not_publishable(topic: &str) -> Option<Decision> {
    if let Err(e) = validate_name(topic) {
        return Some(Decision::deny(
            DenyKind::InvalidTopic,
            format!("invalid topic name: {}", e.message),
        ));
    }
    topic.starts_with('$').then(|| {
        Decision::deny(
            DenyKind::ReservedTopic,
            "topics starting with `$` are reserved for the broker",
        )
    })
}
