//! `render` end to end: which documents each node gets, version-dependent shapes, patches.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

use super::*;
use crate::config::{IpFamily, KubeProxyMode, PatchJson6902};

const TOKEN: &str = "abcdef.0123456789abcdef";
const CERT_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn input(version: &str, bootstrap: NodeBootstrap) -> RenderInput {
    RenderInput {
        kubernetes_version: version.to_string(),
        cluster_name: "kindred".to_string(),
        node_name: "kindred-control-plane".to_string(),
        node_ips: vec!["172.18.0.2".to_string()],
        bootstrap,
        control_plane_endpoint: "172.18.0.2:6443".to_string(),
        pod_subnet: "10.244.0.0/16".to_string(),
        service_subnet: "10.96.0.0/16".to_string(),
        api_server_cert_sans: vec!["127.0.0.1".into(), "localhost".into()],
        bootstrap_token: TOKEN.to_string(),
        ..RenderInput::default()
    }
}

fn documents(input: &RenderInput) -> Vec<Value> {
    let config = render(input).unwrap_or_else(|e| panic!("{e}"));
    serde_yaml::Deserializer::from_str(&config)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn kinds(documents: &[Value]) -> Vec<&str> {
    documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect()
}

fn find<'d>(documents: &'d [Value], kind: &str) -> &'d Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {documents:?}"))
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

fn gates() -> BTreeMap<String, bool> {
    BTreeMap::from([("A".to_string(), true), ("B".to_string(), false)])
}

#[test]
fn first_control_plane_on_1_34_gets_v1beta4_with_flag_lists() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.feature_gates = gates();
    node.runtime_config = BTreeMap::from([("api/alpha".to_string(), "false".to_string())]);
    node.node_labels = BTreeMap::from([("tier".to_string(), "db".to_string())]);
    let docs = documents(&node);
    assert_eq!(
        kinds(&docs),
        [
            "InitConfiguration",
            "ClusterConfiguration",
            "KubeletConfiguration",
            "KubeProxyConfiguration"
        ]
    );
    let init = find(&docs, "InitConfiguration");
    assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(
        init["nodeRegistration"],
        yaml(
            "name: kindred-control-plane
criSocket: unix:///run/containerd/containerd.sock
kubeletExtraArgs:
- {name: node-ip, value: 172.18.0.2}
- {name: provider-id, value: 'kindred://docker/kindred/kindred-control-plane'}
- {name: node-labels, value: tier=db}
"
        )
    );
    assert_eq!(
        init["bootstrapTokens"],
        yaml(&format!("[{{token: {TOKEN}}}]"))
    );
    assert_eq!(
        init["localAPIEndpoint"],
        yaml("{advertiseAddress: 172.18.0.2, bindPort: 6443}")
    );
    assert!(init.get("skipPhases").is_none());

    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(cluster["kubernetesVersion"], "v1.34.12");
    assert_eq!(cluster["clusterName"], "kindred");
    assert_eq!(cluster["controlPlaneEndpoint"], "172.18.0.2:6443");
    assert_eq!(
        cluster["networking"],
        yaml("{podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/16, dnsDomain: cluster.local}")
    );
    assert_eq!(
        cluster["apiServer"],
        yaml(
            "certSANs: [127.0.0.1, localhost]
extraArgs:
- {name: runtime-config, value: api/alpha=false}
- {name: feature-gates, value: 'A=true,B=false'}
"
        )
    );
    assert_eq!(
        cluster["controllerManager"]["extraArgs"],
        yaml(
            "- {name: enable-hostpath-provisioner, value: 'true'}
- {name: feature-gates, value: 'A=true,B=false'}"
        )
    );
    assert_eq!(
        cluster["scheduler"]["extraArgs"],
        yaml("[{name: feature-gates, value: 'A=true,B=false'}]")
    );
    assert_eq!(cluster["etcd"], yaml("local: {dataDir: /var/lib/etcd}"));
}

#[test]
fn releases_before_1_31_get_v1beta3_with_flag_maps() {
    let mut node = input("v1.30.14", NodeBootstrap::FirstControlPlane);
    node.feature_gates = gates();
    let docs = documents(&node);
    for kind in ["InitConfiguration", "ClusterConfiguration"] {
        assert_eq!(find(&docs, kind)["apiVersion"], "kubeadm.k8s.io/v1beta3");
    }
    let init = find(&docs, "InitConfiguration");
    assert_eq!(
        init["nodeRegistration"]["kubeletExtraArgs"],
        yaml(
            "{node-ip: 172.18.0.2, provider-id: 'kindred://docker/kindred/kindred-control-plane'}"
        )
    );
    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(
        cluster["apiServer"]["extraArgs"],
        yaml("{feature-gates: 'A=true,B=false'}")
    );
    assert_eq!(
        cluster["controllerManager"]["extraArgs"],
        yaml("{enable-hostpath-provisioner: 'true', feature-gates: 'A=true,B=false'}")
    );
    assert_eq!(cluster["kubernetesVersion"], "v1.30.14");

    let join = documents(&input("v1.30.14", NodeBootstrap::Worker));
    assert_eq!(join[0]["apiVersion"], "kubeadm.k8s.io/v1beta3");
    assert!(join[0]["nodeRegistration"]["kubeletExtraArgs"].is_mapping());
}

#[test]
fn component_configs() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.feature_gates = gates();
    node.kube_proxy_mode = KubeProxyMode::Ipvs;
    let docs = documents(&node);
    assert_eq!(
        *find(&docs, "KubeletConfiguration"),
        yaml(
            "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard: {nodefs.available: 0%, nodefs.inodesFree: 0%, imagefs.available: 0%}
runtimeRequestTimeout: 10m0s
featureGates: {A: true, B: false}
"
        )
    );
    assert_eq!(
        *find(&docs, "KubeProxyConfiguration"),
        yaml(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
conntrack: {maxPerCore: 0}
featureGates: {A: true, B: false}
"
        )
    );
}

#[test]
fn kubeadm_waits_are_generous_and_scale_for_slow_hosts() {
    let mut first = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    let docs = documents(&first);
    let init = find(&docs, "InitConfiguration");
    assert_eq!(init["timeouts"]["kubernetesAPICall"], "4m0s");
    assert_eq!(init["timeouts"]["controlPlaneComponentHealthCheck"], "8m0s");
    first.timeout_scale = 3;
    let docs = documents(&first);
    let init = find(&docs, "InitConfiguration");
    assert_eq!(init["timeouts"]["kubernetesAPICall"], "12m0s");
    assert_eq!(init["timeouts"]["tlsBootstrap"], "30m0s");
    let kubelet = find(&docs, "KubeletConfiguration");
    assert_eq!(kubelet["runtimeRequestTimeout"], "30m0s");

    // v1beta3 keeps only two of them, in other places.
    let mut old = input("v1.30.14", NodeBootstrap::FirstControlPlane);
    old.timeout_scale = 2;
    let docs = documents(&old);
    assert!(find(&docs, "InitConfiguration").get("timeouts").is_none());
    assert_eq!(
        find(&docs, "ClusterConfiguration")["apiServer"]["timeoutForControlPlane"],
        "16m0s"
    );
    let mut worker = input("v1.30.14", NodeBootstrap::Worker);
    worker.node_name = "kindred-worker".into();
    let docs = documents(&worker);
    assert_eq!(docs[0]["discovery"]["timeout"], "10m0s");
    assert!(docs[0].get("timeouts").is_none());
}

#[test]
fn joining_nodes_get_only_a_join_configuration() {
    let mut worker = input("v1.34.12", NodeBootstrap::Worker);
    worker.node_name = "kindred-worker".into();
    worker.node_ips = vec!["172.18.0.3".into()];
    let docs = documents(&worker);
    assert_eq!(kinds(&docs), ["JoinConfiguration"]);
    assert_eq!(
        docs[0],
        yaml(&format!(
            "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 172.18.0.2:6443
    token: {TOKEN}
    unsafeSkipCAVerification: true
nodeRegistration:
  name: kindred-worker
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - {{name: node-ip, value: 172.18.0.3}}
  - {{name: provider-id, value: 'kindred://docker/kindred/kindred-worker'}}
timeouts:
  controlPlaneComponentHealthCheck: 8m0s
  kubeletHealthCheck: 8m0s
  kubernetesAPICall: 4m0s
  etcdAPICall: 4m0s
  tlsBootstrap: 10m0s
  discovery: 10m0s
"
        ))
    );

    let mut control_plane = input("v1.34.12", NodeBootstrap::JoiningControlPlane);
    control_plane.node_ips = vec!["172.18.0.4".into()];
    control_plane.control_plane_endpoint = "172.18.0.9:6443".into();
    control_plane.certificate_key = Some(CERT_KEY.into());
    let docs = documents(&control_plane);
    assert_eq!(kinds(&docs), ["JoinConfiguration"]);
    assert_eq!(
        docs[0]["controlPlane"],
        yaml(&format!(
            "localAPIEndpoint: {{advertiseAddress: 172.18.0.4, bindPort: 6443}}
certificateKey: {CERT_KEY}"
        ))
    );
    assert_eq!(
        docs[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "172.18.0.9:6443"
    );
}

#[test]
fn ha_first_control_plane_uses_the_load_balancer_and_certificate_key() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.control_plane_endpoint = "kindred-external-load-balancer:6443".into();
    node.certificate_key = Some(CERT_KEY.into());
    let docs = documents(&node);
    assert_eq!(find(&docs, "InitConfiguration")["certificateKey"], CERT_KEY);
    assert_eq!(
        find(&docs, "ClusterConfiguration")["controlPlaneEndpoint"],
        "kindred-external-load-balancer:6443"
    );
}

#[test]
fn kube_proxy_mode_none_skips_the_addon() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.kube_proxy_mode = KubeProxyMode::None;
    let docs = documents(&node);
    assert_eq!(
        kinds(&docs),
        [
            "InitConfiguration",
            "ClusterConfiguration",
            "KubeletConfiguration"
        ]
    );
    assert_eq!(
        find(&docs, "InitConfiguration")["skipPhases"],
        yaml("[addon/kube-proxy]")
    );
}

#[test]
fn nftables_needs_its_gate_before_1_31_and_exists_from_1_29() {
    let proxy = |version: &str| {
        let mut node = input(version, NodeBootstrap::FirstControlPlane);
        node.kube_proxy_mode = KubeProxyMode::Nftables;
        render(&node).map(|_| find(&documents(&node), "KubeProxyConfiguration").clone())
    };
    assert_eq!(proxy("v1.34.12").unwrap().get("featureGates"), None);
    assert_eq!(
        proxy("v1.30.14").unwrap()["featureGates"],
        yaml("{NFTablesProxyMode: true}")
    );
    let err = proxy("v1.28.15").unwrap_err().to_string();
    assert!(err.contains("no nftables mode"), "{err}");
}

#[test]
fn fail_cgroup_v1_is_false_only_on_cgroup_v1_hosts_from_1_31() {
    let kubelet = |version: &str, cgroup_v1: bool| {
        let mut node = input(version, NodeBootstrap::FirstControlPlane);
        node.cgroup_v1 = cgroup_v1;
        find(&documents(&node), "KubeletConfiguration").clone()
    };
    assert_eq!(
        kubelet("v1.34.12", true)["failCgroupV1"],
        Value::Bool(false)
    );
    assert_eq!(kubelet("v1.31.0", true)["failCgroupV1"], Value::Bool(false));
    assert_eq!(kubelet("v1.34.12", false).get("failCgroupV1"), None);
    assert_eq!(kubelet("v1.30.14", true).get("failCgroupV1"), None);
    // containerRuntimeEndpoint is a 1.27 field as well.
    assert!(kubelet("v1.27.0", false)
        .get("containerRuntimeEndpoint")
        .is_some());
    assert_eq!(
        kubelet("v1.26.15", false).get("containerRuntimeEndpoint"),
        None
    );
}

#[test]
fn ipv6_and_dual_stack_addresses() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.ip_family = IpFamily::Ipv6;
    node.node_ips = vec!["fc00:f853:ccd:e793::2".into()];
    node.control_plane_endpoint = "[fc00:f853:ccd:e793::2]:6443".into();
    let docs = documents(&node);
    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(
        cluster["controllerManager"]["extraArgs"][1],
        yaml("{name: bind-address, value: '::'}")
    );
    assert_eq!(
        cluster["scheduler"]["extraArgs"],
        yaml("[{name: bind-address, value: '::1'}]")
    );
    let kubelet = find(&docs, "KubeletConfiguration");
    assert_eq!(kubelet["address"], "::");
    assert_eq!(kubelet.get("healthzBindAddress"), None);

    node.ip_family = IpFamily::Dual;
    node.node_ips = vec!["172.18.0.2".into(), "fc00:f853:ccd:e793::2".into()];
    let docs = documents(&node);
    let init = find(&docs, "InitConfiguration");
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "172.18.0.2");
    assert_eq!(
        init["nodeRegistration"]["kubeletExtraArgs"][0],
        yaml("{name: node-ip, value: '172.18.0.2,fc00:f853:ccd:e793::2'}")
    );
    assert!(find(&docs, "KubeletConfiguration").get("address").is_none());
}

#[test]
fn merge_patches_apply_only_to_their_kind_and_api_version() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.cluster_patches = vec![
        "kind: KubeletConfiguration\nmaxPods: 50\n".into(),
        // Two documents in one patch; the apiVersion of the second does not match v1beta4.
        "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    v: \"4\"\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\ncertificateKey: nope\n"
            .into(),
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nskipPhases: [preflight]\n"
            .into(),
        "kind: JoinConfiguration\ncaCertPath: /nowhere\n".into(),
    ];
    let docs = documents(&node);
    let kubelet = find(&docs, "KubeletConfiguration");
    assert_eq!(kubelet["maxPods"], 50);
    assert_eq!(kubelet["kind"], "KubeletConfiguration");
    assert_eq!(
        kinds(&docs).len(),
        4,
        "a JoinConfiguration patch adds no document"
    );
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        assert_eq!(doc.get("maxPods").is_some(), kind == "KubeletConfiguration");
        assert!(doc.get("caCertPath").is_none());
    }
    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(
        cluster["apiServer"]["extraArgs"],
        yaml("[{name: v, value: '4'}]")
    );
    assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta4");
    let init = find(&docs, "InitConfiguration");
    assert!(init.get("certificateKey").is_none());
    assert_eq!(init["skipPhases"], yaml("[preflight]"));
}

#[test]
fn node_patches_come_after_cluster_patches() {
    let json = |value: &str| PatchJson6902 {
        group: "kubeadm.k8s.io".into(),
        version: "v1beta4".into(),
        kind: "ClusterConfiguration".into(),
        patch: format!("[{{op: add, path: /apiServer/certSANs/-, value: {value}}}]"),
        ..PatchJson6902::default()
    };
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.node_patches =
        vec!["kind: ClusterConfiguration\nclusterName: node\nimageRepository: node\n".into()];
    node.cluster_patches = vec!["kind: ClusterConfiguration\nclusterName: cluster\n".into()];
    node.node_patches_json6902 = vec![json("node-json")];
    node.cluster_patches_json6902 = vec![json("cluster-json")];
    let docs = documents(&node);
    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(cluster["clusterName"], "node");
    assert_eq!(cluster["imageRepository"], "node");
    // kind's order: cluster merge, cluster JSON, node merge, node JSON.
    assert_eq!(
        cluster["apiServer"]["certSANs"],
        yaml("[127.0.0.1, localhost, cluster-json, node-json]")
    );
    // Only kindred's own probe patches for the control plane, no kubelet patch file.
    let files = render_node(&node).unwrap().files;
    assert!(files
        .iter()
        .all(|(name, _)| !name.contains("kubeletconfiguration")));
}

/// A node's own KubeletConfiguration patches change that node's kubelet only: the rendered
/// KubeletConfiguration is uploaded for every node by `kubeadm init`, so they go to kubeadm's
/// patch files for the node instead, in order.
#[test]
fn node_kubelet_patches_become_kubeadm_patch_files_for_that_node() {
    let kubelet_json = |patch: &str, version: &str| PatchJson6902 {
        group: "kubelet.config.k8s.io".into(),
        version: version.into(),
        kind: "KubeletConfiguration".into(),
        patch: patch.into(),
        ..PatchJson6902::default()
    };
    for bootstrap in [NodeBootstrap::FirstControlPlane, NodeBootstrap::Worker] {
        let mut node = input("v1.34.12", bootstrap);
        node.cluster_patches = vec!["kind: KubeletConfiguration\nmaxPods: 50\n".into()];
        node.node_patches = vec![
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             maxPods: 20\nevictionHard: {memory.available: 1Mi}\n---\n\
             kind: JoinConfiguration\nnodeRegistration: {taints: []}\n"
                .into(),
            // Another API version of the kubelet config: not this one.
            "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\nmaxPods: 1\n".into(),
        ];
        node.node_patches_json6902 = vec![
            kubelet_json("[{op: replace, path: /maxPods, value: 30}]", "v1beta1"),
            kubelet_json("[{op: replace, path: /maxPods, value: 2}]", "v2"),
        ];
        let rendered = render_node(&node).unwrap();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered.kubeadm_config)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        let kubeadm_kind = match bootstrap {
            NodeBootstrap::FirstControlPlane => {
                // The cluster-wide document has the cluster's patch only.
                assert_eq!(find(&docs, "KubeletConfiguration")["maxPods"], 50);
                "InitConfiguration"
            }
            _ => "JoinConfiguration",
        };
        assert_eq!(
            find(&docs, kubeadm_kind)["patches"],
            yaml("directory: /kind/patches")
        );
        let kubelet_files: Vec<_> = rendered
            .files
            .iter()
            .filter(|(name, _)| name.contains("kubeletconfiguration"))
            .cloned()
            .collect();
        assert_eq!(
            kubelet_files,
            vec![
                (
                    "/kind/patches/kubeletconfiguration000+merge.json".to_string(),
                    "{\n  \"maxPods\": 20,\n  \"evictionHard\": {\n    \"memory.available\": \"1Mi\"\n  }\n}"
                        .to_string()
                ),
                (
                    "/kind/patches/kubeletconfiguration001+json.json".to_string(),
                    "[\n  {\n    \"op\": \"replace\",\n    \"path\": \"/maxPods\",\n    \"value\": 30\n  }\n]"
                        .to_string()
                ),
            ],
            "{bootstrap:?}"
        );
    }
}

#[test]
fn control_planes_get_probe_patches_in_kindreds_directory_only() {
    let first = render_node(&input("v1.34.12", NodeBootstrap::FirstControlPlane)).unwrap();
    let names: Vec<&str> = first.files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"/kind/patches/kube-apiserver+strategic.yaml"),
        "{names:?}"
    );
    assert!(
        names.contains(&"/kind/patches/etcd+strategic.yaml"),
        "{names:?}"
    );
    let docs = documents(&input("v1.34.12", NodeBootstrap::FirstControlPlane));
    assert_eq!(
        find(&docs, "InitConfiguration")["patches"],
        yaml("directory: /kind/patches")
    );
    let worker = render_node(&input("v1.34.12", NodeBootstrap::Worker)).unwrap();
    assert!(worker.files.is_empty());
    // The user's own directory (maybe a read-only mount) gets none of kindred's.
    let mut own = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    own.cluster_patches =
        vec!["kind: InitConfiguration\npatches: {directory: /etc/kubernetes/patches}\n".into()];
    assert!(render_node(&own).unwrap().files.is_empty());
}

#[test]
fn a_patches_directory_set_by_the_user_is_kept() {
    let mut node = input("v1.34.12", NodeBootstrap::Worker);
    node.cluster_patches =
        vec!["kind: JoinConfiguration\npatches: {directory: /etc/kubernetes/patches/}\n".into()];
    node.node_patches = vec!["kind: KubeletConfiguration\nmaxPods: 20\n".into()];
    let rendered = render_node(&node).unwrap();
    assert_eq!(
        rendered.files[0].0,
        "/etc/kubernetes/patches/kubeletconfiguration000+merge.json"
    );
    assert!(rendered
        .kubeadm_config
        .contains("directory: /etc/kubernetes/patches/"));
}

#[test]
fn node_kubelet_patches_need_kubeadm_1_25() {
    let mut node = input("v1.24.17", NodeBootstrap::Worker);
    node.node_name = "old-worker".into();
    node.node_patches = vec!["kind: KubeletConfiguration\nmaxPods: 20\n".into()];
    let err = render(&node).unwrap_err().to_string();
    assert!(
        err.starts_with("node \"old-worker\" kubeadmConfigPatches: KubeletConfiguration patches for one node need"),
        "{err}"
    );
    assert!(err.contains("v1.25"), "{err}");
    node.node_patches.clear();
    node.cluster_patches = vec!["kind: KubeletConfiguration\nmaxPods: 20\n".into()];
    assert!(render(&node).is_ok(), "cluster-wide patches are fine");
}

#[test]
fn json6902_patches_add_replace_and_remove() {
    let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
    node.cluster_patches_json6902 = vec![
        PatchJson6902 {
            group: "kubeadm.k8s.io".into(),
            version: "v1beta4".into(),
            kind: "ClusterConfiguration".into(),
            patch: r#"
- op: add
  path: /apiServer/certSANs/-
  value: my-host
- op: add
  path: /apiServer/certSANs/0
  value: first
- op: replace
  path: /apiServer/certSANs/1
  value: 127.0.0.2
- op: add
  path: /apiServer/extraArgs
  value: [{name: audit-log-maxage, value: "2"}]
- op: remove
  path: /etcd/local/dataDir
"#
            .into(),
            ..PatchJson6902::default()
        },
        // Matches no document here (wrong version): not applied, not an error.
        PatchJson6902 {
            group: "kubeadm.k8s.io".into(),
            version: "v1beta3".into(),
            kind: "ClusterConfiguration".into(),
            patch: r#"[{"op": "remove", "path": "/missing"}]"#.into(),
            ..PatchJson6902::default()
        },
        // No group or version: any KubeProxyConfiguration.
        PatchJson6902 {
            kind: "KubeProxyConfiguration".into(),
            patch: r#"[{"op": "replace", "path": "/mode", "value": "nftables"}]"#.into(),
            ..PatchJson6902::default()
        },
    ];
    let docs = documents(&node);
    let cluster = find(&docs, "ClusterConfiguration");
    assert_eq!(
        cluster["apiServer"]["certSANs"],
        yaml("[first, 127.0.0.2, localhost, my-host]")
    );
    assert_eq!(
        cluster["apiServer"]["extraArgs"],
        yaml("[{name: audit-log-maxage, value: '2'}]")
    );
    assert_eq!(cluster["etcd"], yaml("local: {}"));
    assert_eq!(find(&docs, "KubeProxyConfiguration")["mode"], "nftables");
}

#[test]
fn bad_patches_are_errors_naming_the_patch() {
    let failure = |setup: &dyn Fn(&mut RenderInput)| {
        let mut node = input("v1.34.12", NodeBootstrap::Worker);
        node.node_name = "kindred-worker".into();
        setup(&mut node);
        render(&node).unwrap_err().to_string()
    };
    let good = "kind: JoinConfiguration\n".to_string();

    let err = failure(&|n| n.cluster_patches = vec![good.clone(), "kind: [unclosed\n".into()]);
    assert!(
        err.starts_with("kubeadmConfigPatches[1]: is not valid YAML"),
        "{err}"
    );
    let err = failure(&|n| n.node_patches = vec!["- a list\n".into()]);
    assert_eq!(
        err,
        "node \"kindred-worker\" kubeadmConfigPatches[0]: document 0 is not a YAML map"
    );
    let err = failure(&|n| n.cluster_patches = vec![format!("{good}---\ncaCertPath: x\n")]);
    assert_eq!(
        err,
        "kubeadmConfigPatches[0]: document 1 has no `kind` naming the kubeadm document it patches"
    );
    let err = failure(&|n| {
        n.cluster_patches = vec![
            "kind: JoinConfiguration\nnodeRegistration: {kubeletExtraArgs: [{value: x}]}\n".into(),
        ]
    });
    assert_eq!(
        err,
        "kubeadmConfigPatches[0]: cannot apply to JoinConfiguration: \
         kubeletExtraArgs: every entry of the list needs a `name`"
    );
    let json = |patch: &str| PatchJson6902 {
        kind: "JoinConfiguration".into(),
        patch: patch.into(),
        ..PatchJson6902::default()
    };
    let err = failure(&|n| {
        n.node_patches_json6902 = vec![
            json("[]"),
            json("[{op: remove, path: /nodeRegistration/taints}]"),
        ]
    });
    assert_eq!(
        err,
        "node \"kindred-worker\" kubeadmConfigPatchesJSON6902[1]: cannot apply to JoinConfiguration: \
         operation 0 (remove /nodeRegistration/taints): path /nodeRegistration/taints does not \
         exist (or a list index is out of range)"
    );
    let err = failure(&|n| n.cluster_patches_json6902 = vec![json("op: add")]);
    assert_eq!(
        err,
        "kubeadmConfigPatchesJSON6902[0]: patch is not a list of JSON patch operations"
    );
    let err = failure(&|n| n.cluster_patches_json6902 = vec![json("[")]);
    assert!(
        err.starts_with("kubeadmConfigPatchesJSON6902[0]: patch is not valid YAML or JSON"),
        "{err}"
    );
}

#[test]
fn unknown_version_formats_are_errors() {
    for version in ["", "latest", "v1.34", "1.34.x", "v1.34.12.3"] {
        let err = render(&input(version, NodeBootstrap::FirstControlPlane)).unwrap_err();
        assert!(
            matches!(err, KubeadmError::Version { .. }),
            "{version}: {err}"
        );
        assert!(err.to_string().contains("vMAJOR.MINOR.PATCH"), "{err}");
    }
}

#[test]
fn bad_input_is_reported_by_field() {
    let err = |setup: &dyn Fn(&mut RenderInput)| {
        let mut node = input("v1.34.12", NodeBootstrap::FirstControlPlane);
        setup(&mut node);
        render(&node).unwrap_err().to_string()
    };
    assert_eq!(
        err(&|n| n.node_ips.clear()),
        "cannot render the kubeadm config: node_ips must hold one address (two for dual-stack), not 0"
    );
    assert!(err(&|n| n.node_ips = vec!["node-1".into()]).contains("not an IP address"));
    assert!(
        err(&|n| n.bootstrap_token = "abcdef.0123456789ABCDEF".into()).contains("bootstrap_token")
    );
    assert!(
        err(&|n| n.bootstrap_token = "abcdef0123456789abcdef".into()).contains("bootstrap_token")
    );
    assert!(err(&|n| n.certificate_key = Some("abc".into())).contains("certificate_key"));
    assert!(err(&|n| n.control_plane_endpoint.clear()).contains("control_plane_endpoint is empty"));
}

#[test]
fn from_cluster_takes_the_cluster_and_node_settings() {
    let cluster = crate::config::parse(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: demo
featureGates: {A: true}
networking: {kubeProxyMode: none}
kubeadmConfigPatches: ['kind: ClusterConfiguration']
nodes:
- role: worker
  labels: {tier: db}
  kubeadmConfigPatches: ['kind: JoinConfiguration']
",
        "test.yaml",
    )
    .unwrap()
    .with_defaults();
    let node = RenderInput::from_cluster(&cluster, &cluster.nodes[0]);
    assert_eq!(node.cluster_name, "demo");
    assert_eq!(node.pod_subnet, "10.244.0.0/16");
    assert_eq!(node.kube_proxy_mode, KubeProxyMode::None);
    assert_eq!(
        node.feature_gates,
        BTreeMap::from([("A".to_string(), true)])
    );
    assert_eq!(node.node_labels["tier"], "db");
    assert_eq!(node.cluster_patches, ["kind: ClusterConfiguration"]);
    assert_eq!(node.node_patches, ["kind: JoinConfiguration"]);
    assert!(node.kubernetes_version.is_empty() && node.node_ips.is_empty());
}
