//! Source positions: every value of a policy remembers where it came from, so that
//! every diagnostic can point at the line and column it is about.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A byte range `[start, end)` in one source file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord,
)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end.max(start as usize)).unwrap_or(u32::MAX);
        Span { start, end }
    }
    /// An empty span, used for values that have no position (defaults, artifacts).
    pub const NONE: Span = Span { start: 0, end: 0 };
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// A sub-range of this span, given byte offsets relative to its start.
    /// Used to point inside a YAML string (e.g. a query column) when the string is
    /// written plainly in the file; see [`SourceFile::inner_span`].
    pub fn sub(&self, from: usize, to: usize) -> Span {
        let start = (self.start as usize + from).min(self.end as usize);
        let end = (self.start as usize + to).min(self.end as usize).max(start);
        Span::new(start, end)
    }
}

/// A value with the span it was read from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }
    /// A value that did not come from a file (a default).
    pub fn unspanned(value: T) -> Self {
        Sp {
            value,
            span: Span::NONE,
        }
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Sp<U> {
        Sp {
            value: f(self.value),
            span: self.span,
        }
    }
    pub fn as_ref(&self) -> Sp<&T> {
        Sp {
            value: &self.value,
            span: self.span,
        }
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    /// Spans never take part in equality: two policies mean the same whatever
    /// their layout.
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Sp<T> {}

impl<T: fmt::Display> fmt::Display for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// One policy source file: its name, its text, and the index of its line starts.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    /// Length in bytes of the line holding `offset`.
    pub fn line_len_at(&self, offset: usize) -> usize {
        let (line, _) = self.line_col(offset);
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        end - start
    }

    /// Byte offset of a 1-based line and character column.
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(col.saturating_sub(1))
            .map(|(i, _)| start + i)
            .unwrap_or(self.text.len())
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// Maps byte offsets inside a string value back to the file. When the value is
    /// written in the file exactly as it reads (plain or quoted without escapes), the
    /// inner offsets are exact; otherwise the whole value's span is returned.
    pub fn inner_span(&self, value_span: Span, value: &str, from: usize, to: usize) -> Span {
        let raw = self.slice(value_span);
        let offset = if raw.starts_with(value) {
            Some(0)
        } else if (raw.starts_with('\'') || raw.starts_with('"')) && raw[1..].starts_with(value) {
            Some(1)
        } else {
            None
        };
        match offset {
            Some(o) => {
                let from = (o + from).min(raw.len());
                let to = (o + to.max(from - o)).min(raw.len());
                Span::new(
                    value_span.start as usize + from,
                    value_span.start as usize + to.max(from),
                )
            }
            None => value_span,
        }
    }
}
