//! Rendering diagnostics for people (miette's graphical report) and machines (JSON).

use super::span::SourceFile;
use super::{Diagnostic, Severity};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;
use std::fmt;

/// Lines longer than this are not shown as snippets.
const MAX_SNIPPET_LINE: usize = 400;

/// A diagnostic bound to its source file, in the shape miette renders.
struct Report<'a> {
    diag: &'a Diagnostic,
    source: &'a dyn SourceCode,
}

/// The source file as miette reads it, a few lines at a time: miette's own
/// `read_span` counts lines from the start of the text, which for a warning near the
/// end of a 100,000-client policy meant scanning megabytes per snippet. This hands it
/// only the lines around the span (found with the file's line index) and shifts the
/// answer back to file coordinates.
struct Lines<'a>(&'a SourceFile);

impl SourceCode for Lines<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let file = self.0;
        let (first, _) = file.line_col(span.offset());
        let (last, _) = file.line_col(span.offset() + span.len());
        // One spare line on each side, so that miette sees the same line ends it would
        // in the whole text.
        let first = first.saturating_sub(context_lines_before + 1).max(1);
        let start = file.offset_of(first, 1);
        let end = file.offset_of(last + context_lines_after + 2, 1);
        let window = file.text.get(start..end).unwrap_or("");
        let inner = SourceSpan::new((span.offset() - start).into(), span.len());
        let contents = window.read_span(&inner, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            file.name.clone(),
            contents.data(),
            SourceSpan::new(
                (contents.span().offset() + start).into(),
                contents.span().len(),
            ),
            contents.line() + first - 1,
            contents.column(),
            contents.line_count(),
        )))
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diag.span.map(|_| self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = self.diag.span.map(|s| {
            LabeledSpan::new_primary_with_span(self.diag.label.clone(), (s.start as usize, s.len()))
        });
        let related = self.diag.related.iter().map(|(s, text)| {
            LabeledSpan::new_with_span(Some(text.clone()), (s.start as usize, s.len()))
        });
        Some(Box::new(primary.into_iter().chain(related)))
    }
}

/// miette's graphical report of one diagnostic, without colours (stable for
/// snapshots and logs) unless `color` is set.
pub fn human(diag: &Diagnostic, file: &SourceFile, color: bool) -> String {
    // A snippet of a very long line (minified or hostile input) helps nobody: say where instead.
    if let Some(span) = diag.span {
        if file.line_len_at(span.start as usize) > MAX_SNIPPET_LINE {
            let (line, col) = file.line_col(span.start as usize);
            let mut short = diag.clone();
            short.span = None;
            short.related.clear();
            short.message = format!("{} (at {}:{line}:{col})", diag.message, file.name);
            return human(&short, file, color);
        }
    }
    render(diag, &Lines(file), color)
}

fn render(diag: &Diagnostic, source: &dyn SourceCode, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let report = Report { diag, source };
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!(
            "{}[{}]: {}\n",
            diag.severity.as_str(),
            diag.code.as_str(),
            diag.message
        );
    }
    out
}

/// The JSON shape of one diagnostic: lines and columns 1-based, pointing at the value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub help: Option<String>,
}

pub fn to_json(diag: &Diagnostic, file: &SourceFile) -> JsonDiagnostic {
    let span = diag.span.unwrap_or_default();
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    JsonDiagnostic {
        code: diag.code.as_str(),
        severity: diag.severity,
        message: diag.message.clone(),
        file: file.name.clone(),
        line,
        column,
        end_line,
        end_column,
        help: diag.help.clone(),
    }
}

/// Renders all diagnostics of a file for a terminal, errors first in file order.
pub fn human_all(diags: &[Diagnostic], file: &SourceFile, color: bool) -> String {
    super::report::sorted(diags)
        .into_iter()
        .map(|d| human(d, file, color))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::span::Span;
    use crate::diag::Code;
    use miette::NamedSource;

    /// Rendering from the lines around a span gives exactly what miette renders from
    /// the whole text, wherever the span is.
    #[test]
    fn snippets_from_a_window_match_snippets_from_the_whole_text() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "  client-{i}: {{ attributes: {{ floor: {} }} }} # ü\n",
                i % 7
            ));
        }
        text.push_str("last: line without newline");
        let file = SourceFile::new("big.yaml", text.clone());
        let whole = NamedSource::new("big.yaml", text.clone());
        let line = |n: usize| file.offset_of(n, 1);
        let spans = [
            Span::new(0, 0),
            Span::new(2, 10),
            Span::new(line(2) + 2, line(2) + 10),
            Span::new(line(1500) + 4, line(1500) + 12),
            Span::new(line(1500), line(1503) + 5),
            Span::new(line(3000) + 2, line(3001)),
            Span::new(line(3001), text.len()),
            Span::new(text.len(), text.len()),
        ];
        for span in spans {
            let mut diag = Diagnostic::new(Code::UnknownKey, "a finding")
                .at(span)
                .label("here");
            diag.related.push((
                Span::new(span.start as usize + 1, span.end as usize),
                "and here".into(),
            ));
            for color in [false, true] {
                assert_eq!(
                    human(&diag, &file, color),
                    render(&diag, &whole, color),
                    "{span:?}"
                );
            }
        }
    }
}
