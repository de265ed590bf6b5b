//! Configs of the kinds kind's documentation shows (written for these tests), run through the
//! whole pipeline: parse, defaults, validate.

use super::*;

/// Parses, defaults and validates, failing the test with the message on any error.
fn accepted(yaml: &str) -> Cluster {
    let cluster = parse(yaml, "example.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .with_defaults();
    cluster.validate().unwrap_or_else(|e| panic!("{e}"));
    cluster
}

fn roles(cluster: &Cluster) -> Vec<NodeRole> {
    cluster.nodes.iter().map(|n| n.role).collect()
}

#[test]
fn multi_node_cluster() {
    let c = accepted(
        "# one control plane, two workers
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
",
    );
    assert_eq!(
        roles(&c),
        [NodeRole::ControlPlane, NodeRole::Worker, NodeRole::Worker]
    );
    assert_eq!(c.name, "kindred");
}

#[test]
fn highly_available_control_plane() {
    let c = accepted(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: ha
nodes:
- role: control-plane
- role: control-plane
- role: control-plane
- role: worker
- role: worker
- role: worker
",
    );
    let control_planes = c
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .count();
    assert_eq!(control_planes, 3);
    assert_eq!(c.nodes.len(), 6);
}

#[test]
fn ingress_ready_control_plane() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "ingress-ready=true"
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
    protocol: TCP
  - containerPort: 443
    hostPort: 443
    protocol: TCP
"#,
    );
    let node = &c.nodes[0];
    let ports: Vec<(i32, i32, &str)> = node
        .extra_port_mappings
        .iter()
        .map(|m| (m.container_port, m.host_port, m.listen_address.as_str()))
        .collect();
    assert_eq!(ports, [(80, 80, "0.0.0.0"), (443, 443, "0.0.0.0")]);
    assert!(node.kubeadm_config_patches[0].contains("node-labels: \"ingress-ready=true\""));
}

#[test]
fn worker_labels_through_join_configuration() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "my-label=true"
- role: worker
  labels:
    tier: backend
"#,
    );
    assert!(c.nodes[1].kubeadm_config_patches[0].starts_with("kind: JoinConfiguration\n"));
    assert_eq!(c.nodes[2].labels["tier"], "backend");
}

#[test]
fn extra_mounts() {
    let c = accepted(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraMounts:
  - hostPath: /path/to/my/files
    containerPath: /files
  - hostPath: /path/to/shared
    containerPath: /shared
    readOnly: true
    selinuxRelabel: false
    propagation: HostToContainer
  - hostPath: ./relative
    containerPath: /relative
",
    )
    .resolve_host_paths(std::path::Path::new("/configs"));
    let mounts = &c.nodes[0].extra_mounts;
    assert_eq!(mounts[0].host_path, "/path/to/my/files");
    assert_eq!(mounts[0].propagation, MountPropagation::None);
    assert!(!mounts[0].read_only);
    assert!(mounts[1].read_only);
    assert_eq!(mounts[1].propagation, MountPropagation::HostToContainer);
    assert_eq!(mounts[2].host_path, "/configs/relative");
}

#[test]
fn feature_gates_and_runtime_config() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
featureGates:
  "CSIMigration": true
  InPlacePodVerticalScaling: false
runtimeConfig:
  "api/alpha": "false"
  "resource.k8s.io/v1beta1": "true"
"#,
    );
    assert_eq!(c.feature_gates.len(), 2);
    assert!(c.feature_gates["CSIMigration"]);
    assert!(!c.feature_gates["InPlacePodVerticalScaling"]);
    assert_eq!(c.runtime_config["resource.k8s.io/v1beta1"], "true");
}

#[test]
fn bring_your_own_cni_without_kube_proxy() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # the default CNI will not be installed
  disableDefaultCNI: true
  kubeProxyMode: "none"
  podSubnet: "192.168.0.0/16"
  serviceSubnet: "10.96.0.0/12"
"#,
    );
    assert!(c.networking.disable_default_cni);
    assert_eq!(c.networking.kube_proxy_mode, KubeProxyMode::None);
    assert_eq!(c.networking.pod_subnet, "192.168.0.0/16");
    assert_eq!(c.networking.service_subnet, "10.96.0.0/12");
}

#[test]
fn ipvs_and_fixed_api_server_endpoint() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  kubeProxyMode: "ipvs"
  apiServerAddress: "127.0.0.1"
  apiServerPort: 6443
"#,
    );
    assert_eq!(c.networking.kube_proxy_mode, KubeProxyMode::Ipvs);
    assert_eq!(c.networking.api_server_port, 6443);
}

#[test]
fn dual_stack() {
    let c = accepted(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: dual
",
    );
    assert_eq!(c.networking.ip_family, IpFamily::Dual);
    assert_eq!(c.networking.pod_subnet, "10.244.0.0/16,fd00:10:244::/56");
}

#[test]
fn ipv6_single_stack() {
    let c = accepted(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: ipv6
  apiServerAddress: 127.0.0.1
",
    );
    assert_eq!(c.networking.ip_family, IpFamily::Ipv6);
    assert_eq!(c.networking.service_subnet, "fd00:10:96::/112");
}

#[test]
fn local_registry_containerd_patch_and_pinned_images() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
nodes:
- role: control-plane
  image: kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f
- role: worker
  image: kindred/node:v1.34.12
"#,
    );
    assert!(c.containerd_config_patches[0].ends_with("config_path = \"/etc/containerd/certs.d\""));
    assert!(c.nodes[0].image.starts_with("kindest/node:v1.33.1@sha256:"));
    assert_eq!(c.nodes[1].image, "kindred/node:v1.34.12");
}

#[test]
fn cluster_wide_kubeadm_patches() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  apiServer:
    extraArgs:
      enable-admission-plugins: NodeRestriction,MutatingAdmissionWebhook
- |
  kind: KubeletConfiguration
  maxPods: 200
kubeadmConfigPatchesJSON6902:
- group: kubeadm.k8s.io
  version: v1beta3
  kind: ClusterConfiguration
  patch: |
    - op: add
      path: /apiServer/certSANs/-
      value: my-hostname
"#,
    );
    assert_eq!(c.kubeadm_config_patches.len(), 2);
    assert_eq!(c.kubeadm_config_patches_json6902[0].group, "kubeadm.k8s.io");
}

/// kind's local registry recipe, taken all the way: the version 2 patch lands in the node's
/// version 3 containerd config.
#[test]
fn local_registry_patch_applies_to_the_node_config() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"#,
    );
    let node_config = include_str!("../../../node-image/files/containerd-config.toml");
    let patched = crate::containerd::patch(
        node_config,
        &c.containerd_config_patches,
        &c.containerd_config_patches_json6902,
    )
    .unwrap();
    assert!(
        patched.config.contains(
            "[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = \"/etc/containerd/certs.d\""
        ),
        "{}",
        patched.config
    );
}

#[test]
fn port_mappings_on_every_protocol_and_address() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  # a NodePort Service, reachable on the host's loopback only
  - containerPort: 30000
    hostPort: 30000
    listenAddress: "127.0.0.1"
  # DNS over UDP, on whatever port is free
  - containerPort: 30053
    protocol: UDP
  - containerPort: 30132
    hostPort: 30132
    protocol: SCTP
"#,
    );
    let mappings: Vec<(i32, i32, &str, PortProtocol)> = c.nodes[0]
        .extra_port_mappings
        .iter()
        .map(|m| {
            (
                m.container_port,
                m.host_port,
                m.listen_address.as_str(),
                m.protocol,
            )
        })
        .collect();
    assert_eq!(
        mappings,
        [
            (30000, 30000, "127.0.0.1", PortProtocol::Tcp),
            (30053, 0, "0.0.0.0", PortProtocol::Udp),
            (30132, 30132, "0.0.0.0", PortProtocol::Sctp),
        ]
    );
}

#[test]
fn per_node_kubelet_settings_and_mount_propagation() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  extraMounts:
  - hostPath: /mnt/shared
    containerPath: /mnt/shared
    propagation: Bidirectional
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "disk=ssd"
  - |
    apiVersion: kubelet.config.k8s.io/v1beta1
    kind: KubeletConfiguration
    maxPods: 42
  kubeadmConfigPatchesJSON6902:
  - group: kubelet.config.k8s.io
    version: v1beta1
    kind: KubeletConfiguration
    patch: |
      - op: add
        path: /registryPullQPS
        value: 3
"#,
    );
    let worker = &c.nodes[1];
    assert_eq!(
        worker.extra_mounts[0].propagation,
        MountPropagation::Bidirectional
    );
    assert_eq!(worker.kubeadm_config_patches.len(), 2);
    assert_eq!(
        worker.kubeadm_config_patches_json6902[0].kind,
        "KubeletConfiguration"
    );
    assert!(c.nodes[0].kubeadm_config_patches.is_empty());
}

#[test]
fn containerd_json6902_and_dns_search() {
    let c = accepted(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  dnsSearch:
  - corp.example
  - lab.example
containerdConfigPatchesJSON6902:
- |
  - op: replace
    path: /plugins/io.containerd.cri.v1.images/snapshotter
    value: native
"#,
    );
    assert_eq!(
        c.networking.dns_search,
        Some(vec!["corp.example".to_string(), "lab.example".to_string()])
    );
    let node_config = include_str!("../../../node-image/files/containerd-config.toml");
    let patched =
        crate::containerd::patch(node_config, &[], &c.containerd_config_patches_json6902).unwrap();
    assert!(
        patched.config.contains("snapshotter = \"native\""),
        "{}",
        patched.config
    );
}
