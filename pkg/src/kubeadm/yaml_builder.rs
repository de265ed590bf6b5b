//! Small helpers for writing kubeadm documents as YAML values, keeping keys in the order they
//! are written so the rendered file reads like a hand-written one.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::version::KubeadmApi;

/// A map of the given entries, leaving out those that are null or empty: optional fields are
/// written as `Value::Null` and simply disappear.
pub(super) fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut mapping = Mapping::new();
    for (key, value) in entries {
        if !is_empty(&value) {
            mapping.insert(key.into(), value);
        }
    }
    Value::Mapping(mapping)
}

/// A string value, or null (left out by `map`) when empty.
pub(super) fn string(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

pub(super) fn strings(list: &[String]) -> Value {
    Value::Sequence(list.iter().map(|s| Value::String(s.clone())).collect())
}

/// Command line flags for a component (`extraArgs`, `kubeletExtraArgs`) in the shape the
/// kubeadm API wants: a map in v1beta3, a list of `{name, value}` in v1beta4. Flags with an
/// empty value are left out.
pub(super) fn flags(api: KubeadmApi, flags: &[(&str, String)]) -> Value {
    let set = flags.iter().filter(|(_, value)| !value.is_empty());
    match api {
        KubeadmApi::V1Beta3 => map(set.map(|(name, value)| (*name, string(value)))),
        KubeadmApi::V1Beta4 => Value::Sequence(
            set.map(|(name, value)| map([("name", string(name)), ("value", string(value))]))
                .collect(),
        ),
    }
}

/// `featureGates` of a component config; null (left out) when there are none.
pub(super) fn gate_map(gates: &BTreeMap<String, bool>) -> Value {
    Value::Mapping(
        gates
            .iter()
            .map(|(gate, on)| (Value::String(gate.clone()), Value::Bool(*on)))
            .collect(),
    )
}

/// `key1=value1,key2=value2`, the flag form of feature gates, runtime config and labels.
pub(super) fn joined<V: ToString>(entries: &BTreeMap<String, V>) -> String {
    let pairs: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_string()))
        .collect();
    pairs.join(",")
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Mapping(m) => m.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_leaves_out_null_and_empty_values() {
        let value = map([
            ("a", string("x")),
            ("b", string("")),
            ("c", map([("d", Value::Null)])),
            ("e", strings(&[])),
            ("f", Value::Bool(false)),
        ]);
        assert_eq!(serde_yaml::to_string(&value).unwrap(), "a: x\nf: false\n");
    }

    #[test]
    fn flags_take_the_shape_of_the_api() {
        let args = [("a", "1".to_string()), ("skipped", String::new())];
        let v3 = serde_yaml::to_string(&flags(KubeadmApi::V1Beta3, &args)).unwrap();
        assert_eq!(v3, "a: '1'\n");
        let v4 = serde_yaml::to_string(&flags(KubeadmApi::V1Beta4, &args)).unwrap();
        assert_eq!(v4, "- name: a\n  value: '1'\n");
    }
}
