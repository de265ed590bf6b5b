//! Writing a kubeconfig as YAML that kubectl reads back exactly.
//!
//! serde_yaml follows YAML 1.2 and writes strings such as `yes`, `on`, `n` or `1_000` without
//! quotes; kubectl's YAML library follows YAML 1.1 and reads those as booleans and numbers, so
//! an exec plugin's `value: "yes"` would come back as `true` (or break the file). This writer
//! leaves a string unquoted only when it is unambiguous in both versions, and double-quotes
//! everything else. Layout follows kubectl's: block style, two-space indent, lists not indented
//! under their key.

use std::fmt::Write;

use serde_yaml::{Mapping, Value};

/// The YAML text of a kubeconfig document.
pub(super) fn to_yaml(root: &Mapping) -> String {
    let mut out = String::new();
    if root.is_empty() {
        out.push_str("{}\n");
    } else {
        mapping(&mut out, root, 0, false);
    }
    out
}

/// Writes `map`'s entries at `indent`; with `after_dash` the first key goes on the current line
/// (right after a list's `- `).
fn mapping(out: &mut String, map: &Mapping, indent: usize, after_dash: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !after_dash {
            push_indent(out, indent);
        }
        match key {
            Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => flow(out, key),
            _ => scalar(out, key),
        }
        out.push(':');
        match value {
            Value::Mapping(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, indent + 2, false);
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push('\n');
                sequence(out, s, indent, false);
            }
            _ => {
                out.push(' ');
                flow(out, value);
                out.push('\n');
            }
        }
    }
}

/// Like `mapping`, for list items.
fn sequence(out: &mut String, items: &[Value], indent: usize, after_dash: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !after_dash {
            push_indent(out, indent);
        }
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str("- ");
                mapping(out, m, indent + 2, true);
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push_str("- ");
                sequence(out, s, indent + 2, true);
            }
            _ => {
                out.push_str("- ");
                flow(out, item);
                out.push('\n');
            }
        }
    }
}

/// A value on one line: scalars as such, collections in `{}`/`[]` with every string quoted
/// (plain scalars have extra restrictions inside brackets).
fn flow(out: &mut String, value: &Value) {
    match value {
        Value::Mapping(m) => {
            out.push('{');
            for (i, (key, value)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow_item(out, key);
                out.push_str(": ");
                flow_item(out, value);
            }
            out.push('}');
        }
        Value::Sequence(s) => {
            out.push('[');
            for (i, item) in s.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow_item(out, item);
            }
            out.push(']');
        }
        Value::Tagged(tagged) => {
            write!(out, "{} ", tagged.tag).expect("writing to a String");
            flow(out, &tagged.value);
        }
        _ => scalar(out, value),
    }
}

fn flow_item(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => double_quoted(out, s),
        _ => flow(out, value),
    }
}

fn scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write!(out, "{n}").expect("writing to a String"),
        Value::String(s) if is_plain_safe(s) => out.push_str(s),
        Value::String(s) => double_quoted(out, s),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => flow(out, value),
    }
}

/// Whether `s` reads back as the same string unquoted, under YAML 1.1 and 1.2 alike: it starts
/// with a letter, `/` or a command line flag's `-`/`--` and a letter (so it is no number,
/// indicator or `.inf`), holds only characters found in names, flags, URLs and base64, and is
/// no boolean or null word.
fn is_plain_safe(s: &str) -> bool {
    const AMBIGUOUS_WORDS: [&str; 9] =
        ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    let flag_name = s.strip_prefix("--").or_else(|| s.strip_prefix('-'));
    let starts_well = match flag_name {
        Some(name) => name.starts_with(|c: char| c.is_ascii_alphabetic()),
        None => s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/'),
    };
    starts_well
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+=".contains(c))
        && !s.ends_with(':')
        && !AMBIGUOUS_WORDS
            .iter()
            .any(|word| s.eq_ignore_ascii_case(word))
}

/// A YAML double-quoted scalar; characters YAML does not allow raw (controls, line separators,
/// BOM) are escaped.
fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
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
                write!(out, "\\u{:04x}", c as u32).expect("writing to a String")
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_indent(out: &mut String, indent: usize) {
    out.push_str(&" ".repeat(indent));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(yaml: &str) -> (String, Value) {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let text = to_yaml(value.as_mapping().unwrap());
        let back: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("wrote invalid YAML ({e}):\n{text}"));
        assert_eq!(back, value, "{text}");
        (text, value)
    }

    #[test]
    fn writes_kubectl_layout() {
        let yaml = "\
apiVersion: v1
clusters:
- cluster:
    server: https://127.0.0.1:6443
  name: kindred-demo
preferences: {}
users:
- name: kindred-demo
  user:
    exec:
      args:
      - token
      - --cluster=demo
      env: null
      nested:
      - - a
        - b
      - []
";
        let (text, _) = round_trip(yaml);
        assert_eq!(text, yaml);
    }

    #[test]
    fn strings_yaml_1_1_would_misread_are_quoted() {
        let ambiguous = [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "null",
            "~",
            "",
            "1_000",
            "0755",
            "0x1f",
            "1:20",
            "2024-05-01",
            ".inf",
            "-1",
            "+1",
            "1e3",
        ];
        for s in ambiguous {
            let mut map = Mapping::new();
            map.insert("value".into(), s.into());
            let text = to_yaml(&map);
            assert!(text.starts_with("value: \""), "{s:?} written as {text}");
            let back: Value = serde_yaml::from_str(&text).unwrap();
            assert_eq!(back["value"], s);
        }
    }

    #[test]
    fn awkward_strings_survive() {
        let strings = [
            "a: b",
            "#x",
            "x #y",
            "-x",
            "- x",
            "trailing:",
            " lead",
            "trail ",
            "multi\nline\n",
            "tab\there",
            "quote\"s",
            "back\\slash",
            "'",
            "|",
            ">",
            "@x",
            "*x",
            "&x",
            "!x",
            "%x",
            "[a]",
            "{a}",
            "a,b",
            "ünï",
            "line\u{2028}sep",
            "bom\u{feff}",
            "nul\u{0}",
            "del\u{7f}",
            "https://h:1/p?q=1&r=2",
        ];
        for s in strings {
            let mut map = Mapping::new();
            map.insert(s.into(), s.into());
            map.insert("list".into(), Value::Sequence(vec![s.into()]));
            let text = to_yaml(&map);
            let back: Value = serde_yaml::from_str(&text)
                .unwrap_or_else(|e| panic!("{s:?}: invalid YAML ({e}):\n{text}"));
            assert_eq!(back, Value::Mapping(map), "{text}");
        }
    }

    #[test]
    fn plain_names_urls_and_base64_stay_unquoted() {
        for s in [
            "kindred-demo",
            "https://127.0.0.1:38211",
            "LS0tLS1CRUdJTi+/==",
            "client.authentication.k8s.io/v1beta1",
            "kubernetes-admin@kubernetes",
            "/usr/local/bin/helper",
            "--cluster=demo",
            "-v",
        ] {
            assert!(is_plain_safe(s), "{s}");
        }
    }

    #[test]
    fn scalars_collections_and_tags_round_trip() {
        round_trip(
            "int: 3\nneg: -4\nfloat: 1.5\ninf: .inf\nbool: false\nnull: ~\n\
             empty_list: []\nempty_map: {}\nflow: {a: [1, 'x y']}\n3: numeric key\n\
             tagged: !thing {a: b}\n",
        );
    }
}
