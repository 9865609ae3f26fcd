//! The registry of diagnostic codes. Every finding topicgate reports has one stable
//! code here; `docs/rules.md` documents them.

use serde::Serialize;

use super::Severity;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $sev:ident, $summary:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in registry order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as users see it, e.g. `TG101`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
            /// The severity a finding of this code has unless a target changes it.
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
            /// One line saying what the rule checks.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
            /// The name of the rule (its variant name).
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => stringify!($variant),)* }
            }
            /// The doc comment of the code in this registry. Rules of the verifier are
            /// documented at length in their own file under `analysis/rules/`.
            pub fn registry_doc(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc, "\n",)* ""),)* }
            }
            /// The code for its text, e.g. `TG101`.
            pub fn from_code(text: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(text))
            }
        }
    };
}

codes! {
    /// The file is not valid YAML (or DSL): the parser stopped at the position shown.
    Syntax = "TG001", Error, "syntax error";
    /// A key that the policy format does not know. Unknown keys are never ignored,
    /// since a misspelt `subscribes` would otherwise silently grant nothing.
    UnknownKey = "TG002", Error, "unknown key";
    /// A value of the wrong type, e.g. `qos: high` or a list where a string is expected.
    WrongType = "TG003", Error, "value of the wrong type";
    /// A required field is missing, e.g. a binding without `topicSpace`.
    MissingField = "TG004", Error, "missing required field";
    /// A value outside what the field accepts, e.g. `permission: owner` or `qos: 3`.
    InvalidValue = "TG005", Error, "invalid value";
    /// Two resources of the same kind share a name.
    DuplicateName = "TG006", Error, "duplicate name";
    /// Two clients share an authentication name, compared case-insensitively as the
    /// broker compares them when a client connects.
    DuplicateAuthenticationName = "TG007", Error, "duplicate authentication name";
    /// A name breaks Event Grid's character or length rules.
    InvalidName = "TG008", Error, "invalid resource name";
    /// The built-in group `$all` cannot be redefined.
    RedefinedAll = "TG009", Error, "redefinition of `$all`";
    /// The file cannot be read or is too large.
    Io = "TG010", Error, "file cannot be read";
    /// The file is valid YAML but not a policy: its top level is not a mapping, or none
    /// of its keys is a policy's (`namespace`, `clients`, `clientGroups`, `topicSpaces`,
    /// `permissionBindings`, `caCertificates`, `tests`) or a misspelling of one. Like a
    /// syntax error, every command exits 2 on it: the command could not run.
    NotAPolicy = "TG011", Error, "not a policy";
    /// A permission binding names a client group that does not exist.
    UnknownGroup = "TG101", Error, "unknown client group";
    /// A permission binding names a topic space that does not exist.
    UnknownTopicSpace = "TG102", Error, "unknown topic space";
    /// A client group query does not parse.
    QuerySyntax = "TG201", Error, "query syntax error";
    /// A topic template, topic or filter does not parse: `#` not last, a wildcard
    /// inside a level (`sensors/a+`), an unterminated variable.
    TemplateSyntax = "TG301", Error, "topic template syntax error";
    /// A template variable other than `$<client.authenticationName>` and
    /// `$<client.attributes.KEY>`.
    UnknownVariable = "TG302", Error, "unknown template variable";
    /// A template whose first level starts with `$`: such topics are reserved for the broker.
    ReservedTemplate = "TG303", Error, "template in the reserved `$` space";
    /// A template variable with spaces inside its brackets, such as
    /// `$< client.authenticationName >` or `${ client.attributes.line }`. It is no
    /// variable: a variable is exactly `$<client.authenticationName>` or
    /// `$<client.attributes.KEY>` (or the same inside `${...}`), with nothing between
    /// the brackets and the name. Reading it as a variable would guess at what the
    /// author meant, and reading it as literal text would grant a level nobody
    /// publishes to; so the template is refused, and the fix is to remove the spaces.
    SpacedVariable = "TG307", Error, "spaces inside a template variable";
    /// See `src/analysis/rules/query_type.rs`.
    QueryType = "TG202", Error, "query compares values of different types";
    /// See `src/analysis/rules/unknown_attribute.rs`.
    UnknownAttribute = "TG203", Warning, "query names an attribute no client has";
    /// See `src/analysis/rules/authentication_name_case.rs`.
    AuthenticationNameCase = "TG204", Warning, "authentication name matched only ignoring case";
    /// See `src/analysis/rules/duplicate_template.rs`.
    DuplicateTemplate = "TG304", Warning, "duplicate topic template";
    /// See `src/analysis/rules/variable_without_value.rs`.
    VariableWithoutValue = "TG305", Warning, "template variable some members cannot fill";
    /// See `src/analysis/rules/unsafe_value.rs`.
    UnsafeValue = "TG306", Error, "client value would change a template's shape";
    /// See `src/analysis/rules/will_not_permitted.rs`.
    WillNotPermitted = "TG401", Error, "will topic the client may not publish";
    /// See `src/analysis/rules/will_topic_wildcard.rs`.
    WillTopicWildcard = "TG402", Error, "will topic with wildcards";
    /// See `src/analysis/rules/will_unheard.rs`.
    WillUnheard = "TG403", Warning, "will topic nobody may subscribe to";
    /// See `src/analysis/rules/will_forgeable.rs`.
    WillForgeable = "TG404", Warning, "will topic other clients may publish";
    /// See `src/analysis/rules/will_event_grid.rs`.
    WillEventGrid = "TG405", Warning, "will setting Event Grid does not accept";
    /// See `src/analysis/rules/intent_not_granted.rs`.
    IntentNotGranted = "TG501", Error, "declared intent the policy does not grant";
    /// See `src/analysis/rules/empty_group.rs`.
    EmptyGroup = "TG601", Warning, "client group matches no client";
    /// See `src/analysis/rules/unbound_group.rs`.
    UnboundGroup = "TG602", Warning, "client group bound nowhere";
    /// See `src/analysis/rules/unbound_topic_space.rs`.
    UnboundTopicSpace = "TG603", Warning, "topic space bound nowhere";
    /// See `src/analysis/rules/client_without_permission.rs`.
    ClientWithoutPermission = "TG604", Warning, "client with no permission at all";
    /// See `src/analysis/rules/redundant_binding.rs`.
    RedundantBinding = "TG605", Warning, "binding made redundant by another";
    /// See `src/analysis/rules/event_grid_limit.rs`.
    EventGridLimit = "TG701", Warning, "beyond an Event Grid limit";
    /// See `src/analysis/rules/event_grid_name.rs`.
    EventGridName = "TG702", Warning, "name Event Grid does not accept";
    /// See `src/analysis/rules/event_grid_template.rs`.
    EventGridTemplate = "TG703", Warning, "topic template Event Grid does not accept";
    /// See `src/analysis/rules/event_grid_default_scheme.rs`.
    EventGridDefaultScheme = "TG704", Warning, "client Event Grid authenticates by certificate subject";
}
