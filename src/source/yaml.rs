//! The YAML front end: text -> spanned tree ([`super::node`]), then the schema
//! reader ([`super::schema`]) -> [`PolicyDoc`]. The tree comes from the parser's
//! events ([`super::events`]) or, for anything that path declines, from
//! serde-saphyr (decisions 0002 and 0013).

use super::model::PolicyDoc;
use super::node::{Node, NodeKind};
use super::schema::{not_a_policy, read_policy};
use crate::diag::span::Span;
use crate::diag::{Code, Diagnostic, Diagnostics};

/// The largest policy file we read. 100,000 clients take about 12 MB of YAML;
/// beyond this a file is far more likely a mistake than a policy.
pub const MAX_POLICY_BYTES: usize = 32 * 1024 * 1024;

/// Parses a YAML policy. Returns the document (possibly partial) and every
/// diagnostic found; the document is `None` only when the YAML itself is broken.
pub fn parse_policy(text: &str) -> (Option<PolicyDoc>, Diagnostics) {
    let mut diags = Vec::new();
    let root = match parse_tree(text) {
        Ok(node) => node,
        Err(d) => return (None, vec![d]),
    };
    if let Some(d) = not_a_policy(&root) {
        return (None, vec![d]);
    }
    let doc = read_policy(&root, &mut diags);
    (Some(doc), diags)
}

/// YAML text to a spanned tree, with limits that keep hostile input cheap.
pub fn parse_tree(text: &str) -> Result<Node, Diagnostic> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(Diagnostic::new(
            Code::Io,
            format!(
                "policy file is {} bytes, more than the limit of {} bytes",
                text.len(),
                MAX_POLICY_BYTES
            ),
        ));
    }
    if text.trim().is_empty() {
        return Ok(Node {
            kind: NodeKind::Map(Vec::new()),
            span: Span::NONE,
        });
    }
    event_tree(text).map_or_else(|| serde_tree(text), Ok)
}

/// The event path alone: the tree built straight from the parser's events, or
/// `None` where it declines and [`serde_tree`] must read the text (see
/// [`super::events`]). Public so that tests can hold both paths to the same tree.
pub fn event_tree(text: &str) -> Option<Node> {
    super::events::tree(text, LIMITS, parser_options())
}

/// serde-saphyr's budget, shared by both paths: the event path stops short of it
/// and leaves the breach to the serde path, which reports it.
const LIMITS: super::events::Limits = super::events::Limits {
    max_depth: 64,
    max_nodes: 10_000_000,
    max_events: 20_000_000,
};

fn budget() -> Option<serde_saphyr::Budget> {
    serde_saphyr::budget! {
        max_events: LIMITS.max_events,
        max_nodes: LIMITS.max_nodes,
        max_depth: LIMITS.max_depth,
        // Policies have little use for anchors; keep alias bombs cheap.
        max_aliases: 10_000,
        max_anchors: 10_000,
        max_recorded_anchor_events: 100_000,
    }
}

/// The parser options serde-saphyr derives from [`budget`], so that both paths
/// accept the same syntax.
fn parser_options() -> granit_parser::Options {
    let mut options = granit_parser::Options::default();
    if let Some(budget) = budget() {
        options.simple_key_max_lookahead = budget.simple_key_max_lookahead;
        options.flow_nesting_limit = budget.flow_nesting_limit;
        options.block_nesting_limit = options
            .block_nesting_limit
            .max(budget.max_depth.saturating_add(1));
    }
    options.emit_comments = false;
    options
}

/// The serde path: any YAML, with serde-saphyr's checks, limits and error messages.
/// Used when the event path declines (see [`super::events`]).
pub fn serde_tree(text: &str) -> Result<Node, Diagnostic> {
    let options = serde_saphyr::options! {
        budget: budget(),
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 200_000,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| syntax_error(&e, text))
}

fn syntax_error(e: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let message = e.without_snippet().to_string();
    // The message repeats the position ("at line 3, column 4"); keep only the first line.
    let first = message
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    let mut diag = Diagnostic::new(Code::Syntax, format!("invalid YAML: {first}"));
    if let Some(loc) = e.location() {
        let span = super::node::span_of(&loc);
        let span = if span == Span::NONE && loc.line() > 0 {
            let file = crate::diag::span::SourceFile::new("", text);
            let o = file.offset_of(loc.line() as usize, loc.column() as usize);
            Span::new(o, o)
        } else {
            span
        };
        diag = diag.at(span);
    }
    diag
}
