//! topicgate: a declarative MQTT access policy, compiled into an indexed decision
//! structure, verified, and served by an enforcing MQTT broker.
pub mod decisions;
pub mod broker;
