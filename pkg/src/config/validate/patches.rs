//! kubeadm and containerd config patches: checked for shape here, so that a broken patch is
//! reported against its field instead of failing inside a node during kubeadm init.

use serde::Deserialize;
use serde_yaml::Value;

use super::Problems;
use crate::config::types::PatchJson6902;

const OPERATIONS: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];

/// Merge patches: each entry holds one or more YAML documents, every one a map naming the
/// `kind` of kubeadm document it applies to (patches are matched by kind, as in kind).
pub(super) fn check_merge_patches(field: &str, patches: &[String], problems: &mut Problems) {
    for (i, patch) in patches.iter().enumerate() {
        let at = format!("{field}[{i}]");
        for document in serde_yaml::Deserializer::from_str(patch) {
            match Value::deserialize(document) {
                Err(e) => {
                    problems.add(
                        at,
                        format!("is not valid YAML (lines count from the patch's start): {e}"),
                    );
                    break;
                }
                // An empty document, e.g. after a trailing `---`.
                Ok(Value::Null) => {}
                Ok(Value::Mapping(map)) => {
                    if !map.contains_key("kind") {
                        problems.add(
                            &at,
                            "has no `kind`, so it would patch nothing; name the kubeadm \
                             document it changes, e.g. `kind: ClusterConfiguration`",
                        );
                    }
                }
                Ok(_) => problems.add(
                    &at,
                    "is not a YAML map; a kubeadm config patch is a partial kubeadm document, \
                     e.g. `kind: ClusterConfiguration` followed by the fields to change",
                ),
            }
        }
    }
}

pub(super) fn check_json6902_patches(
    field: &str,
    patches: &[PatchJson6902],
    problems: &mut Problems,
) {
    for (i, patch) in patches.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if patch.kind.is_empty() {
            problems.add(
                format!("{at}.kind"),
                "is empty; name the kind of kubeadm document to patch, e.g. ClusterConfiguration",
            );
        }
        check_operations(&format!("{at}.patch"), &patch.patch, problems);
    }
}

/// A JSON 6902 patch: a YAML or JSON list of operations, each with `op` and `path`.
pub(super) fn check_operations(field: &str, patch: &str, problems: &mut Problems) {
    const EXAMPLE: &str = r#"e.g. [{"op": "add", "path": "/a", "value": 1}]"#;
    let operations = match serde_yaml::from_str::<Value>(patch) {
        Ok(Value::Sequence(operations)) => operations,
        Ok(_) => {
            problems.add(
                field,
                format!("is not a list of JSON patch operations, {EXAMPLE}"),
            );
            return;
        }
        Err(e) => {
            problems.add(
                field,
                format!("is not valid YAML or JSON (lines count from the patch's start): {e}"),
            );
            return;
        }
    };
    for (k, operation) in operations.iter().enumerate() {
        let op = operation.get("op").and_then(Value::as_str);
        if !op.is_some_and(|op| OPERATIONS.contains(&op)) {
            problems.add(
                field,
                format!(
                    "operation {k} needs `op` set to one of {}",
                    OPERATIONS.join(", ")
                ),
            );
        }
        if operation.get("path").and_then(Value::as_str).is_none() {
            problems.add(field, format!("operation {k} has no `path`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{problems_of, HEADER};

    #[test]
    fn valid_patches_pass() {
        let problems = problems_of(&format!(
            r#"{HEADER}kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  apiServer:
    extraArgs:
      enable-admission-plugins: NodeRestriction
  ---
  kind: KubeletConfiguration
  cgroupDriver: systemd
  ---
kubeadmConfigPatchesJSON6902:
- group: kubeadm.k8s.io
  version: v1beta3
  kind: ClusterConfiguration
  patch: |
    - op: add
      path: /apiServer/certSANs/-
      value: my-host
containerdConfigPatchesJSON6902:
- '[{{"op": "replace", "path": "/version", "value": 3}}]'
- "[]"
"#
        ));
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn merge_patches_must_be_maps_with_a_kind() {
        let problems = problems_of(&format!(
            "{HEADER}kubeadmConfigPatches:
- \"- just\\n- a list\\n\"
- \"apiServer: {{}}\\n\"
- \"kind: [unclosed\\n\"
nodes:
- kubeadmConfigPatches:
  - plain text
"
        ));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("nodes[0].kubeadmConfigPatches[0]: is not a YAML map"));
        assert!(problems[1].starts_with("kubeadmConfigPatches[0]: is not a YAML map"));
        assert!(problems[2].starts_with("kubeadmConfigPatches[1]: has no `kind`"));
        assert!(problems[3].starts_with("kubeadmConfigPatches[2]: is not valid YAML"));
    }

    #[test]
    fn json6902_patches_must_be_operation_lists() {
        let problems = problems_of(&format!(
            "{HEADER}kubeadmConfigPatchesJSON6902:
- version: v1beta3
  patch: \"op: add\"
- kind: ClusterConfiguration
  patch: |
    - op: upsert
      path: /a
    - op: remove
containerdConfigPatchesJSON6902:
- \"[\"
"
        ));
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(
            problems[..4],
            [
                "kubeadmConfigPatchesJSON6902[0].kind: is empty; name the kind of kubeadm \
                 document to patch, e.g. ClusterConfiguration",
                "kubeadmConfigPatchesJSON6902[0].patch: is not a list of JSON patch operations, \
                 e.g. [{\"op\": \"add\", \"path\": \"/a\", \"value\": 1}]",
                "kubeadmConfigPatchesJSON6902[1].patch: operation 0 needs `op` set to one of \
                 add, remove, replace, move, copy, test",
                "kubeadmConfigPatchesJSON6902[1].patch: operation 1 has no `path`",
            ]
        );
        assert!(problems[4]
            .starts_with("containerdConfigPatchesJSON6902[0]: is not valid YAML or JSON"));
    }
}
