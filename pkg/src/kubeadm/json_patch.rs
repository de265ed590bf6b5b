//! JSON Patch (RFC 6902) on YAML values, with JSON Pointer paths (RFC 6901): all six
//! operations, on map keys and list indices (`-` for "after the last element").

use serde_yaml::Value;

/// Applies a list of operations in order; stops at the first that fails, naming it.
pub(crate) fn apply(document: &mut Value, operations: &[Value]) -> Result<(), String> {
    for (i, operation) in operations.iter().enumerate() {
        apply_one(document, operation).map_err(|e| {
            let op = operation.get("op").and_then(Value::as_str).unwrap_or("?");
            let path = operation.get("path").and_then(Value::as_str).unwrap_or("?");
            format!("operation {i} ({op} {path}): {e}")
        })?;
    }
    Ok(())
}

fn apply_one(document: &mut Value, operation: &Value) -> Result<(), String> {
    let field = |name: &str| {
        operation
            .get(name)
            .and_then(Value::as_str)
            .ok_or(format!("needs a string `{name}`"))
    };
    let value = || operation.get("value").cloned().ok_or("needs a `value`");
    let path = parse_pointer(field("path")?)?;
    match field("op")? {
        "add" => add(document, &path, value()?),
        "remove" => remove(document, &path).map(drop),
        "replace" => {
            let value = value()?;
            *get_mut(document, &path)? = value;
            Ok(())
        }
        "move" => {
            let from = parse_pointer(field("from")?)?;
            if path.len() > from.len() && path.starts_with(&from) {
                return Err("cannot move a value into itself".into());
            }
            let moved = remove(document, &from)?;
            add(document, &path, moved)
        }
        "copy" => {
            let from = parse_pointer(field("from")?)?;
            let copied = get_mut(document, &from)?.clone();
            add(document, &path, copied)
        }
        "test" => {
            let expected = value()?;
            let found = get_mut(document, &path)?;
            if *found == expected {
                Ok(())
            } else {
                Err(format!("found {found:?}, expected {expected:?}"))
            }
        }
        other => Err(format!(
            "unknown op \"{other}\"; use add, remove, replace, move, copy or test"
        )),
    }
}

/// `/a/b~1c/0` -> ["a", "b/c", "0"]; `` (the whole document) -> [].
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("path \"{pointer}\" must start with /"));
    };
    // ~1 first, so that "~01" becomes "~1" and not "/".
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn add(document: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *document = value;
        return Ok(());
    };
    match get_mut(document, parent)? {
        Value::Mapping(map) => {
            map.insert(Value::String(last.clone()), value);
            Ok(())
        }
        Value::Sequence(list) => {
            let index = if last == "-" {
                list.len()
            } else {
                index(last, list.len() + 1)?
            };
            list.insert(index, value);
            Ok(())
        }
        _ => Err(format!(
            "cannot add \"{last}\" to a value that is not a map or list"
        )),
    }
}

fn remove(document: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match get_mut(document, parent)? {
        Value::Mapping(map) => map
            .shift_remove(last.as_str())
            .ok_or_else(|| format!("no \"{last}\" to remove")),
        Value::Sequence(list) => {
            let index = index(last, list.len())?;
            Ok(list.remove(index))
        }
        _ => Err(format!("no \"{last}\" to remove")),
    }
}

/// The value at `path`, which must exist.
fn get_mut<'v>(document: &'v mut Value, path: &[String]) -> Result<&'v mut Value, String> {
    let mut current = document;
    for (depth, token) in path.iter().enumerate() {
        let missing = || format!("path /{} does not exist", path[..=depth].join("/"));
        current = match current {
            Value::Mapping(map) => map.get_mut(token.as_str()).ok_or_else(missing)?,
            Value::Sequence(list) => {
                let i = index(token, list.len()).map_err(|_| missing())?;
                &mut list[i]
            }
            _ => return Err(missing()),
        };
    }
    Ok(current)
}

/// A list index below `bound`: digits only, no leading zeros (RFC 6901).
fn index(token: &str, bound: usize) -> Result<usize, String> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return Err(format!("\"{token}\" is not a list index"));
    }
    match token.parse::<usize>() {
        Ok(i) if i < bound => Ok(i),
        _ => Err(format!("index {token} is out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn patched(document: &str, operations: &str) -> Result<Value, String> {
        let mut document = yaml(document);
        let operations = yaml(operations);
        apply(&mut document, operations.as_sequence().unwrap())?;
        Ok(document)
    }

    #[test]
    fn add_to_maps_and_lists() {
        let result = patched(
            "a: {b: 1}\nlist: [x, y]\n",
            r#"[{op: add, path: /a/c, value: 2},
                {op: add, path: /a/b, value: 10},
                {op: add, path: /list/0, value: first},
                {op: add, path: /list/-, value: last},
                {op: add, path: /list/4, value: end},
                {op: add, path: /new, value: {k: v}}]"#,
        );
        assert_eq!(
            result.unwrap(),
            yaml("a: {b: 10, c: 2}\nlist: [first, x, y, last, end]\nnew: {k: v}\n")
        );
    }

    #[test]
    fn replace_and_remove() {
        let result = patched(
            "a: {b: 1, c: 2}\nlist: [x, y, z]\n",
            r#"[{op: replace, path: /a/b, value: [1]},
                {op: remove, path: /a/c},
                {op: remove, path: /list/1},
                {op: replace, path: /list/0, value: X}]"#,
        );
        assert_eq!(result.unwrap(), yaml("a: {b: [1]}\nlist: [X, z]\n"));
    }

    #[test]
    fn move_copy_test_and_escapes() {
        let result = patched(
            "\"a/b\": 1\n\"m~n\": 2\nlist: [x]\n",
            r#"[{op: test, path: /a~1b, value: 1},
                {op: move, from: /a~1b, path: /moved},
                {op: copy, from: /m~0n, path: /list/-}]"#,
        );
        assert_eq!(
            result.unwrap(),
            yaml("\"m~n\": 2\nlist: [x, 2]\nmoved: 1\n")
        );
    }

    #[test]
    fn failures_name_the_operation() {
        let cases = [
            ("[{op: replace, path: /missing, value: 1}]", "operation 0 (replace /missing): path /missing does not exist"),
            ("[{op: test, path: /a, value: 1}, {op: remove, path: /a/b}]", "operation 1 (remove /a/b): no \"b\" to remove"),
            ("[{op: add, path: /list/3, value: 1}]", "operation 0 (add /list/3): index 3 is out of range"),
            ("[{op: remove, path: /list/-}]", "operation 0 (remove /list/-): \"-\" is not a list index"),
            ("[{op: add, path: /list/01, value: 1}]", "operation 0 (add /list/01): \"01\" is not a list index"),
            ("[{op: add, path: a, value: 1}]", "operation 0 (add a): path \"a\" must start with /"),
            ("[{op: add, path: /b}]", "operation 0 (add /b): needs a `value`"),
            ("[{op: test, path: /a, value: 2}]", "operation 0 (test /a): found Number(1), expected Number(2)"),
            ("[{op: upsert, path: /a}]", "operation 0 (upsert /a): unknown op \"upsert\"; use add, remove, replace, move, copy or test"),
            ("[{op: move, from: /a, path: /a/b}]", "operation 0 (move /a/b): cannot move a value into itself"),
        ];
        for (operations, expected) in cases {
            let err = patched("a: 1\nlist: [x, y]\n", operations).unwrap_err();
            assert_eq!(err, expected, "{operations}");
        }
    }
}
