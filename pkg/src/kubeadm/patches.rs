//! The user's kubeadmConfigPatches and kubeadmConfigPatchesJSON6902, applied as kind applies
//! them: cluster-level merge patches, cluster-level JSON patches, then the node's own.
//!
//! One difference from kind: a node's own KubeletConfiguration patches do not change the
//! rendered KubeletConfiguration, which `kubeadm init` uploads as every node's kubelet config
//! (and which `kubeadm join` ignores). They become kubeadm patch files for that node's
//! `kubeletconfiguration` target instead, so they change that node's kubelet and no other.

use serde::Deserialize;
use serde_yaml::Value;

use super::error::KubeadmError;
use super::input::RenderInput;
use super::merge_patch;
use super::version::KubeadmApi;
use crate::config::PatchJson6902;
use crate::json_patch;

const KUBEADM_GROUP: &str = "kubeadm.k8s.io";
const KUBELET_KIND: &str = "KubeletConfiguration";
const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";

pub(super) fn apply_all(documents: &mut [Value], input: &RenderInput) -> Result<(), KubeadmError> {
    let node = format!("node \"{}\" ", input.node_name);
    apply_merge_patches(documents, &input.cluster_patches, "", None)?;
    apply_json_patches(documents, &input.cluster_patches_json6902, "", None)?;
    apply_merge_patches(documents, &input.node_patches, &node, Some(KUBELET_KIND))?;
    apply_json_patches(
        documents,
        &input.node_patches_json6902,
        &node,
        Some(KUBELET_KIND),
    )
}

/// The node's own KubeletConfiguration patches as kubeadm patch files (file name, content),
/// named so that kubeadm applies them in the config's order: merge patches, then JSON 6902
/// patches.
pub(super) fn kubelet_patch_files(
    input: &RenderInput,
) -> Result<Vec<(String, String)>, KubeadmError> {
    let kubelet = serde_yaml::from_str::<Value>(&format!(
        "{{apiVersion: {KUBELET_API_VERSION}, kind: {KUBELET_KIND}}}"
    ))?;
    let scope = format!("node \"{}\" ", input.node_name);
    let mut files = Vec::new();
    let mut add = |kind: &str, content: String| {
        let name = format!("kubeletconfiguration{:03}+{kind}.json", files.len());
        files.push((name, content));
    };
    for (i, text) in input.node_patches.iter().enumerate() {
        let name = format!("{scope}kubeadmConfigPatches[{i}]");
        for (n, part) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let Ok(Value::Mapping(mut patch)) = Value::deserialize(part) else {
                // Reported by apply_all with the same name.
                continue;
            };
            let kind = patch.shift_remove("kind");
            let api_version = patch.shift_remove("apiVersion");
            let (group, version) = split_api_version(api_version.as_ref().and_then(Value::as_str));
            if !kind
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|kind| matches(&kubelet, kind, group, version))
            {
                continue;
            }
            let json = serde_json::to_string_pretty(&patch).map_err(|e| KubeadmError::Patch {
                patch: name.clone(),
                message: format!("document {n} cannot be written as JSON: {e}"),
            })?;
            add("merge", json);
        }
    }
    for (i, patch) in input.node_patches_json6902.iter().enumerate() {
        let (group, version) = (non_empty(&patch.group), non_empty(&patch.version));
        if !matches(&kubelet, &patch.kind, group, version) {
            continue;
        }
        let fail = |message: String| KubeadmError::Patch {
            patch: format!("{scope}kubeadmConfigPatchesJSON6902[{i}]"),
            message,
        };
        let operations = match serde_yaml::from_str::<Value>(&patch.patch) {
            Ok(operations @ Value::Sequence(_)) => operations,
            Ok(_) => return Err(fail("patch is not a list of JSON patch operations".into())),
            Err(e) => return Err(fail(format!("patch is not valid YAML or JSON: {e}"))),
        };
        let json = serde_json::to_string_pretty(&operations)
            .map_err(|e| fail(format!("cannot be written as JSON: {e}")))?;
        add("json", json);
    }
    Ok(files)
}

/// Each patch holds one or more YAML documents; each applies to the documents of its `kind`
/// (and of its `apiVersion`, when it names one). A patch matching nothing is not an error:
/// e.g. an InitConfiguration patch has nothing to do on a joining node.
/// Documents of the kind `skip` are left alone.
fn apply_merge_patches(
    documents: &mut [Value],
    patches: &[String],
    scope: &str,
    skip: Option<&str>,
) -> Result<(), KubeadmError> {
    for (i, text) in patches.iter().enumerate() {
        let fail = |message: String| KubeadmError::Patch {
            patch: format!("{scope}kubeadmConfigPatches[{i}]"),
            message,
        };
        for (n, part) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let patch = Value::deserialize(part).map_err(|e| {
                fail(format!(
                    "is not valid YAML (lines count from the patch's start): {e}"
                ))
            })?;
            let mut patch = match patch {
                Value::Null => continue,
                Value::Mapping(map) => map,
                _ => return Err(fail(format!("document {n} is not a YAML map"))),
            };
            // kind and apiVersion only choose the documents; they are not changed.
            let kind = patch.shift_remove("kind");
            let api_version = patch.shift_remove("apiVersion");
            let Some(kind) = kind.as_ref().and_then(Value::as_str) else {
                return Err(fail(format!(
                    "document {n} has no `kind` naming the kubeadm document it patches"
                )));
            };
            let (group, version) = split_api_version(api_version.as_ref().and_then(Value::as_str));
            let patch = Value::Mapping(patch);
            for document in documents.iter_mut() {
                if matches(document, kind, group, version) && skip != Some(kind) {
                    merge_patch::merge(document, &patch, kubeadm_api(document))
                        .map_err(|e| fail(format!("cannot apply to {kind}: {e}")))?;
                }
            }
        }
    }
    Ok(())
}

fn apply_json_patches(
    documents: &mut [Value],
    patches: &[PatchJson6902],
    scope: &str,
    skip: Option<&str>,
) -> Result<(), KubeadmError> {
    for (i, patch) in patches.iter().enumerate() {
        let fail = |message: String| KubeadmError::Patch {
            patch: format!("{scope}kubeadmConfigPatchesJSON6902[{i}]"),
            message,
        };
        let operations = match serde_yaml::from_str::<Value>(&patch.patch) {
            Ok(Value::Sequence(operations)) => operations,
            Ok(_) => return Err(fail("patch is not a list of JSON patch operations".into())),
            Err(e) => return Err(fail(format!("patch is not valid YAML or JSON: {e}"))),
        };
        // name and namespace are ignored, as in kind: kubeadm documents have neither.
        let (group, version) = (non_empty(&patch.group), non_empty(&patch.version));
        for document in documents.iter_mut() {
            if matches(document, &patch.kind, group, version) && skip != Some(patch.kind.as_str()) {
                json_patch::apply(document, &operations)
                    .map_err(|e| fail(format!("cannot apply to {}: {e}", patch.kind)))?;
            }
        }
    }
    Ok(())
}

/// The kind must match; group and version only when the patch names them, so that patches
/// without an apiVersion work for every kubeadm API.
fn matches(document: &Value, kind: &str, group: Option<&str>, version: Option<&str>) -> bool {
    let api_version = document.get("apiVersion").and_then(Value::as_str);
    let (doc_group, doc_version) = split_api_version(api_version);
    document.get("kind").and_then(Value::as_str) == Some(kind)
        && (group.is_none() || doc_group == group)
        && (version.is_none() || doc_version == version)
}

/// `group/version` -> (group, version); a bare `v1` has no group.
fn split_api_version(api_version: Option<&str>) -> (Option<&str>, Option<&str>) {
    match api_version.map(|a| a.rsplit_once('/')) {
        None => (None, None),
        Some(Some((group, version))) => (non_empty(group), non_empty(version)),
        Some(None) => (None, api_version.and_then(non_empty)),
    }
}

fn kubeadm_api(document: &Value) -> Option<KubeadmApi> {
    let api_version = document.get("apiVersion").and_then(Value::as_str)?;
    match split_api_version(Some(api_version)) {
        (Some(KUBEADM_GROUP), Some("v1beta3")) => Some(KubeadmApi::V1Beta3),
        (Some(KUBEADM_GROUP), Some("v1beta4")) => Some(KubeadmApi::V1Beta4),
        _ => None,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
