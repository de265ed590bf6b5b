//! kubeadm's own documents: InitConfiguration, ClusterConfiguration, JoinConfiguration.

use serde_yaml::Value;

use super::documents::{NodeContext, API_SERVER_BIND_PORT, CRI_SOCKET};
use super::input::NodeBootstrap;
use super::version::KubeadmApi;
use super::yaml_builder::{flags, joined, map, string, strings};
use crate::config::IpFamily;

/// The first control plane: its own API endpoint and the token the other nodes join with.
pub(super) fn init_configuration(node: &NodeContext) -> Value {
    let input = node.input;
    // kube-proxy's addon phase would deploy it even with nothing for it to do.
    let skip_phases = if node.runs_kube_proxy() {
        vec![]
    } else {
        vec!["addon/kube-proxy".to_string()]
    };
    map([
        ("apiVersion", string(node.api.api_version())),
        ("kind", string("InitConfiguration")),
        (
            "bootstrapTokens",
            Value::Sequence(vec![map([("token", string(&input.bootstrap_token))])]),
        ),
        ("localAPIEndpoint", local_api_endpoint(node)),
        ("nodeRegistration", node_registration(node)),
        (
            "certificateKey",
            string(input.certificate_key.as_deref().unwrap_or_default()),
        ),
        ("skipPhases", strings(&skip_phases)),
        ("timeouts", timeouts(node)),
    ])
}

/// kubeadm's waits, in minutes, about twice its defaults: on a slow host (a busy CI runner,
/// an emulated CPU) the API server can take minutes to answer, and kubeadm's one-minute API
/// call timeout then fails a cluster that would have come up. A healthy host never waits
/// them out; a broken one fails a few minutes later, with kubelet's log attached.
const TIMEOUT_MINUTES: [(&str, u32); 6] = [
    ("controlPlaneComponentHealthCheck", 8),
    ("kubeletHealthCheck", 8),
    ("kubernetesAPICall", 4),
    ("etcdAPICall", 4),
    ("tlsBootstrap", 10),
    ("discovery", 10),
];

fn minutes(base: u32, node: &NodeContext) -> Value {
    string(&format!("{}m0s", base * node.input.timeout_scale.max(1)))
}

fn timeout_minutes(name: &str) -> u32 {
    TIMEOUT_MINUTES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .expect("a timeout kindred sets")
}

/// v1beta4's `timeouts` (the same block in InitConfiguration and JoinConfiguration); v1beta3
/// has only the control-plane and discovery timeouts, set where it keeps them.
fn timeouts(node: &NodeContext) -> Value {
    match node.api {
        KubeadmApi::V1Beta4 => map(TIMEOUT_MINUTES
            .iter()
            .map(|(name, base)| (*name, minutes(*base, node)))),
        KubeadmApi::V1Beta3 => Value::Null,
    }
}

/// Cluster-wide settings, uploaded by `kubeadm init` for every later node and upgrade.
pub(super) fn cluster_configuration(node: &NodeContext) -> Value {
    let input = node.input;
    let gates = joined(&input.feature_gates);
    let ipv6 = input.ip_family == IpFamily::Ipv6;
    // IPv6-only nodes: listen on IPv6 (kind's settings).
    let controller_bind = if ipv6 { "::" } else { "" };
    let scheduler_bind = if ipv6 { "::1" } else { "" };
    map([
        ("apiVersion", string(node.api.api_version())),
        ("kind", string("ClusterConfiguration")),
        ("clusterName", string(&input.cluster_name)),
        ("kubernetesVersion", string(&node.version.to_string())),
        (
            "controlPlaneEndpoint",
            string(&input.control_plane_endpoint),
        ),
        (
            "networking",
            map([
                ("podSubnet", string(&input.pod_subnet)),
                ("serviceSubnet", string(&input.service_subnet)),
                ("dnsDomain", string("cluster.local")),
            ]),
        ),
        (
            "apiServer",
            map([
                ("certSANs", strings(&input.api_server_cert_sans)),
                (
                    "timeoutForControlPlane",
                    v1beta3_timeout(node, "controlPlaneComponentHealthCheck"),
                ),
                (
                    "extraArgs",
                    flags(
                        node.api,
                        &[
                            ("runtime-config", joined(&input.runtime_config)),
                            ("feature-gates", gates.clone()),
                        ],
                    ),
                ),
            ]),
        ),
        (
            "controllerManager",
            map([(
                "extraArgs",
                flags(
                    node.api,
                    &[
                        // Serves hostPath PersistentVolumes for single-node storage.
                        ("enable-hostpath-provisioner", "true".to_string()),
                        ("feature-gates", gates.clone()),
                        ("bind-address", controller_bind.to_string()),
                    ],
                ),
            )]),
        ),
        (
            "scheduler",
            map([(
                "extraArgs",
                flags(
                    node.api,
                    &[
                        ("feature-gates", gates),
                        ("bind-address", scheduler_bind.to_string()),
                    ],
                ),
            )]),
        ),
        (
            "etcd",
            map([("local", map([("dataDir", string("/var/lib/etcd"))]))]),
        ),
    ])
}

/// A node joining through the first control plane (or the load balancer in front of all).
pub(super) fn join_configuration(node: &NodeContext) -> Value {
    let input = node.input;
    let control_plane = match input.bootstrap {
        NodeBootstrap::JoiningControlPlane => map([
            ("localAPIEndpoint", local_api_endpoint(node)),
            (
                "certificateKey",
                string(input.certificate_key.as_deref().unwrap_or_default()),
            ),
        ]),
        NodeBootstrap::FirstControlPlane | NodeBootstrap::Worker => Value::Null,
    };
    map([
        ("apiVersion", string(node.api.api_version())),
        ("kind", string("JoinConfiguration")),
        (
            "discovery",
            map([
                (
                    "bootstrapToken",
                    map([
                        ("apiServerEndpoint", string(&input.control_plane_endpoint)),
                        ("token", string(&input.bootstrap_token)),
                        // Nodes are created together on a private network; the CA is not yet
                        // known when the configs are written.
                        ("unsafeSkipCAVerification", Value::Bool(true)),
                    ]),
                ),
                ("timeout", v1beta3_timeout(node, "discovery")),
            ]),
        ),
        ("nodeRegistration", node_registration(node)),
        ("controlPlane", control_plane),
        ("timeouts", timeouts(node)),
    ])
}

fn v1beta3_timeout(node: &NodeContext, name: &str) -> Value {
    match node.api {
        KubeadmApi::V1Beta3 => minutes(timeout_minutes(name), node),
        KubeadmApi::V1Beta4 => Value::Null,
    }
}

fn local_api_endpoint(node: &NodeContext) -> Value {
    map([
        ("advertiseAddress", string(node.advertise_address())),
        ("bindPort", Value::from(API_SERVER_BIND_PORT)),
    ])
}

fn node_registration(node: &NodeContext) -> Value {
    let input = node.input;
    let provider_id = format!(
        "kindred://docker/{}/{}",
        input.cluster_name, input.node_name
    );
    map([
        ("name", string(&input.node_name)),
        ("criSocket", string(CRI_SOCKET)),
        (
            "kubeletExtraArgs",
            flags(
                node.api,
                &[
                    // Otherwise kubelet may pick another interface's address.
                    ("node-ip", input.node_ips.join(",")),
                    ("provider-id", provider_id),
                    ("node-labels", joined(&input.node_labels)),
                ],
            ),
        ),
    ])
}
