//! A tiny stand-in policy for broker tests until the compiler lands on main.
//! Templates may use `$<client.authenticationName>`; subscribe is allowed when the
//! filter is a subset of one template (semantics.md §3).

use std::sync::Arc;
use topicgate::decisions::access::{AccessPolicy, ClientId, PasswordCheck, Verdict};

pub struct TestClient {
    pub name: String,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

pub struct TestPolicy {
    pub clients: Vec<TestClient>,
}

impl TestPolicy {
    pub fn client(mut self, name: &str, publish: &[&str], subscribe: &[&str]) -> Self {
        self.clients.push(TestClient {
            name: name.into(),
            enabled: true,
            password_hash: None,
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    pub fn disabled(mut self, name: &str) -> Self {
        self = self.client(name, &["#"], &["#"]);
        if let Some(c) = self.clients.last_mut() {
            c.enabled = false;
        }
        self
    }

    pub fn with_password(mut self, name: &str, password: &str) -> Self {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"topicgate-test-salt").expect("salt");
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string();
        if let Some(c) = self.clients.iter_mut().find(|c| c.name == name) {
            c.password_hash = Some(hash);
        }
        self
    }

    pub fn arc(self) -> Arc<dyn AccessPolicy> {
        Arc::new(self)
    }
}

/// The seed scenario (policies/lwt.yaml) plus helpers for broader tests.
pub fn lwt() -> TestPolicy {
    TestPolicy { clients: Vec::new() }
        .client("sensor1", &["clients/$<client.authenticationName>/status"], &[])
        .client("sensor2", &["clients/$<client.authenticationName>/status"], &[])
        .client("actuator1", &[], &["clients/+/status"])
        .client("actuator2", &[], &["clients/+/status"])
        .client("admin", &["#"], &["#"])
        .client("admin2", &["#"], &["#"])
        .disabled("disabled1")
}

fn subst(t: &str, name: &str) -> String {
    t.replace("$<client.authenticationName>", name)
}

fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn subset(filter: &str, template: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = template.split('/').collect();
    for (i, tl) in t.iter().enumerate() {
        if *tl == "#" {
            return true;
        }
        let Some(fl) = f.get(i) else { return false };
        match (*tl, *fl) {
            ("+", "#") => return false,
            ("+", _) => {}
            (a, b) if a == b => {}
            _ => return false,
        }
    }
    f.len() == t.len()
}

impl AccessPolicy for TestPolicy {
    fn lookup_client(&self, name: &str) -> Option<ClientId> {
        self.clients
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .map(|i| i as ClientId)
    }
    fn authentication_name(&self, client: ClientId) -> &str {
        &self.clients[client as usize].name
    }
    fn is_enabled(&self, client: ClientId) -> bool {
        self.clients[client as usize].enabled
    }
    fn verify_password(&self, client: ClientId, password: &[u8]) -> PasswordCheck {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let Some(h) = &self.clients[client as usize].password_hash else {
            return PasswordCheck::NotConfigured;
        };
        let Ok(parsed) = PasswordHash::new(h) else { return PasswordCheck::Invalid };
        if argon2::Argon2::default().verify_password(password, &parsed).is_ok() {
            PasswordCheck::Valid
        } else {
            PasswordCheck::Invalid
        }
    }
    fn has_password_clients(&self) -> bool {
        self.clients.iter().any(|c| c.password_hash.is_some())
    }
    fn may_publish(&self, client: ClientId, topic: &str) -> Verdict {
        let c = &self.clients[client as usize];
        if c.publish.iter().any(|t| matches(&subst(t, &c.name), topic)) {
            Verdict::allow("granted")
        } else {
            Verdict::deny(format!("no publisher binding grants `{topic}`"))
        }
    }
    fn may_subscribe(&self, client: ClientId, filter: &str) -> Verdict {
        let c = &self.clients[client as usize];
        if c.subscribe.iter().any(|t| subset(filter, &subst(t, &c.name))) {
            Verdict::allow("granted")
        } else {
            Verdict::deny(format!("no subscriber binding grants `{filter}`"))
        }
    }
    fn policy_hash(&self) -> String {
        "test".into()
    }
}
