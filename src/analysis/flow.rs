//! Data flow between two clients: can a message published by A reach B? It can when
//! a topic A may publish is also a topic B may receive, i.e. when one of A's publish
//! filters intersects one of B's subscribe filters. Each such pair is reported with
//! the intersection and a witness topic in it.

use super::access::{client_access, vocabulary};
use super::query::FilterGrant;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::CompiledPolicy;
use crate::topic::{example_topic, intersect};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FlowPath {
    /// A topic A may publish and B may receive.
    pub witness: String,
    /// Every topic both may use on this path.
    pub topics: String,
    pub publish: FilterGrant,
    pub subscribe: FilterGrant,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub from: String,
    pub to: String,
    pub flows: bool,
    pub paths: Vec<FlowPath>,
}

/// Every (publish filter of `from`, subscribe filter of `to`) pair that shares a topic.
pub fn flow(policy: &CompiledPolicy, from: ClientId, to: ClientId) -> Flow {
    let a = client_access(policy, from);
    let b = client_access(policy, to);
    let vocab = vocabulary([&a, &b]);
    let mut paths = Vec::new();
    for p in &a.publish {
        for s in &b.subscribe {
            let Some(common) = intersect(&p.filter, &s.filter) else {
                continue;
            };
            let Some(witness) = example_topic(&common, &vocab) else {
                continue;
            };
            paths.push(FlowPath {
                witness,
                topics: common.to_string(),
                publish: FilterGrant::new(policy, p),
                subscribe: FilterGrant::new(policy, s),
            });
        }
    }
    Flow {
        from: policy.client(from).authentication_name.value.clone(),
        to: policy.client(to).authentication_name.value.clone(),
        flows: !paths.is_empty(),
        paths,
    }
}
