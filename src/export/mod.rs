//! Exports of a compiled policy to other brokers' access-control formats, so that
//! a policy checked by topicgate can be enforced elsewhere (and so that benchmarks
//! run other brokers under the same rules as ours).

pub mod mosquitto;
