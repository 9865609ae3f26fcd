//! Diagnostics: what every stage reports about a policy, with the code of the rule,
//! the span it is about, and a help line. Rendering lives in [`render`].

pub mod codes;
pub mod render;
pub mod report;
pub mod span;

pub use codes::Code;

use serde::Serialize;
use span::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One finding about a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// One line, lowercase, user input in backticks.
    pub message: String,
    /// The value the finding is about; `None` for findings about a whole file.
    pub span: Option<Span>,
    /// Text shown under the primary span.
    pub label: Option<String>,
    /// Other places that explain the finding (e.g. the binding that would grant it).
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// A finding with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            span: None,
            label: None,
            related: Vec::new(),
            help: None,
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn related(mut self, span: Span, text: impl Into<String>) -> Self {
        self.related.push((span, text.into()));
        self
    }
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// Marks a finding as a possible consequence of an earlier error (as rustc
    /// does): a note, not an error, printed after the causes. The verifier's
    /// findings about access are consequences when the front end left part of the
    /// policy out.
    pub fn as_consequence_of(mut self, cause: &Diagnostic) -> Self {
        self.severity = Severity::Info;
        self.message = format!(
            "{} (may follow from the earlier error {}; check again once it is fixed)",
            self.message,
            cause.code.as_str()
        );
        self
    }
    /// True for syntax and schema findings (`TG0xx`): the causes everything after
    /// them may follow from, printed first.
    pub fn is_schema(&self) -> bool {
        self.code.as_str() < "TG100"
    }
}

/// Diagnostics collected by one stage, in the order they were found.
pub type Diagnostics = Vec<Diagnostic>;

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// The closest candidate to `name`, for "did you mean" help.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `help: did you mean `x`?` when a candidate is close, else a list of what is valid.
pub fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match did_you_mean(name, candidates.clone()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => {
            let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
            if all.is_empty() {
                "none is defined".to_string()
            } else if all.len() > 12 {
                format!("expected one of {}, ...", all[..12].join(", "))
            } else {
                format!("expected one of {}", all.join(", "))
            }
        }
    }
}
