//! Everything `render` needs to know about one node, gathered by the caller.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::error::KubeadmError;
use crate::config::{Cluster, IpFamily, KubeProxyMode, Node, PatchJson6902};

/// How a node enters the cluster, which decides between `kubeadm init` and `kubeadm join`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NodeBootstrap {
    /// Runs `kubeadm init` (the only control plane, or the first of several).
    #[default]
    FirstControlPlane,
    /// Runs `kubeadm join --control-plane` (HA clusters).
    JoiningControlPlane,
    /// Runs `kubeadm join`.
    Worker,
}

/// The inputs for one node's kubeadm config. `from_cluster` fills in what the cluster config
/// says; the caller sets the rest (version, node identity, endpoint, token, host facts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderInput {
    /// e.g. `v1.34.12`; decides the kubeadm API (v1beta4 from 1.31, v1beta3 before).
    pub kubernetes_version: String,
    pub cluster_name: String,
    /// The node (and container) name, e.g. `kindred-control-plane`.
    pub node_name: String,
    /// The node's addresses on the cluster network, primary first; two for dual-stack.
    pub node_ips: Vec<String>,
    pub bootstrap: NodeBootstrap,
    /// `host:port` every node can reach the API server on: the first control plane's
    /// `<ip>:6443` for one control plane, the load balancer's address for several. IPv6
    /// hosts in brackets, `[fc00:f853:ccd:e793::2]:6443`.
    pub control_plane_endpoint: String,
    /// One CIDR, or two comma-separated for dual-stack (as in the cluster config).
    pub pod_subnet: String,
    pub service_subnet: String,
    pub ip_family: IpFamily,
    pub kube_proxy_mode: KubeProxyMode,
    /// Passed to every component.
    pub feature_gates: BTreeMap<String, bool>,
    /// kube-apiserver `--runtime-config` entries.
    pub runtime_config: BTreeMap<String, String>,
    /// Extra names and addresses for the API server certificate, e.g. `127.0.0.1`,
    /// `localhost` and the node name.
    pub api_server_cert_sans: Vec<String>,
    /// `[a-z0-9]{6}.[a-z0-9]{16}`, shared by every node of the cluster.
    pub bootstrap_token: String,
    /// 64 hex digits. On the first control plane it goes with `kubeadm init --upload-certs`;
    /// on joining control planes it lets them download those certificates.
    pub certificate_key: Option<String>,
    /// True when the host (and so the node) uses cgroup v1.
    pub cgroup_v1: bool,
    pub node_labels: BTreeMap<String, String>,
    /// The cluster config's `kubeadmConfigPatches`, then the node's.
    pub cluster_patches: Vec<String>,
    pub node_patches: Vec<String>,
    /// The cluster config's `kubeadmConfigPatchesJSON6902`, then the node's.
    pub cluster_patches_json6902: Vec<PatchJson6902>,
    pub node_patches_json6902: Vec<PatchJson6902>,
    /// Multiplies kubeadm's (already generous) timeouts; 0 counts as 1. See `crate::patience`.
    pub timeout_scale: u32,
}

impl RenderInput {
    /// The fields a (defaulted) cluster config decides for `node`; everything else is left
    /// empty for the caller to set.
    pub fn from_cluster(cluster: &Cluster, node: &Node) -> RenderInput {
        let net = &cluster.networking;
        RenderInput {
            cluster_name: cluster.name.clone(),
            pod_subnet: net.pod_subnet.clone(),
            service_subnet: net.service_subnet.clone(),
            ip_family: net.ip_family,
            kube_proxy_mode: net.kube_proxy_mode,
            feature_gates: cluster.feature_gates.clone(),
            runtime_config: cluster.runtime_config.clone(),
            node_labels: node.labels.clone(),
            cluster_patches: cluster.kubeadm_config_patches.clone(),
            node_patches: node.kubeadm_config_patches.clone(),
            cluster_patches_json6902: cluster.kubeadm_config_patches_json6902.clone(),
            node_patches_json6902: node.kubeadm_config_patches_json6902.clone(),
            ..RenderInput::default()
        }
    }
}

impl RenderInput {
    /// Catches caller mistakes here rather than as a kubeadm failure inside the node.
    pub(super) fn check(&self) -> Result<(), KubeadmError> {
        let required = [
            ("cluster_name", &self.cluster_name),
            ("node_name", &self.node_name),
            ("control_plane_endpoint", &self.control_plane_endpoint),
        ];
        for (field, value) in required {
            if value.is_empty() {
                return Err(KubeadmError::input(field, "is empty"));
            }
        }
        if self.node_ips.is_empty() || self.node_ips.len() > 2 {
            return Err(KubeadmError::input(
                "node_ips",
                format!(
                    "must hold one address (two for dual-stack), not {}",
                    self.node_ips.len()
                ),
            ));
        }
        for ip in &self.node_ips {
            if ip.parse::<IpAddr>().is_err() {
                return Err(KubeadmError::input(
                    "node_ips",
                    format!("has \"{ip}\", which is not an IP address"),
                ));
            }
        }
        if !is_bootstrap_token(&self.bootstrap_token) {
            return Err(KubeadmError::input(
                "bootstrap_token",
                format!(
                    "\"{}\" is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}",
                    self.bootstrap_token
                ),
            ));
        }
        if let Some(key) = &self.certificate_key {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(KubeadmError::input(
                    "certificate_key",
                    "must be 64 hexadecimal digits (32 random bytes)",
                ));
            }
        }
        Ok(())
    }
}

/// kubeadm's token format: a 6 character id and a 16 character secret.
fn is_bootstrap_token(token: &str) -> bool {
    let valid = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    token
        .split_once('.')
        .is_some_and(|(id, secret)| valid(id, 6) && valid(secret, 16))
}
