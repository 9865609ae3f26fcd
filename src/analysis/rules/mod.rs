//! The rule registry: one file per rule, each with a stable code (registered in
//! [`crate::diag::codes`]) and a doc comment that is the rule's user documentation.

use super::Context;
use crate::diag::{Code, Diagnostics};

/// One rule of the verifier.
pub struct Rule {
    pub code: Code,
    /// The rule's source file, whose `//!` comment documents it.
    source: &'static str,
    pub check: fn(&Context, &mut Diagnostics),
}

impl Rule {
    /// The rule's documentation: its file's leading `//!` comment, as Markdown.
    pub fn doc(&self) -> String {
        doc_of(self.source)
    }
}

/// Rules whose findings are about what the policy grants (who may publish or
/// subscribe what). When the front end found errors, part of the policy is missing
/// from what they see, so their findings may follow from those errors and are
/// marked as consequences ([`crate::diag::Diagnostic::as_consequence_of`]).
pub const ABOUT_ACCESS: &[Code] = &[
    Code::WillNotPermitted,
    Code::WillUnheard,
    Code::WillForgeable,
    Code::IntentNotGranted,
];

/// The leading `//!` lines of a source file, without the markers.
pub fn doc_of(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines().take_while(|l| l.starts_with("//!")) {
        let text = line.trim_start_matches("//!");
        out.push_str(text.strip_prefix(' ').unwrap_or(text));
        out.push('\n');
    }
    out
}

macro_rules! rules {
    ($($module:ident => $code:ident,)*) => {
        $(pub mod $module;)*
        /// Every rule, in the order they run.
        pub const RULES: &[Rule] = &[
            $(Rule { code: Code::$code, source: include_str!(concat!(stringify!($module), ".rs")), check: $module::check },)*
        ];
    };
}

rules! {
    query_type => QueryType,
    unknown_attribute => UnknownAttribute,
    authentication_name_case => AuthenticationNameCase,
    duplicate_template => DuplicateTemplate,
    variable_without_value => VariableWithoutValue,
    unsafe_value => UnsafeValue,
    will_topic_wildcard => WillTopicWildcard,
    will_not_permitted => WillNotPermitted,
    will_unheard => WillUnheard,
    will_forgeable => WillForgeable,
    will_event_grid => WillEventGrid,
    intent_not_granted => IntentNotGranted,
    empty_group => EmptyGroup,
    unbound_group => UnboundGroup,
    unbound_topic_space => UnboundTopicSpace,
    client_without_permission => ClientWithoutPermission,
    redundant_binding => RedundantBinding,
    event_grid_limit => EventGridLimit,
    event_grid_name => EventGridName,
    event_grid_template => EventGridTemplate,
    event_grid_default_scheme => EventGridDefaultScheme,
}

/// The rule that reports `code`, if the verifier (rather than the front end) does.
pub fn rule_for(code: Code) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}
