//! Lowering: the DSL's statements to the spanned tree the YAML front end builds,
//! so that both forms share every schema check.

use super::super::node::{Key, Node, NodeKind};
use super::parse::Stmt;
use crate::diag::span::Span;
use crate::diag::{suggestion, Code, Diagnostic, Diagnostics};

/// Top-level keywords, and the YAML section each fills.
const TOP: &[(&str, &str)] = &[
    ("namespace", "namespace"),
    ("settings", "topicSpacesConfiguration"),
    ("client", "clients"),
    ("group", "clientGroups"),
    ("topicspace", "topicSpaces"),
    ("binding", "permissionBindings"),
    ("ca", "caCertificates"),
    ("test", "tests"),
];

fn map(entries: Vec<(Key, Node)>, span: Span) -> Node {
    Node {
        kind: NodeKind::Map(entries),
        span,
    }
}

/// A top-level section being filled: its key, its named resources, its tests.
type Section = (Key, Vec<(Key, Node)>, Vec<Node>);

pub(super) fn lower_top(stmts: Vec<Stmt>, diags: &mut Diagnostics) -> Node {
    let mut sections: Vec<Section> = Vec::new();
    let mut namespace: Option<(Key, Node)> = None;
    let mut settings: Option<(Key, Node)> = None;
    for s in stmts {
        let Some((_, section)) = TOP.iter().find(|(kw, _)| *kw == s.key.name) else {
            diags.push(
                Diagnostic::new(
                    Code::UnknownKey,
                    format!("unknown statement `{}`", s.key.name),
                )
                .at(s.key.span)
                .label("not a statement of a policy")
                .help(suggestion(&s.key.name, TOP.iter().map(|(k, _)| *k))),
            );
            continue;
        };
        if *section == "namespace" {
            match one_value(&s, diags) {
                Some(v) => {
                    namespace = Some((
                        Key {
                            name: "namespace".into(),
                            span: s.key.span,
                        },
                        v,
                    ))
                }
                None => continue,
            }
            continue;
        }
        if *section == "topicSpacesConfiguration" {
            // `settings { maximumSessionExpiryInHours 2 ... }`: one block, no name.
            extra_values(&s, &s.values, diags);
            let body = lower_block_of(&s, &[], diags);
            settings = Some((
                Key {
                    name: section.to_string(),
                    span: s.key.span,
                },
                body,
            ));
            continue;
        }
        let idx = match sections.iter().position(|(k, _, _)| k.name == *section) {
            Some(i) => i,
            None => {
                sections.push((
                    Key {
                        name: section.to_string(),
                        span: s.key.span,
                    },
                    Vec::new(),
                    Vec::new(),
                ));
                sections.len() - 1
            }
        };
        if *section == "tests" {
            if let Some(t) = lower_test(s, diags) {
                sections[idx].2.push(t);
            }
            continue;
        }
        let Some((name_key, rest)) = named(&s, diags) else {
            continue;
        };
        let body = match *section {
            "clients" => lower_client(&s, rest, diags),
            "topicSpaces" => lower_space(&s, rest, diags),
            "permissionBindings" => lower_binding(&s, rest, diags),
            _ => lower_block_of(&s, rest, diags),
        };
        sections[idx].1.push((name_key, body));
    }
    let mut entries = Vec::new();
    if let Some(ns) = namespace {
        entries.push(ns);
    }
    if let Some(settings) = settings {
        entries.push(settings);
    }
    for (key, named, tests) in sections {
        let span = key.span;
        let node = if key.name == "tests" {
            Node {
                kind: NodeKind::Seq(tests),
                span,
            }
        } else {
            map(named, span)
        };
        entries.push((key, node));
    }
    map(entries, Span::NONE)
}

/// The single value of `namespace NAME`-like statements.
fn one_value(s: &Stmt, diags: &mut Diagnostics) -> Option<Node> {
    if s.values.len() != 1 || s.block.is_some() {
        diags.push(
            Diagnostic::new(
                Code::InvalidValue,
                format!("`{}` takes one value", s.key.name),
            )
            .at(s.span)
            .help(format!("write `{} VALUE`", s.key.name)),
        );
        return None;
    }
    s.values.first().cloned()
}

/// `KEYWORD NAME { ... }`: the name as a key, and the values after it.
fn named<'a>(s: &'a Stmt, diags: &mut Diagnostics) -> Option<(Key, &'a [Node])> {
    let Some(first) = s.values.first() else {
        diags.push(
            Diagnostic::new(Code::MissingField, format!("`{}` needs a name", s.key.name))
                .at(s.key.span)
                .help(format!("write `{} NAME {{ ... }}`", s.key.name)),
        );
        return None;
    };
    let name = match &first.kind {
        NodeKind::Str(n) => n.clone(),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::BigInt(n) => n.clone(),
        other => {
            diags.push(
                Diagnostic::new(
                    Code::WrongType,
                    format!("a name must be a string, found {}", other.type_name()),
                )
                .at(first.span),
            );
            return None;
        }
    };
    Some((
        Key {
            name,
            span: first.span,
        },
        &s.values[1..],
    ))
}

fn extra_values(s: &Stmt, rest: &[Node], diags: &mut Diagnostics) {
    if let (Some(first), Some(last)) = (rest.first(), rest.last()) {
        diags.push(
            Diagnostic::new(
                Code::InvalidValue,
                format!("unexpected value after the name of `{}`", s.key.name),
            )
            .at(Span::new(first.span.start as usize, last.span.end as usize))
            .help(format!("write `{} NAME {{ ... }}`", s.key.name)),
        );
    }
}

/// A block of `key values...` statements as a mapping: one value stays a value,
/// several (or a list) become a list, a nested block a mapping.
fn block_map(stmts: &[Stmt], span: Span, rename: &[(&str, &str)]) -> Node {
    let mut entries: Vec<(Key, Node)> = Vec::new();
    for s in stmts {
        let name = rename
            .iter()
            .find(|(from, _)| *from == s.key.name)
            .map(|(_, to)| to.to_string())
            .unwrap_or_else(|| s.key.name.clone());
        entries.push((
            Key {
                name,
                span: s.key.span,
            },
            stmt_value(s),
        ));
    }
    map(entries, span)
}

fn stmt_value(s: &Stmt) -> Node {
    match (&s.values[..], &s.block) {
        ([], Some((inner, span))) => block_map(inner, *span, &[]),
        ([], None) => Node {
            kind: NodeKind::Null,
            span: s.key.span,
        },
        ([one], None) => one.clone(),
        (many, _) => Node {
            kind: NodeKind::Seq(many.to_vec()),
            span: Span::new(
                many[0].span.start as usize,
                many[many.len() - 1].span.end as usize,
            ),
        },
    }
}

fn lower_block_of(s: &Stmt, rest: &[Node], diags: &mut Diagnostics) -> Node {
    extra_values(s, rest, diags);
    match &s.block {
        Some((inner, span)) => block_map(inner, *span, &[]),
        None => map(Vec::new(), s.span),
    }
}

fn lower_client(s: &Stmt, rest: &[Node], diags: &mut Diagnostics) -> Node {
    extra_values(s, rest, diags);
    let Some((inner, span)) = &s.block else {
        return map(Vec::new(), s.span);
    };
    let mut entries = Vec::new();
    for st in inner {
        let value = match st.key.name.as_str() {
            "will" if st.block.is_none() => lower_will(st, diags),
            "publishes" | "subscribes" | "allowedThumbprints" => match &st.values[..] {
                [one] if matches!(one.kind, NodeKind::Seq(_)) => one.clone(),
                values => Node {
                    kind: NodeKind::Seq(values.to_vec()),
                    span: st.span,
                },
            },
            _ => stmt_value(st),
        };
        entries.push((st.key.clone(), value));
    }
    map(entries, *span)
}

/// `will TOPIC [qos N] [retain BOOL] [delay SECONDS]`
fn lower_will(s: &Stmt, diags: &mut Diagnostics) -> Node {
    let mut entries = Vec::new();
    let mut values = s.values.iter();
    if let Some(topic) = values.next() {
        entries.push((
            Key {
                name: "topic".into(),
                span: topic.span,
            },
            topic.clone(),
        ));
    }
    while let Some(v) = values.next() {
        let name = match &v.kind {
            NodeKind::Str(w) if ["qos", "retain", "delay"].contains(&w.as_str()) => w.clone(),
            _ => {
                diags.push(
                    Diagnostic::new(Code::InvalidValue, "unexpected value in `will`")
                        .at(v.span)
                        .help("write `will TOPIC qos 1 retain false delay 5`; each setting is optional"),
                );
                continue;
            }
        };
        let key = if name == "delay" {
            "delaySeconds".to_string()
        } else {
            name.clone()
        };
        // `retain` alone means `retain true`.
        let bare_retain = name == "retain"
            && !values
                .clone()
                .next()
                .is_some_and(|n| matches!(n.kind, NodeKind::Bool(_)));
        if bare_retain {
            let yes = Node {
                kind: NodeKind::Bool(true),
                span: v.span,
            };
            entries.push((
                Key {
                    name: key,
                    span: v.span,
                },
                yes,
            ));
            continue;
        }
        match values.next() {
            Some(arg) => entries.push((
                Key {
                    name: key,
                    span: v.span,
                },
                arg.clone(),
            )),
            None => diags.push(
                Diagnostic::new(Code::MissingField, format!("`{name}` needs a value")).at(v.span),
            ),
        }
    }
    map(entries, s.span)
}

fn lower_space(s: &Stmt, rest: &[Node], diags: &mut Diagnostics) -> Node {
    extra_values(s, rest, diags);
    let Some((inner, span)) = &s.block else {
        return map(Vec::new(), s.span);
    };
    let mut templates: Vec<Node> = Vec::new();
    let mut templates_span: Option<Span> = None;
    let mut entries = Vec::new();
    for st in inner {
        match st.key.name.as_str() {
            "template" | "topicTemplates" => {
                templates_span.get_or_insert(st.key.span);
                for v in &st.values {
                    match &v.kind {
                        NodeKind::Seq(items) => templates.extend(items.iter().cloned()),
                        _ => templates.push(v.clone()),
                    }
                }
            }
            _ => entries.push((st.key.clone(), stmt_value(st))),
        }
    }
    if let Some(ts) = templates_span {
        entries.insert(
            0,
            (
                Key {
                    name: "topicTemplates".into(),
                    span: ts,
                },
                Node {
                    kind: NodeKind::Seq(templates),
                    span: ts,
                },
            ),
        );
    }
    map(entries, *span)
}

fn lower_binding(s: &Stmt, rest: &[Node], diags: &mut Diagnostics) -> Node {
    extra_values(s, rest, diags);
    match &s.block {
        Some((inner, span)) => block_map(
            inner,
            *span,
            &[("group", "clientGroup"), ("topicspace", "topicSpace")],
        ),
        None => map(Vec::new(), s.span),
    }
}

/// `test CLIENT (publish|subscribe|receive) TOPIC (allow|deny) [grantedBy BINDING]`,
/// `test CLIENT connect [will TOPIC] (allow|deny)`, or a block of YAML test fields.
fn lower_test(s: Stmt, diags: &mut Diagnostics) -> Option<Node> {
    if let Some((inner, span)) = &s.block {
        let mut node = block_map(inner, *span, &[]);
        if let (NodeKind::Map(entries), Some(client)) = (&mut node.kind, s.values.first()) {
            entries.insert(
                0,
                (
                    Key {
                        name: "client".into(),
                        span: client.span,
                    },
                    client.clone(),
                ),
            );
        }
        return Some(node);
    }
    let usage = "write `test CLIENT publish TOPIC allow`, `test CLIENT subscribe FILTER deny` or `test CLIENT connect will TOPIC allow`";
    let word = |n: &Node| match &n.kind {
        NodeKind::Str(w) => Some(w.clone()),
        _ => None,
    };
    let mut values = s.values.iter();
    let (Some(client), Some(action)) = (values.next(), values.next()) else {
        diags.push(
            Diagnostic::new(
                Code::MissingField,
                "a test needs a client, an action and an expectation",
            )
            .at(s.span)
            .help(usage),
        );
        return None;
    };
    let mut entries = vec![(
        Key {
            name: "client".into(),
            span: client.span,
        },
        client.clone(),
    )];
    let action_name = word(action).unwrap_or_default();
    match action_name.as_str() {
        "publish" | "subscribe" | "receive" => {
            let Some(topic) = values.next() else {
                diags.push(
                    Diagnostic::new(Code::MissingField, format!("`{action_name}` needs a topic"))
                        .at(action.span)
                        .help(usage),
                );
                return None;
            };
            entries.push((
                Key {
                    name: action_name.clone(),
                    span: action.span,
                },
                topic.clone(),
            ));
        }
        "connect" => {
            let mut rest: Vec<&Node> = values.clone().collect();
            let will = if rest.first().and_then(|n| word(n)).as_deref() == Some("will") {
                let w = rest.get(1).copied().cloned();
                values.next();
                values.next();
                rest.drain(..2.min(rest.len()));
                w
            } else {
                None
            };
            let node = match will {
                Some(w) => map(
                    vec![(
                        Key {
                            name: "will".into(),
                            span: w.span,
                        },
                        w,
                    )],
                    action.span,
                ),
                None => Node {
                    kind: NodeKind::Null,
                    span: action.span,
                },
            };
            entries.push((
                Key {
                    name: "connect".into(),
                    span: action.span,
                },
                node,
            ));
        }
        _ => {
            diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    format!("unknown test action `{action_name}`"),
                )
                .at(action.span)
                .help(suggestion(
                    &action_name,
                    ["publish", "subscribe", "receive", "connect"],
                )),
            );
            return None;
        }
    }
    match values.next() {
        Some(expect) => entries.push((
            Key {
                name: "expect".into(),
                span: expect.span,
            },
            expect.clone(),
        )),
        None => {
            diags.push(
                Diagnostic::new(Code::MissingField, "test has no expectation")
                    .at(s.span)
                    .help("end the test with `allow` or `deny`"),
            );
            return None;
        }
    }
    while let Some(v) = values.next() {
        match (word(v).as_deref(), values.next()) {
            (Some("grantedBy"), Some(b)) => entries.push((
                Key {
                    name: "grantedBy".into(),
                    span: v.span,
                },
                b.clone(),
            )),
            _ => {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        "unexpected value after the test's expectation",
                    )
                    .at(v.span)
                    .help("only `grantedBy BINDING` may follow"),
                );
                break;
            }
        }
    }
    Some(map(entries, s.span))
}
