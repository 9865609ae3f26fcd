//! How the tools name a client (semantics.md §8): by its authentication name,
//! ignoring case, the way the broker finds it at CONNECT. `policy test`, `explain`,
//! `query` and `graph` all look clients up here, so the same request gets the same
//! answer from each; a client's resource name is never taken in its place.

use crate::compiler::compiled::{ClientId, CompiledPolicy};

/// A name that is no client's authentication name, with what the user likely meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown client `{name}`: no client has this authentication name{hint}")]
pub struct UnknownClient {
    pub name: String,
    /// Authentication names the user may have meant, best first.
    pub suggestions: Vec<String>,
    hint: String,
}

/// The client whose authentication name is `name`, ignoring case.
pub fn find_client(policy: &CompiledPolicy, name: &str) -> Result<ClientId, UnknownClient> {
    if let Some(id) = policy.client_by_authentication_name(name) {
        return Ok(id);
    }
    // The commonest slip: the client's resource name (its key under `clients:`).
    let by_resource_name = policy.policy.clients.iter().find(|c| c.name.value == name);
    let (suggestions, hint) = match by_resource_name {
        Some(c) => {
            let auth = c.authentication_name.value.clone();
            let hint = format!(
                "; `{name}` is the resource name of the client whose authentication name is `{auth}`, and clients are named by authentication name"
            );
            (vec![auth], hint)
        }
        None => {
            let near = nearest_names(policy, name);
            let hint = match near.as_slice() {
                [] => String::new(),
                names => format!(
                    "; did you mean {}?",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            (near, hint)
        }
    };
    Err(UnknownClient {
        name: name.to_string(),
        suggestions,
        hint,
    })
}

/// Up to three known authentication names closest to `name`, best first.
fn nearest_names(policy: &CompiledPolicy, name: &str) -> Vec<String> {
    let lower = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = policy
        .policy
        .clients
        .iter()
        .map(|c| c.authentication_name.value.as_str())
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}
