//! The component configs `kubeadm init` hands to every kubelet and to kube-proxy.

use serde_yaml::Value;

use super::documents::{NodeContext, CRI_SOCKET};
use super::error::KubeadmError;
use super::yaml_builder::{gate_map, map, string};
use crate::config::{IpFamily, KubeProxyMode};

pub(super) fn kubelet_configuration(node: &NodeContext) -> Value {
    let input = node.input;
    let ipv6 = input.ip_family == IpFamily::Ipv6;
    // The field exists from 1.31; there kubelet still runs on cgroup v1 unless told to fail.
    let fail_cgroup_v1 = if input.cgroup_v1 && node.version.at_least(31) {
        Value::Bool(false)
    } else {
        Value::Null
    };
    // The field exists from 1.27; older kubelets get the flag from kubeadm's criSocket.
    let runtime_endpoint = if node.version.at_least(27) {
        CRI_SOCKET
    } else {
        ""
    };
    // Nodes share the host's disk: eviction and image GC would react to the whole host's
    // usage, so both are turned off.
    let no_eviction = map(
        ["nodefs.available", "nodefs.inodesFree", "imagefs.available"]
            .map(|signal| (signal, string("0%"))),
    );
    map([
        ("apiVersion", string("kubelet.config.k8s.io/v1beta1")),
        ("kind", string("KubeletConfiguration")),
        // containerd is configured with SystemdCgroup; both must agree.
        ("cgroupDriver", string("systemd")),
        ("containerRuntimeEndpoint", string(runtime_endpoint)),
        // The host's swap is visible in the node.
        ("failSwapOn", Value::Bool(false)),
        ("failCgroupV1", fail_cgroup_v1),
        ("imageGCHighThresholdPercent", Value::from(100)),
        ("evictionHard", no_eviction),
        // Preloaded images are unpacked when their first container is created (the image
        // build cannot unpack); on an emulated host that took longer than kubelet's 2 minute
        // CRI deadline, which cancelled the unpack and started it again, forever.
        (
            "runtimeRequestTimeout",
            string(&runtime_request_timeout(input.timeout_scale)),
        ),
        ("featureGates", gate_map(&input.feature_gates)),
        // Go listens on IPv4 only for the default 0.0.0.0; the API server reaches kubelet
        // over IPv6. (healthz stays on 127.0.0.1, which every node has.)
        ("address", string(if ipv6 { "::" } else { "" })),
    ])
}

/// Kubelet's deadline for container runtime calls: 10 minutes (times `KINDRED_TIMEOUT_SCALE`)
/// instead of kubelet's 2.
fn runtime_request_timeout(scale: u32) -> String {
    format!("{}m0s", 10 * scale.max(1))
}

pub(super) fn kube_proxy_configuration(node: &NodeContext) -> Result<Value, KubeadmError> {
    let input = node.input;
    let mut gates = input.feature_gates.clone();
    if input.kube_proxy_mode == KubeProxyMode::Nftables {
        if !node.version.at_least(29) {
            return Err(KubeadmError::Version {
                version: node.version.to_string(),
                reason: "has no nftables mode in kube-proxy (it came in v1.29); \
                         use kubeProxyMode iptables or ipvs"
                    .to_string(),
            });
        }
        // Alpha (off by default) before 1.31.
        if !node.version.at_least(31) {
            gates.entry("NFTablesProxyMode".to_string()).or_insert(true);
        }
    }
    Ok(map([
        ("apiVersion", string("kubeproxy.config.k8s.io/v1alpha1")),
        ("kind", string("KubeProxyConfiguration")),
        ("mode", string(input.kube_proxy_mode.as_str())),
        // 0 keeps nf_conntrack_max as it is: it is a host-wide sysctl that a node container
        // may not be allowed to write.
        ("conntrack", map([("maxPerCore", Value::from(0))])),
        ("featureGates", gate_map(&gates)),
    ]))
}
