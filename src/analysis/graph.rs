//! `policy graph`: the policy as a picture. Clients (or, for large policies, member
//! counts on the groups) -> groups -> bindings -> topic spaces -> templates, built as a
//! petgraph graph and written as Mermaid (renders in pull requests and READMEs) or
//! Graphviz DOT; and an access matrix (groups x topic spaces) in markdown.

use super::access::substitute_for;
use crate::compiler::compiled::ClientId;
use crate::compiler::compiled::CompiledPolicy;
use crate::compiler::model::ALL_GROUP;
use crate::source::model::Permission;
use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// Above this many clients the graph shows member counts instead of client nodes.
pub const MAX_CLIENT_NODES: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphNode {
    Client(String),
    Group {
        name: String,
        members: usize,
    },
    Binding(String),
    TopicSpace(String),
    /// A template, and for a one-client graph its substituted form.
    Template {
        text: String,
        substituted: Option<String>,
    },
}

impl fmt::Display for GraphNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphNode::Client(n) => write!(f, "client {n}"),
            GraphNode::Group { name, members } => {
                write!(
                    f,
                    "group {name} ({members} client{})",
                    if *members == 1 { "" } else { "s" }
                )
            }
            GraphNode::Binding(n) => write!(f, "binding {n}"),
            GraphNode::TopicSpace(n) => write!(f, "topic space {n}"),
            GraphNode::Template {
                text,
                substituted: Some(s),
            } if s != text => write!(f, "{text} = {s}"),
            GraphNode::Template { text, .. } => f.write_str(text),
        }
    }
}

/// An edge's label: the permission on binding -> topic space edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphEdge(pub Option<Permission>);

impl fmt::Display for GraphEdge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => f.write_str(p.as_str()),
            None => Ok(()),
        }
    }
}

pub struct PolicyGraph {
    pub graph: DiGraph<GraphNode, GraphEdge>,
}

/// Builds the graph of the whole policy, or of what concerns one client.
pub fn build(policy: &CompiledPolicy, only: Option<ClientId>) -> PolicyGraph {
    let p = &policy.policy;
    let mut graph = DiGraph::new();
    let mut members = vec![0usize; p.groups.len()];
    for id in 0..policy.client_count() as ClientId {
        for g in policy.groups_of(id) {
            members[*g as usize] += 1;
        }
    }
    let clients: Vec<ClientId> = match only {
        Some(id) => vec![id],
        None if policy.client_count() <= MAX_CLIENT_NODES => {
            (0..policy.client_count() as ClientId).collect()
        }
        None => Vec::new(),
    };
    let in_scope = |g: u32| only.is_none_or(|id| policy.is_member(id, g));
    let mut group_nodes: HashMap<u32, NodeIndex> = HashMap::new();
    for (g, group) in p.groups.iter().enumerate() {
        let g = g as u32;
        // `$all` only when a binding uses it: every client is in it.
        let used = p.bindings.iter().any(|b| b.group.value == g);
        if !in_scope(g) || (g == ALL_GROUP && !used) {
            continue;
        }
        let node = graph.add_node(GraphNode::Group {
            name: group.name.value.clone(),
            members: members[g as usize],
        });
        group_nodes.insert(g, node);
    }
    for &id in &clients {
        let c = graph.add_node(GraphNode::Client(
            policy.client(id).authentication_name.value.clone(),
        ));
        for g in policy.groups_of(id) {
            if let Some(&gn) = group_nodes.get(g) {
                graph.add_edge(c, gn, GraphEdge(None));
            }
        }
    }
    let mut space_nodes: HashMap<u32, NodeIndex> = HashMap::new();
    for binding in &p.bindings {
        let Some(&gn) = group_nodes.get(&binding.group.value) else {
            continue;
        };
        let bn = graph.add_node(GraphNode::Binding(binding.name.value.clone()));
        graph.add_edge(gn, bn, GraphEdge(None));
        let s = binding.topic_space.value;
        let sn = match space_nodes.get(&s) {
            Some(&n) => n,
            None => {
                let space = &p.topic_spaces[s as usize];
                let sn = graph.add_node(GraphNode::TopicSpace(space.name.value.clone()));
                for t in &space.templates {
                    let substituted = only.map(|id| {
                        substitute_for(policy, id, &t.value)
                            .map(|f| f.to_string())
                            .unwrap_or_else(|| "(nothing)".into())
                    });
                    let tn = graph.add_node(GraphNode::Template {
                        text: t.value.to_string(),
                        substituted,
                    });
                    graph.add_edge(sn, tn, GraphEdge(None));
                }
                space_nodes.insert(s, sn);
                sn
            }
        };
        graph.add_edge(bn, sn, GraphEdge(Some(binding.permission.value)));
    }
    PolicyGraph { graph }
}

/// Mermaid text is HTML-ish: `<`, `>`, `"` and `#` must be written as entities.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            c => out.push(c),
        }
    }
    out
}

impl PolicyGraph {
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for i in self.graph.node_indices() {
            let node = &self.graph[i];
            let label = mermaid_text(&node.to_string());
            let id = i.index();
            let _ = match node {
                GraphNode::Client(_) => writeln!(out, "  n{id}([\"{label}\"])"),
                GraphNode::Group { .. } => writeln!(out, "  n{id}{{{{\"{label}\"}}}}"),
                GraphNode::Binding(_) => writeln!(out, "  n{id}[\"{label}\"]"),
                GraphNode::TopicSpace(_) => writeln!(out, "  n{id}[(\"{label}\")]"),
                GraphNode::Template { .. } => writeln!(out, "  n{id}[/\"{label}\"/]"),
            };
        }
        for e in self.graph.edge_indices() {
            let Some((a, b)) = self.graph.edge_endpoints(e) else {
                continue;
            };
            let _ = match self.graph[e].0 {
                Some(p) => writeln!(out, "  n{} -->|{}| n{}", a.index(), p.as_str(), b.index()),
                None => writeln!(out, "  n{} --> n{}", a.index(), b.index()),
            };
        }
        out
    }

    pub fn to_dot(&self) -> String {
        let shape = |_, (_, n): (NodeIndex, &GraphNode)| {
            match n {
                GraphNode::Client(_) => "shape=ellipse",
                GraphNode::Group { .. } => "shape=hexagon",
                GraphNode::Binding(_) => "shape=box",
                GraphNode::TopicSpace(_) => "shape=cylinder",
                GraphNode::Template { .. } => "shape=parallelogram",
            }
            .to_string()
        };
        let dot = Dot::with_attr_getters(
            &self.graph,
            &[Config::GraphContentOnly],
            &|_, _| String::new(),
            &shape,
        );
        format!("digraph policy {{\n  rankdir=LR;\n{dot}}}\n")
    }
}

/// The access matrix: one row per group (with its member count), one column per topic
/// space, each cell the permissions bound (`pub`, `sub`).
pub fn matrix(policy: &CompiledPolicy) -> String {
    let p = &policy.policy;
    let mut members = vec![0usize; p.groups.len()];
    for id in 0..policy.client_count() as ClientId {
        for g in policy.groups_of(id) {
            members[*g as usize] += 1;
        }
    }
    let mut out = String::from("| group (clients) |");
    for s in &p.topic_spaces {
        let _ = write!(out, " {} |", s.name.value);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(p.topic_spaces.len()));
    out.push('\n');
    for (g, group) in p.groups.iter().enumerate() {
        let _ = write!(out, "| {} ({}) |", group.name.value, members[g]);
        for s in 0..p.topic_spaces.len() {
            let has = |perm: Permission| {
                p.bindings.iter().any(|b| {
                    b.group.value as usize == g
                        && b.topic_space.value as usize == s
                        && b.permission.value == perm
                })
            };
            let cell: Vec<&str> = [
                (Permission::Publisher, "pub"),
                (Permission::Subscriber, "sub"),
            ]
            .into_iter()
            .filter(|(perm, _)| has(*perm))
            .map(|(_, t)| t)
            .collect();
            let _ = write!(out, " {} |", cell.join(", "));
        }
        out.push('\n');
    }
    out
}
