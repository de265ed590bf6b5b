//! The `Cluster` document: kind's v1alpha4 schema, field for field, in kind's camelCase names.
//!
//! Unset fields decode to empty values ("" / 0 / empty lists); `Cluster::with_defaults` fills
//! them in. Collections and `networking` also accept an explicit `null` (a key whose entries
//! are all commented out), as kind does.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// kind's apiVersion for this schema; kind's config files are accepted unchanged.
pub const KIND_API_VERSION: &str = "kind.x-k8s.io/v1alpha4";

/// kindred's own apiVersion for the same schema.
pub const KINDRED_API_VERSION: &str = "kindred.dev/v1alpha4";

/// The only `kind` a cluster config may have.
pub const CLUSTER_KIND: &str = "Cluster";

/// A whole cluster config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// As written in the file; `parse` only lets the two accepted apiVersions through.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Cluster name; node containers are named `<name>-control-plane`, `<name>-worker2`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nodes: Vec<Node>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub networking: Networking,
    /// Kubernetes feature gates, passed to every component.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub feature_gates: BTreeMap<String, bool>,
    /// kube-apiserver `--runtime-config` entries, e.g. `"api/alpha": "false"`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub runtime_config: BTreeMap<String, String>,
    /// Merge patches (YAML, possibly several documents each) for every node's kubeadm config.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubeadm_config_patches: Vec<String>,
    #[serde(
        rename = "kubeadmConfigPatchesJSON6902",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubeadm_config_patches_json6902: Vec<PatchJson6902>,
    /// TOML fragments merged into every node's containerd config.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub containerd_config_patches: Vec<String>,
    /// JSON 6902 patches (YAML or JSON lists of operations) for the containerd config.
    #[serde(
        rename = "containerdConfigPatchesJSON6902",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub containerd_config_patches_json6902: Vec<String>,
    /// kindred's local registry (`kindred.dev/v1alpha4` only; with kind's apiVersion use
    /// `create cluster --registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// LoadBalancer Services (`kindred.dev/v1alpha4` only; with kind's apiVersion use
    /// `create cluster --disable-load-balancer-services` to turn them off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_services: Option<Toggle>,
    /// The node lifecycle agent (`kindred.dev/v1alpha4` only; with kind's apiVersion use
    /// `create cluster --disable-node-lifecycle` to turn it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_lifecycle: Option<Toggle>,
}

/// A feature that is on unless `{enabled: false}`: `loadBalancerServices` (addresses for
/// LoadBalancer Services, `agent::service_lb`) and `nodeLifecycle` (Nodes follow their
/// containers, `agent::node_lifecycle`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toggle {
    /// Unset means on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The shared local registry: `registry: {port: 5001}` runs the container `kindred-registry`,
/// published on 127.0.0.1:<port>, and makes every node pull `localhost:<port>/...` from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    /// Unset means on: writing the `registry` block asks for the registry; `enabled: false`
    /// turns it off again (e.g. in a copy of a config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Host port on 127.0.0.1, and the port in image names (`localhost:<port>/app:tag`);
    /// default 5001. Every cluster sharing the registry must name the same port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Keep the registry (and its images) when its last cluster is deleted.
    #[serde(default)]
    pub keep: bool,
}

impl Registry {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl Cluster {
    /// Whether LoadBalancer Services get addresses (the default).
    pub fn load_balancer_services(&self) -> bool {
        self.load_balancer_services
            .as_ref()
            .and_then(|l| l.enabled)
            .unwrap_or(true)
    }

    /// Whether a node lifecycle agent runs beside the cluster (the default).
    pub fn node_lifecycle(&self) -> bool {
        self.node_lifecycle
            .as_ref()
            .and_then(|l| l.enabled)
            .unwrap_or(true)
    }

    /// The registry settings when the cluster asks for the registry.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref().filter(|r| r.is_enabled())
    }
}

/// One node container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    #[serde(default)]
    pub role: NodeRole,
    /// Node image; empty means the default (or the CLI's `--image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Kubernetes labels for this node.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_mounts: Vec<Mount>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_port_mappings: Vec<PortMapping>,
    /// Merge patches applied to this node's kubeadm config only.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubeadm_config_patches: Vec<String>,
    #[serde(
        rename = "kubeadmConfigPatchesJSON6902",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubeadm_config_patches_json6902: Vec<PatchJson6902>,
}

/// Cluster-wide network settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networking {
    #[serde(default)]
    pub ip_family: IpFamily,
    /// Host address the API server is published on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_server_address: String,
    /// Host port the API server is published on; 0 picks a free one.
    #[serde(default)]
    pub api_server_port: i32,
    /// One CIDR, or for dual-stack two comma-separated ones (one IPv4, one IPv6).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_subnet: String,
    /// Same form as `pod_subnet`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_subnet: String,
    /// Skip installing the default pod network, to bring your own CNI.
    #[serde(rename = "disableDefaultCNI", default)]
    pub disable_default_cni: bool,
    #[serde(default)]
    pub kube_proxy_mode: KubeProxyMode,
    /// DNS search domains for nodes; `None` keeps the host's, `Some(vec![])` sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Vec<String>>,
}

/// A host path mounted into a node container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    /// Relative paths are resolved against the config file's directory
    /// (`Cluster::resolve_host_paths`).
    #[serde(default)]
    pub host_path: String,
    #[serde(default)]
    pub container_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub selinux_relabel: bool,
    #[serde(default)]
    pub propagation: MountPropagation,
}

/// A host port published to a node container port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    #[serde(default)]
    pub container_port: i32,
    /// 0 picks a free port.
    #[serde(default)]
    pub host_port: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listen_address: String,
    #[serde(default)]
    pub protocol: PortProtocol,
}

/// A JSON 6902 patch for the kubeadm document with this group/version/kind (and name, namespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchJson6902 {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The operations, as a YAML or JSON list.
    #[serde(default)]
    pub patch: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeRole {
    /// kind's default for a node without a role.
    #[default]
    #[serde(rename = "control-plane")]
    ControlPlane,
    #[serde(rename = "worker")]
    Worker,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpFamily {
    #[default]
    #[serde(rename = "ipv4")]
    Ipv4,
    #[serde(rename = "ipv6")]
    Ipv6,
    /// Dual-stack, IPv4 primary unless the subnets list IPv6 first.
    #[serde(rename = "dual")]
    Dual,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KubeProxyMode {
    #[default]
    #[serde(rename = "iptables")]
    Iptables,
    #[serde(rename = "nftables")]
    Nftables,
    #[serde(rename = "ipvs")]
    Ipvs,
    /// Do not run kube-proxy.
    #[serde(rename = "none")]
    None,
}

/// Docker's bind propagation, in Kubernetes' spelling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountPropagation {
    /// Docker's `rprivate`.
    #[default]
    None,
    /// Docker's `rslave`.
    HostToContainer,
    /// Docker's `rshared`.
    Bidirectional,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortProtocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl NodeRole {
    /// The spelling used in config files and node names.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
        }
    }
}

impl IpFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
            IpFamily::Dual => "dual",
        }
    }

    /// Whether nodes need IPv6 addresses (ipv6 and dual).
    pub fn has_ipv6(self) -> bool {
        self != IpFamily::Ipv4
    }

    /// The spelling of [`IpFamily::as_str`] back (labels on node containers).
    pub fn parse_label(text: &str) -> Option<IpFamily> {
        [IpFamily::Ipv4, IpFamily::Ipv6, IpFamily::Dual]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

impl KubeProxyMode {
    /// The value for kube-proxy's `mode` setting ("none" means no kube-proxy at all).
    pub fn as_str(self) -> &'static str {
        match self {
            KubeProxyMode::Iptables => "iptables",
            KubeProxyMode::Nftables => "nftables",
            KubeProxyMode::Ipvs => "ipvs",
            KubeProxyMode::None => "none",
        }
    }
}

impl MountPropagation {
    pub fn as_str(self) -> &'static str {
        match self {
            MountPropagation::None => "None",
            MountPropagation::HostToContainer => "HostToContainer",
            MountPropagation::Bidirectional => "Bidirectional",
        }
    }

    /// Docker's name for this propagation mode.
    pub fn docker_name(self) -> &'static str {
        match self {
            MountPropagation::None => "rprivate",
            MountPropagation::HostToContainer => "rslave",
            MountPropagation::Bidirectional => "rshared",
        }
    }
}

impl PortProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "TCP",
            PortProtocol::Udp => "UDP",
            PortProtocol::Sctp => "SCTP",
        }
    }

    /// Docker's lowercase spelling, as in `80/tcp`.
    pub fn docker_name(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KubeProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MountPropagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes `key:` with no value (or `null`) as the type's empty value, as Go's decoder does.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}
