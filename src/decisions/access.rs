//! The narrow interface through which the broker asks the policy for decisions.
//!
//! The broker never looks inside a policy: it asks who a client is, whether it may
//! connect, publish or subscribe, and gets a verdict with a reason it can log and,
//! for MQTT 5, send back as a reason string. `CompiledPolicy` implements it; keeping
//! it a trait lets the broker hold an `Arc<dyn AccessPolicy>` that can be swapped
//! atomically when the policy is reloaded.

pub use crate::decisions::identity::{CertificateRefusal, PeerCertificates, RefusalKind};

pub use crate::compiler::compiled::ClientId;

/// The outcome of one authorization question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Why it was denied (or what granted it), phrased for the client's own eyes:
    /// it names what was missing, never another client's data.
    pub reason: String,
}

impl Verdict {
    pub fn allow(reason: impl Into<String>) -> Self {
        Verdict {
            allowed: true,
            reason: reason.into(),
        }
    }
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            reason: reason.into(),
        }
    }
}

/// Result of checking a password against the client's `passwordHash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Valid,
    Invalid,
    /// The client has no `passwordHash`: it cannot log in with a password.
    NotConfigured,
}

/// What the broker may ask of a policy.
pub trait AccessPolicy: Send + Sync + 'static {
    /// The client whose authentication name is `name`, compared case-insensitively.
    fn lookup_client(&self, authentication_name: &str) -> Option<ClientId>;
    /// The client's authentication name in its original case.
    fn authentication_name(&self, client: ClientId) -> &str;
    /// A Disabled client may do nothing: CONNECT is refused with Not authorized.
    fn is_enabled(&self, client: ClientId) -> bool;
    /// Checks `password` against the client's argon2 `passwordHash`.
    fn verify_password(&self, client: ClientId, password: &[u8]) -> PasswordCheck;
    /// True when at least one client has a `passwordHash`, so a plaintext listener
    /// can authenticate someone without `--dev`.
    fn has_password_clients(&self) -> bool;
    /// May `client` publish to topic name `topic` (also asked for the will topic)?
    /// Denied for a disabled client, an invalid topic name and any topic starting
    /// with `$` (reserved for the broker), whatever the bindings say.
    fn may_publish(&self, client: ClientId, topic: &str) -> Verdict;
    /// May `client` subscribe to `filter` (`$share/NAME/F` is authorized as `F`)?
    /// Denied for a disabled client and an invalid filter.
    fn may_subscribe(&self, client: ClientId, filter: &str) -> Verdict;
    /// Hex SHA-256 of the policy source, logged at boot.
    fn policy_hash(&self) -> String;
    /// The client that a TLS client certificate proves (semantics.md §6), given the
    /// CONNECT username if any. The handshake has already proven possession of the
    /// certificate's key. A policy that cannot check certificates refuses them all.
    fn authenticate_certificate(
        &self,
        _peer: &PeerCertificates,
        _username: Option<&str>,
    ) -> Result<ClientId, CertificateRefusal> {
        Err(CertificateRefusal {
            kind: RefusalKind::NotAccepted,
            detail: "this policy does not authenticate certificates".into(),
        })
    }
}
