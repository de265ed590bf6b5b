//! JSON Patch (RFC 6902) on the YAML trees kindred patches (kubeadm documents, containerd's
//! config), through the `json-patch` crate: the tree goes to JSON and back, as kind's patches
//! do (so a patched document's keys come out in sorted order, as with kind). Failures name
//! the operation by index, op and path.

use serde_yaml::Value;

/// Applies a list of operations in order, all or nothing; a failure names the operation.
pub(crate) fn apply(document: &mut Value, operations: &[Value]) -> Result<(), String> {
    let mut parsed = Vec::with_capacity(operations.len());
    for (i, operation) in operations.iter().enumerate() {
        let op: json_patch::PatchOperation = serde_yaml::from_value(operation.clone())
            .map_err(|e| format!("{}: {e}", describe(i, operation)))?;
        parsed.push(op);
    }
    let mut json: serde_json::Value = serde_yaml::from_value(document.clone())
        .map_err(|e| format!("the document cannot be patched as JSON: {e}"))?;
    json_patch::patch(&mut json, &parsed).map_err(|e| {
        let reason = match e.kind {
            json_patch::PatchErrorKind::InvalidPointer => format!(
                "path {} does not exist (or a list index is out of range)",
                e.path
            ),
            kind => kind.to_string(),
        };
        format!(
            "{}: {reason}",
            describe(e.operation, &operations[e.operation])
        )
    })?;
    *document = serde_yaml::to_value(json)
        .map_err(|e| format!("the patched document cannot be read back: {e}"))?;
    Ok(())
}

/// `operation <i> (<op> <path>)`, from the operation as written.
fn describe(i: usize, operation: &Value) -> String {
    let op = operation.get("op").and_then(Value::as_str).unwrap_or("?");
    let path = operation.get("path").and_then(Value::as_str).unwrap_or("?");
    format!("operation {i} ({op} {path})")
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
    fn failures_name_the_operation_and_change_nothing() {
        let cases = [
            (
                "[{op: replace, path: /missing, value: 1}]",
                "operation 0 (replace /missing): path /missing does not exist",
            ),
            (
                "[{op: test, path: /a, value: 1}, {op: remove, path: /a/b}]",
                "operation 1 (remove /a/b): path /a/b does not exist",
            ),
            (
                "[{op: add, path: /list/3, value: 1}]",
                "operation 0 (add /list/3): path /list/3 does not exist",
            ),
            ("[{op: add, path: a, value: 1}]", "operation 0 (add a): "),
            (
                "[{op: add, path: /b}]",
                "operation 0 (add /b): missing field `value`",
            ),
            (
                "[{op: test, path: /a, value: 2}]",
                "operation 0 (test /a): value did not match",
            ),
            (
                "[{op: upsert, path: /a}]",
                "operation 0 (upsert /a): unknown variant `upsert`",
            ),
            (
                "[{op: move, from: /a, path: /a/b}]",
                "operation 0 (move /a/b): cannot move the value inside itself",
            ),
        ];
        for (operations, expected) in cases {
            let original = yaml("a: 1\nlist: [x, y]\n");
            let mut document = original.clone();
            let err = apply(&mut document, yaml(operations).as_sequence().unwrap()).unwrap_err();
            assert!(err.starts_with(expected), "{operations}: {err}");
            assert_eq!(document, original, "{operations}");
        }
    }
}
