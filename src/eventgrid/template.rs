//! Topic templates in Event Grid's spelling, `${client.authenticationName}`, built
//! from the parsed template so that whatever spelling topicgate prints elsewhere,
//! Event Grid is always sent the one it reads (it takes `$<...>` literally).

use crate::topic::{Level, Segment, Template, Var};

/// The template as Event Grid writes it.
pub fn event_grid_text(t: &Template) -> String {
    let mut out = String::new();
    for (i, level) in t.levels.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        match level {
            Level::Hash => out.push('#'),
            Level::Plus => out.push('+'),
            Level::Literal(text) => out.push_str(text),
            Level::Pattern(segments) => {
                for s in segments {
                    match s {
                        Segment::Text(text) => out.push_str(text),
                        Segment::Var(Var::AuthenticationName) => {
                            out.push_str("${client.authenticationName}")
                        }
                        Segment::Var(Var::Attribute(k)) => {
                            out.push_str("${client.attributes.");
                            out.push_str(k);
                            out.push('}');
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_input_spellings_print_as_event_grid_reads_them() {
        for text in [
            "clients/$<client.authenticationName>/status",
            "clients/${client.authenticationName}/status",
        ] {
            let t = Template::parse(text).unwrap();
            assert_eq!(
                event_grid_text(&t),
                "clients/${client.authenticationName}/status"
            );
        }
        let t = Template::parse("m/$<client.attributes.line>.f1/+/#").unwrap();
        assert_eq!(event_grid_text(&t), "m/${client.attributes.line}.f1/+/#");
    }
}
