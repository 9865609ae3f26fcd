//! The small subset of ARM template expressions an Event Grid template needs to
//! be read: `parameters()`, `variables()`, `format()` and `concat()` over string and
//! integer literals. Anything else is an [`ExprError`] naming what is not supported,
//! never a guess.
//!
//! A JSON string is an expression when it starts with `[` and ends with `]`; `[[`
//! escapes a literal leading bracket (ARM's rule).

use serde_json::{Map, Value};
use thiserror::Error;

/// Expressions nest at most this deep (calls inside calls, variables naming
/// variables): enough for any template, and a bound on hostile input.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    #[error("ARM function `{0}()` is not supported here (only parameters, variables, format and concat)")]
    Unsupported(String),
    #[error("the template has no parameter `{0}` with a value (give it with --parameters FILE)")]
    UnknownParameter(String),
    #[error("the template has no variable `{0}`")]
    UnknownVariable(String),
    #[error("invalid expression `{text}`: {why}")]
    Syntax { text: String, why: String },
    #[error("`{function}()` {why}")]
    Arguments { function: String, why: String },
    #[error("expressions nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Parameter values and variables of the template being read.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub parameters: Map<String, Value>,
    pub variables: Map<String, Value>,
}

/// A JSON string of a template as the value ARM would give it.
pub fn eval_string(s: &str, scope: &Scope) -> Result<Value, ExprError> {
    eval_string_at(s, scope, 0)
}

fn eval_string_at(s: &str, scope: &Scope, depth: usize) -> Result<Value, ExprError> {
    if let Some(rest) = s.strip_prefix("[[") {
        return Ok(Value::String(format!("[{rest}")));
    }
    match s.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(expr) => {
            let mut p = Parser {
                text: expr,
                pos: 0,
                scope,
                depth,
            };
            let v = p.expr()?;
            p.skip_ws();
            if p.pos != expr.len() {
                return Err(p.error("unexpected text after the expression"));
            }
            Ok(v)
        }
        None => Ok(Value::String(s.to_string())),
    }
}

/// Every string inside `v` evaluated, without recursion over the JSON's depth.
pub fn eval_value(v: &Value, scope: &Scope) -> Result<Value, ExprError> {
    // A work list of paths to the values still to visit.
    let mut out = v.clone();
    let mut paths: Vec<Vec<PathStep>> = vec![Vec::new()];
    while let Some(path) = paths.pop() {
        let Some(slot) = slot_mut(&mut out, &path) else {
            continue;
        };
        match slot {
            Value::String(s) => {
                let value = eval_string(s, scope)?;
                *slot = value;
            }
            Value::Array(items) => {
                for i in 0..items.len() {
                    let mut p = path.clone();
                    p.push(PathStep::Index(i));
                    paths.push(p);
                }
            }
            Value::Object(map) => {
                for k in map.keys() {
                    let mut p = path.clone();
                    p.push(PathStep::Key(k.clone()));
                    paths.push(p);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum PathStep {
    Index(usize),
    Key(String),
}

fn slot_mut<'a>(root: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let mut cur = root;
    for step in path {
        cur = match step {
            PathStep::Index(i) => cur.get_mut(*i)?,
            PathStep::Key(k) => cur.get_mut(k.as_str())?,
        };
    }
    Some(cur)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    scope: &'a Scope,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, why: &str) -> ExprError {
        ExprError::Syntax {
            text: self.text.to_string(),
            why: format!("{why} at column {}", self.pos + 1),
        }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn expr(&mut self) -> Result<Value, ExprError> {
        self.skip_ws();
        match self.peek() {
            Some('\'') => self.string().map(Value::String),
            Some(c) if c == '-' || c.is_ascii_digit() => self.integer(),
            Some(c) if c.is_ascii_alphabetic() => self.call(),
            _ => Err(self.error("expected a string, an integer or a function call")),
        }
    }

    fn string(&mut self) -> Result<String, ExprError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find('\'') else {
                return Err(self.error("unterminated string"));
            };
            out.push_str(&rest[..i]);
            self.pos += i + 1;
            if self.text[self.pos..].starts_with('\'') {
                out.push('\''); // `''` is a quote
                self.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }

    fn integer(&mut self) -> Result<Value, ExprError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.text[start..self.pos]
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| self.error("invalid integer"))
    }

    fn call(&mut self) -> Result<Value, ExprError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.pos += 1;
        }
        let name = self.text[start..self.pos].to_string();
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error("expected `(`"));
        }
        let known = ["parameters", "variables", "format", "concat"];
        let lower = name.to_ascii_lowercase();
        if !known.contains(&lower.as_str()) {
            return Err(ExprError::Unsupported(name));
        }
        if self.depth + 1 > MAX_DEPTH {
            return Err(ExprError::TooDeep);
        }
        self.depth += 1;
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.expr()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `)`")),
                }
            }
        }
        self.skip_ws();
        if matches!(self.peek(), Some('.') | Some('[')) {
            return Err(self.error("property and index access are not supported"));
        }
        let v = self.apply(&lower, args);
        self.depth -= 1;
        v
    }

    fn apply(&self, function: &str, args: Vec<Value>) -> Result<Value, ExprError> {
        let arguments = |why: &str| ExprError::Arguments {
            function: function.to_string(),
            why: why.to_string(),
        };
        match function {
            "parameters" | "variables" => {
                let [Value::String(name)] = &args[..] else {
                    return Err(arguments("takes one string, the name"));
                };
                if function == "parameters" {
                    let v = self
                        .scope
                        .parameters
                        .get(name)
                        .ok_or_else(|| ExprError::UnknownParameter(name.clone()))?;
                    Ok(v.clone())
                } else {
                    let v = self
                        .scope
                        .variables
                        .get(name)
                        .ok_or_else(|| ExprError::UnknownVariable(name.clone()))?;
                    // A variable's value may itself be an expression.
                    match v {
                        Value::String(s) => eval_string_at(s, self.scope, self.depth),
                        other => Ok(other.clone()),
                    }
                }
            }
            "concat" => {
                let mut out = String::new();
                for a in &args {
                    out.push_str(
                        &text_of(a).ok_or_else(|| arguments("joins strings and integers only"))?,
                    );
                }
                Ok(Value::String(out))
            }
            "format" => {
                let Some((Value::String(pattern), rest)) = args.split_first() else {
                    return Err(arguments("takes a format string first"));
                };
                let values: Vec<String> = rest
                    .iter()
                    .map(|a| {
                        text_of(a).ok_or_else(|| arguments("formats strings and integers only"))
                    })
                    .collect::<Result<_, _>>()?;
                format_pattern(pattern, &values)
                    .map(Value::String)
                    .map_err(|why| arguments(&why))
            }
            other => Err(ExprError::Unsupported(other.to_string())),
        }
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// .NET composite formatting as `format()` does it: `{0}` placeholders, `{{`/`}}`.
fn format_pattern(pattern: &str, values: &[String]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut index = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(d) if d.is_ascii_digit() => index.push(d),
                        _ => return Err(format!("has an invalid placeholder in `{pattern}`")),
                    }
                }
                let i: usize = index
                    .parse()
                    .map_err(|_| format!("has an invalid placeholder in `{pattern}`"))?;
                out.push_str(
                    values
                        .get(i)
                        .ok_or_else(|| format!("has no argument {i} for `{pattern}`"))?,
                );
            }
            '}' => return Err(format!("has an unmatched `}}` in `{pattern}`")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.parameters
            .insert("namespaceName".into(), json!("factory-ns"));
        s.variables
            .insert("prefix".into(), json!("[concat('sen', 'sor')]"));
        s
    }

    #[test]
    fn evaluates_the_subset_event_grid_templates_use() {
        let s = scope();
        assert_eq!(
            eval_string(
                "[format('{0}/{1}', parameters('namespaceName'), 'sensor-01')]",
                &s
            ),
            Ok(json!("factory-ns/sensor-01"))
        );
        assert_eq!(
            eval_string(
                "[concat(parameters('namespaceName'), '/', variables('prefix'), 1)]",
                &s
            ),
            Ok(json!("factory-ns/sensor1"))
        );
        assert_eq!(eval_string("[[literal]", &s), Ok(json!("[literal]")));
        assert_eq!(eval_string("plain ${x}", &s), Ok(json!("plain ${x}")));
        assert_eq!(eval_string("['it''s']", &s), Ok(json!("it's")));
        assert_eq!(
            eval_string("[format('{{0}}{0}', 'x')]", &s),
            Ok(json!("{0}x"))
        );
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        let s = scope();
        assert_eq!(
            eval_string("[resourceGroup().location]", &s),
            Err(ExprError::Unsupported("resourceGroup".into()))
        );
        assert_eq!(
            eval_string("[parameters('missing')]", &s),
            Err(ExprError::UnknownParameter("missing".into()))
        );
        assert!(matches!(
            eval_string("[format('{1}', 'x')]", &s),
            Err(ExprError::Arguments { .. })
        ));
        assert!(matches!(
            eval_string("[concat('a']", &s),
            Err(ExprError::Syntax { .. })
        ));
        // Without the closing bracket it is no expression at all, but text.
        assert_eq!(eval_string("[concat('a'", &s), Ok(json!("[concat('a'")));
        assert!(matches!(
            eval_string("[parameters('namespaceName').x]", &s),
            Err(ExprError::Syntax { .. })
        ));
        let deep = format!("[{}'x'{}]", "concat(".repeat(100), ")".repeat(100));
        assert_eq!(eval_string(&deep, &s), Err(ExprError::TooDeep));
        // A variable naming itself ends at the depth bound, not in a stack overflow.
        let mut looping = Scope::default();
        looping
            .variables
            .insert("v".into(), json!("[variables('v')]"));
        assert_eq!(
            eval_string("[variables('v')]", &looping),
            Err(ExprError::TooDeep)
        );
    }

    #[test]
    fn evaluates_every_string_of_a_value() {
        let v = json!({ "a": ["[parameters('namespaceName')]", 1, { "b": "[[x]" }] });
        assert_eq!(
            eval_value(&v, &scope()),
            Ok(json!({ "a": ["factory-ns", 1, { "b": "[x]" }] }))
        );
    }
}
