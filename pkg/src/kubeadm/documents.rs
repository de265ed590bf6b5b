//! Which documents a node's kubeadm config holds, and the facts they share.

use serde_yaml::Value;

use super::component_documents::{kube_proxy_configuration, kubelet_configuration};
use super::error::KubeadmError;
use super::input::{NodeBootstrap, RenderInput};
use super::kubeadm_documents::{cluster_configuration, init_configuration, join_configuration};
use super::version::{KubeVersion, KubeadmApi};
use crate::config::KubeProxyMode;

/// Where containerd listens inside a node.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";

/// The port kube-apiserver listens on inside each control-plane node.
pub const API_SERVER_BIND_PORT: u16 = 6443;

/// One node's rendering: its input and what its Kubernetes version implies.
pub(super) struct NodeContext<'a> {
    pub input: &'a RenderInput,
    pub version: KubeVersion,
    pub api: KubeadmApi,
}

impl NodeContext<'_> {
    /// The address the node's API server (if any) advertises: its primary IP.
    pub fn advertise_address(&self) -> &str {
        &self.input.node_ips[0]
    }

    pub fn runs_kube_proxy(&self) -> bool {
        self.input.kube_proxy_mode != KubeProxyMode::None
    }
}

/// `kubeadm init` reads all four kinds. `kubeadm join` reads only its JoinConfiguration
/// (warning about and ignoring any other document): a joining node gets its kubelet and
/// kube-proxy settings from the ConfigMaps the first control plane uploaded.
pub(super) fn documents(node: &NodeContext) -> Result<Vec<Value>, KubeadmError> {
    Ok(match node.input.bootstrap {
        NodeBootstrap::FirstControlPlane => {
            let mut documents = vec![
                init_configuration(node),
                cluster_configuration(node),
                kubelet_configuration(node),
            ];
            if node.runs_kube_proxy() {
                documents.push(kube_proxy_configuration(node)?);
            }
            documents
        }
        NodeBootstrap::JoiningControlPlane | NodeBootstrap::Worker => {
            vec![join_configuration(node)]
        }
    })
}

/// Points the node's Init- or JoinConfiguration at a directory of kubeadm patch files; a
/// directory the user's patches set already is kept. Returns the directory in use.
/// True when the (patched) InitConfiguration or JoinConfiguration already names a patches
/// directory.
pub(super) fn has_patches_directory(documents: &[Value]) -> bool {
    documents.iter().any(|d| {
        matches!(
            d.get("kind").and_then(Value::as_str),
            Some("InitConfiguration" | "JoinConfiguration")
        ) && d["patches"]["directory"]
            .as_str()
            .is_some_and(|dir| !dir.is_empty())
    })
}

pub(super) fn use_patches_directory(documents: &mut [Value], default: &str) -> String {
    let Some(Value::Mapping(config)) = documents.iter_mut().find(|d| {
        matches!(
            d.get("kind").and_then(Value::as_str),
            Some("InitConfiguration" | "JoinConfiguration")
        )
    }) else {
        return default.to_string();
    };
    let patches = config
        .entry("patches".into())
        .or_insert_with(|| Value::Mapping(Default::default()));
    if !patches.is_mapping() {
        *patches = Value::Mapping(Default::default());
    }
    let Value::Mapping(patches) = patches else {
        unreachable!("made a mapping above");
    };
    match patches.get("directory").and_then(Value::as_str) {
        Some(directory) if !directory.is_empty() => directory.trim_end_matches('/').to_string(),
        _ => {
            patches.insert("directory".into(), Value::String(default.to_string()));
            default.to_string()
        }
    }
}
