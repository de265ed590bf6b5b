//! JSON merge patches (RFC 7386) on YAML values, with kind's kubeadm-aware twists so that
//! patches written for one kubeadm API keep working on the other:
//! - `extraArgs` / `kubeletExtraArgs` merge flag by flag, whether the patch writes them as a
//!   map (v1beta3) or a `{name, value}` list (v1beta4); the result takes the document's shape.
//!   A null value removes that flag.
//! - `certSANs` adds to the rendered names instead of replacing them.

use serde_yaml::{Mapping, Value};

use super::version::KubeadmApi;

/// Merges `patch` into `target`. `api` is the kubeadm API of a kubeadm document (which turns
/// on the flag and certSANs handling), `None` for component configs.
pub(super) fn merge(
    target: &mut Value,
    patch: &Value,
    api: Option<KubeadmApi>,
) -> Result<(), String> {
    let Value::Mapping(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if !target.is_mapping() {
        *target = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(target) = target else {
        unreachable!("made a mapping above");
    };
    for (key, value) in patch {
        if value.is_null() {
            target.shift_remove(key);
            continue;
        }
        let entry = target.entry(key.clone()).or_insert(Value::Null);
        match (api, key.as_str()) {
            (Some(api), Some(name @ ("extraArgs" | "kubeletExtraArgs"))) => {
                merge_flags(entry, value, api).map_err(|e| format!("{name}: {e}"))?;
            }
            (Some(_), Some("certSANs")) => add_names(entry, value),
            _ => merge(entry, value, api)?,
        }
    }
    Ok(())
}

/// Merges flags by name, keeping their order; the result is in `api`'s shape.
fn merge_flags(target: &mut Value, patch: &Value, api: KubeadmApi) -> Result<(), String> {
    let mut merged = flag_list(target)?;
    for (name, value) in flag_list(patch)? {
        let existing = merged.iter().position(|(n, _)| *n == name);
        match (existing, value) {
            (_, None) => merged.retain(|(n, _)| *n != name),
            (Some(i), Some(value)) => merged[i].1 = Some(value),
            (None, Some(value)) => merged.push((name, Some(value))),
        }
    }
    let entry = |name: String, value: Option<String>| {
        (
            Value::String(name),
            Value::String(value.unwrap_or_default()),
        )
    };
    *target = match api {
        KubeadmApi::V1Beta3 => Value::Mapping(
            merged
                .into_iter()
                .map(|(name, value)| entry(name, value))
                .collect(),
        ),
        KubeadmApi::V1Beta4 => Value::Sequence(
            merged
                .into_iter()
                .map(|(name, value)| {
                    let (name, value) = entry(name, value);
                    Value::Mapping(Mapping::from_iter([
                        ("name".into(), name),
                        ("value".into(), value),
                    ]))
                })
                .collect(),
        ),
    };
    Ok(())
}

/// Flags as (name, value) pairs from either shape; a `None` value means "remove".
fn flag_list(flags: &Value) -> Result<Vec<(String, Option<String>)>, String> {
    match flags {
        Value::Null => Ok(vec![]),
        Value::Mapping(map) => map
            .iter()
            .map(|(name, value)| Ok((flag_text(name, "name")?, flag_value(value)?)))
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|item| {
                let name = item
                    .get("name")
                    .ok_or("every entry of the list needs a `name`")?;
                let value = item.get("value").unwrap_or(&Value::Null);
                Ok((flag_text(name, "name")?, flag_value(value)?))
            })
            .collect(),
        _ => Err("must be a map of flag names to values or a list of {name, value}".into()),
    }
}

fn flag_value(value: &Value) -> Result<Option<String>, String> {
    if value.is_null() {
        Ok(None)
    } else {
        flag_text(value, "value").map(Some)
    }
}

/// Flags are strings; `true` and `10` are taken as "true" and "10", as a user would mean.
fn flag_text(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("a flag {what} must be a string, not {value:?}")),
    }
}

/// Appends the names the patch lists that are not there yet.
fn add_names(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Sequence(names), Value::Sequence(new)) => {
            for name in new {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn merged(target: &str, patch: &str, api: Option<KubeadmApi>) -> Value {
        let mut target = yaml(target);
        merge(&mut target, &yaml(patch), api).unwrap();
        target
    }

    #[test]
    fn follows_rfc_7386() {
        let result = merged(
            "a: {b: 1, c: 2}\nlist: [1, 2]\nkeep: x\n",
            "a: {b: 10, c: null, d: {e: 1}}\nlist: [3]\nnew: [x]\n",
            None,
        );
        assert_eq!(
            result,
            yaml("a: {b: 10, d: {e: 1}}\nlist: [3]\nkeep: x\nnew: [x]\n")
        );
        assert_eq!(
            merged("a: 1", "a: {b: null, c: 2}", None),
            yaml("a: {c: 2}")
        );
    }

    #[test]
    fn extra_args_merge_by_name_in_the_documents_shape() {
        let v4 = "apiServer:\n  extraArgs:\n  - {name: a, value: '1'}\n  - {name: b, value: '2'}\n";
        // A v1beta3-style map patch on a v1beta4 document.
        let result = merged(
            v4,
            "apiServer: {extraArgs: {b: 20, c: true, a: null}}",
            Some(KubeadmApi::V1Beta4),
        );
        assert_eq!(
            result,
            yaml("apiServer:\n  extraArgs:\n  - {name: b, value: '20'}\n  - {name: c, value: 'true'}\n")
        );
        // A v1beta4-style list patch on a v1beta3 document.
        let result = merged(
            "nodeRegistration: {kubeletExtraArgs: {node-ip: 10.0.0.2}}",
            "nodeRegistration: {kubeletExtraArgs: [{name: v, value: '4'}]}",
            Some(KubeadmApi::V1Beta3),
        );
        assert_eq!(
            result,
            yaml("nodeRegistration: {kubeletExtraArgs: {node-ip: 10.0.0.2, v: '4'}}")
        );
    }

    #[test]
    fn bad_extra_args_are_errors() {
        let mut target = yaml("apiServer: {}");
        let err = merge(
            &mut target,
            &yaml("apiServer: {extraArgs: [{value: x}]}"),
            Some(KubeadmApi::V1Beta4),
        )
        .unwrap_err();
        assert_eq!(err, "extraArgs: every entry of the list needs a `name`");
    }

    #[test]
    fn cert_sans_are_added_to() {
        let result = merged(
            "apiServer: {certSANs: [localhost, 127.0.0.1]}",
            "apiServer: {certSANs: [my-host, localhost]}",
            Some(KubeadmApi::V1Beta4),
        );
        assert_eq!(
            result,
            yaml("apiServer: {certSANs: [localhost, 127.0.0.1, my-host]}")
        );
    }

    #[test]
    fn component_configs_get_plain_merge() {
        let result = merged("extraArgs: [x]", "extraArgs: [y]", None);
        assert_eq!(result, yaml("extraArgs: [y]"));
    }
}
