//! Deterministic YAML emission in block style.
//!
//! We write YAML by hand rather than through `serde_yaml::to_string` for two reasons: secrets and
//! keys must always be double-quoted (livekit-server drops a secret that YAML reads as a number
//! or a boolean, and `serde_yaml` only quotes when *it* thinks a string is ambiguous), and the
//! emission must be total — [`crate::render::render`] cannot fail. Strings are written plain only
//! when they are unmistakably strings to every YAML 1.1 and 1.2 reader; otherwise double-quoted.

use std::fmt::Write as _;

use serde_yaml::{Mapping, Value};

/// `text` as a YAML double-quoted scalar. Every character survives a round trip: `"` and `\`
/// are escaped, and so is every character YAML does not allow to appear unescaped.
pub(crate) fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                // Writing into a `String` cannot fail.
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when `text` can be written as a plain scalar and still be read back as this string by
/// every YAML reader (YAML 1.1 booleans such as `yes`/`off` and every null spelling excluded).
fn plain_is_safe(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')) {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
    )
}

/// A string as a scalar: plain when that is unambiguous, double-quoted otherwise.
pub(crate) fn string_scalar(text: &str) -> String {
    if plain_is_safe(text) {
        text.to_owned()
    } else {
        double_quoted(text)
    }
}

/// The scalar text of a scalar value. Collections have no scalar form; the overlay validation
/// refuses them as mapping keys, so that branch is never taken for keys.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s),
        Value::Tagged(tagged) => scalar(&tagged.value),
        Value::Sequence(_) | Value::Mapping(_) => double_quoted(""),
    }
}

fn indent(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

/// Write the entries of `map` as a block mapping at `width` spaces of indentation.
pub(crate) fn write_mapping(out: &mut String, map: &Mapping, width: usize) {
    write_mapping_inner(out, map, width, false);
}

/// `first_inline`: the first key follows a `- ` already written on the current line.
fn write_mapping_inner(out: &mut String, map: &Mapping, width: usize, first_inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i == 0 && first_inline {
            out.push(' ');
        } else {
            indent(out, width);
        }
        out.push_str(&scalar(key));
        out.push(':');
        write_node_after_indicator(out, value, width);
    }
}

/// Write `value` after a `key:` or `-` indicator at indentation `width`.
fn write_node_after_indicator(out: &mut String, value: &Value, width: usize) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            out.push('\n');
            write_mapping_inner(out, map, width + 2, false);
        }
        Value::Sequence(seq) if !seq.is_empty() => {
            out.push('\n');
            write_sequence(out, seq, width + 2);
        }
        Value::Mapping(_) => out.push_str(" {}\n"),
        Value::Sequence(_) => out.push_str(" []\n"),
        Value::Tagged(tagged) => write_node_after_indicator(out, &tagged.value, width),
        scalar_value => {
            out.push(' ');
            out.push_str(&scalar(scalar_value));
            out.push('\n');
        }
    }
}

fn write_sequence(out: &mut String, seq: &[Value], width: usize) {
    for item in seq {
        indent(out, width);
        out.push('-');
        match item {
            Value::Mapping(map) if !map.is_empty() => {
                write_mapping_inner(out, map, width + 2, true);
            }
            other => write_node_after_indicator(out, other, width),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let mut map = Mapping::new();
        map.insert(Value::from("k"), value.clone());
        let mut out = String::new();
        write_mapping(&mut out, &map, 0);
        let back: Mapping = serde_yaml::from_str(&out).unwrap();
        back.get("k").cloned().unwrap()
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_survive() {
        for text in [
            "12345678901234567890123456789012345",
            "true",
            "True",
            "no",
            "off",
            "y",
            "null",
            "~",
            "",
            "0x10",
            "1e5",
            ".inf",
            "-",
            "a: b",
            "# not a comment",
            "quote\"back\\slash",
            "line\nbreak\ttab\r",
            "\u{1}\u{7f}\u{85}\u{2028}\u{feff}",
            "ключ",
        ] {
            let value = Value::from(text);
            assert_eq!(round_trip(&value), value, "{text:?}");
        }
        assert_eq!(string_scalar("info"), "info");
        assert_eq!(string_scalar("true"), "\"true\"");
        assert_eq!(string_scalar("123"), "\"123\"");
    }

    #[test]
    fn nested_collections_survive() {
        let value: Value = serde_yaml::from_str(
            "a: [1, -2, 3.5, {x: 1, y: [true, null]}, [], {}, [[1, 2], [3]]]\nb: {}\nc: {d: {e: f}}\n",
        )
        .unwrap();
        assert_eq!(round_trip(&value), value);
    }
}
