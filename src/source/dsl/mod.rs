//! The DSL front end (`*.policy`, `grammar/policy.pest`): text -> a tree of spanned
//! statements ([`parse`]) -> the same spanned tree the YAML front end builds
//! ([`Node`], [`lower`]) -> the shared schema checks of [`super::schema`]. Every
//! value keeps its exact span, so diagnostics point into a `.policy` file as
//! precisely as into YAML.

mod lower;
mod parse;

pub use parse::MAX_DEPTH;

use super::model::PolicyDoc;
use super::node::Node;
use super::schema::read_policy;
use crate::diag::Diagnostics;

/// Parses a DSL policy. Returns the document (possibly partial) and every
/// diagnostic found; the document is `None` only when the text does not parse.
pub fn parse_policy(text: &str) -> (Option<PolicyDoc>, Diagnostics) {
    let mut diags = Vec::new();
    let root = match parse_tree(text, &mut diags) {
        Some(root) => root,
        None => return (None, diags),
    };
    let doc = read_policy(&root, &mut diags);
    (Some(doc), diags)
}

/// The DSL text lowered to the tree the schema checks read.
pub fn parse_tree(text: &str, diags: &mut Diagnostics) -> Option<Node> {
    let stmts = parse::statements(text, diags)?;
    Some(lower::lower_top(stmts, diags))
}
