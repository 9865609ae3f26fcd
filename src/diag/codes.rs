//! The registry of diagnostic codes. Every finding topicgate reports has one stable
//! code here; `docs/rules.md` documents them.

use serde::Serialize;

use super::Severity;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $sev:ident, $summary:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
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
            /// The kebab-case name of the rule.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => stringify!($variant),)* }
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
    /// A permission binding names a client group that does not exist.
    UnknownGroup = "TG101", Error, "unknown client group";
    /// A permission binding names a topic space that does not exist.
    UnknownTopicSpace = "TG102", Error, "unknown topic space";
    /// A client group query does not parse.
    QuerySyntax = "TG201", Error, "query syntax error";
    /// A topic template, topic or filter does not parse.
    TemplateSyntax = "TG301", Error, "topic template syntax error";
}
