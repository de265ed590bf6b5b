//! Reading a cluster config file strictly: unknown fields are errors, so a typo cannot silently
//! turn into a default.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::error::ConfigError;
use super::types::{Cluster, CLUSTER_KIND, KINDRED_API_VERSION, KIND_API_VERSION};

/// Decodes a cluster config. `source` names it in messages: a file name, or "-" for stdin.
pub fn parse(yaml: &str, source: &str) -> Result<Cluster, ConfigError> {
    let file = display_name(source);
    // A first, lenient look at apiVersion and kind, so that a file of another kind or version
    // is reported as such rather than as a pile of unknown fields.
    let document: Value = serde_yaml::from_str(yaml).map_err(|e| decode_error(&file, e))?;
    // YAML merge keys (`<<: *anchor`), which kind accepts: expanded before decoding.
    let merged = if has_merge_key(&document) {
        let mut merged = document.clone();
        merged.apply_merge().map_err(|e| decode_error(&file, e))?;
        Some(merged)
    } else {
        None
    };
    let map = match document {
        Value::Null => return Err(ConfigError::Empty { file }),
        Value::Mapping(map) => map,
        other => {
            return Err(ConfigError::Decode {
                file,
                message: format!(
                    "a cluster config is a YAML map (apiVersion, kind, nodes, ...), \
                     not {}",
                    describe(&other)
                ),
            })
        }
    };
    let api_version = map.get("apiVersion").map(scalar_text);
    if !matches!(
        api_version.as_deref(),
        Some(KIND_API_VERSION | KINDRED_API_VERSION)
    ) {
        return Err(ConfigError::ApiVersion {
            file,
            found: api_version,
        });
    }
    let kind = map.get("kind").map(scalar_text);
    if kind.as_deref() != Some(CLUSTER_KIND) {
        return Err(ConfigError::Kind { file, found: kind });
    }
    // kindred's own fields stay out of kind's schema, so a kind config means the same to both.
    let kindred_fields = [
        ("registry", "pass `--registry` to `kindred create cluster`"),
        (
            "loadBalancerServices",
            "pass `--disable-load-balancer-services` to `kindred create cluster`",
        ),
        (
            "nodeLifecycle",
            "pass `--disable-node-lifecycle` to `kindred create cluster`",
        ),
    ];
    for (field, flag) in kindred_fields {
        if api_version.as_deref() != Some(KIND_API_VERSION) || !map.contains_key(field) {
            continue;
        }
        let line = yaml
            .lines()
            .position(|l| {
                l.starts_with(&format!("{field}:")) || l.starts_with(&format!("\"{field}\":"))
            })
            .map(|i| format!(" (line {})", i + 1))
            .unwrap_or_default();
        return Err(ConfigError::Decode {
            file,
            message: format!(
                "{field}{line} is a kindred field, not part of kind's {KIND_API_VERSION}; \
                 use `apiVersion: {KINDRED_API_VERSION}` (same schema plus kindred's fields), \
                 or keep the kind config and {flag}"
            ),
        });
    }
    // Decoding from the text (not from `document`) keeps line numbers in the messages; a
    // document with merge keys has to be decoded from its expanded form, without them.
    match merged {
        Some(merged) => serde_yaml::from_value(merged).map_err(|e| decode_error(&file, e)),
        None => serde_yaml::from_str(yaml).map_err(|e| decode_error(&file, e)),
    }
}

/// Whether a `<<` key appears anywhere in `value`.
fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(items) => items.iter().any(has_merge_key),
        Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}

/// Reads and decodes a cluster config from a file, or from stdin when `path` is "-".
///
/// Also returns the absolute directory of the file (None for stdin), against which relative
/// `extraMounts` host paths are resolved (`Cluster::resolve_host_paths`).
pub fn load(path: &str) -> Result<(Cluster, Option<PathBuf>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        file: display_name(path),
        source,
    };
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        return Ok((parse(&text, path)?, None));
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let dir = std::path::absolute(path)
        .map_err(read_error)?
        .parent()
        .map(Path::to_path_buf);
    Ok((parse(&text, path)?, dir))
}

fn display_name(source: &str) -> String {
    match source {
        "-" => "<stdin>".to_string(),
        other => other.to_string(),
    }
}

fn decode_error(file: &str, error: serde_yaml::Error) -> ConfigError {
    let message = error.to_string();
    // serde_yaml's own wording for a second `---` document is unclear to a config author.
    let message = if message.contains("more than one document") {
        "the file holds more than one YAML document (`---`); a cluster config is a single \
         document"
            .to_string()
    } else {
        message
    };
    ConfigError::Decode {
        file: file.to_string(),
        message,
    }
}

/// The text of a scalar as written (`apiVersion: 1` is "1"); other values in YAML form.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Sequence(_) => "a list",
        Value::Tagged(_) => "a tagged value",
        _ => "a single value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{
        IpFamily, KubeProxyMode, Mount, MountPropagation, NodeRole, PatchJson6902, PortMapping,
        PortProtocol,
    };

    fn parse_ok(yaml: &str) -> Cluster {
        parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(yaml: &str) -> String {
        match parse(yaml, "test.yaml") {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Every field of the schema, each set to something other than its default.
    const EVERY_FIELD: &str = r#"
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: everything
featureGates:
  InPlacePodVerticalScaling: true
  SomeAlphaThing: false
runtimeConfig:
  "api/alpha": "false"
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  apiServer:
    extraArgs:
      v: "4"
kubeadmConfigPatchesJSON6902:
- group: kubeadm.k8s.io
  version: v1beta3
  kind: ClusterConfiguration
  name: config
  namespace: kube-system
  patch: |
    - op: add
      path: /apiServer/certSANs/-
      value: my-hostname
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
containerdConfigPatchesJSON6902:
- '[{"op": "remove", "path": "/version"}]'
networking:
  ipFamily: ipv6
  apiServerAddress: "::1"
  apiServerPort: 6443
  podSubnet: fd00:100::/56
  serviceSubnet: fd00:200::/112
  disableDefaultCNI: true
  kubeProxyMode: ipvs
  dnsSearch:
  - example.test
nodes:
- role: control-plane
  image: kindred/node:v1.34.12
  labels:
    tier: frontend
  extraMounts:
  - hostPath: /srv/data
    containerPath: /data
    readOnly: true
    selinuxRelabel: true
    propagation: HostToContainer
  extraPortMappings:
  - containerPort: 80
    hostPort: 8080
    listenAddress: 127.0.0.1
    protocol: UDP
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
  kubeadmConfigPatchesJSON6902:
  - group: kubeadm.k8s.io
    version: v1beta3
    kind: InitConfiguration
    patch: "[]"
- role: worker
"#;

    #[test]
    fn decodes_every_field() {
        let c = parse_ok(EVERY_FIELD);
        assert_eq!(c.api_version, KIND_API_VERSION);
        assert_eq!(c.kind, "Cluster");
        assert_eq!(c.name, "everything");
        assert!(c.feature_gates["InPlacePodVerticalScaling"]);
        assert!(!c.feature_gates["SomeAlphaThing"]);
        assert_eq!(c.runtime_config["api/alpha"], "false");
        assert_eq!(c.kubeadm_config_patches.len(), 1);
        assert!(c.kubeadm_config_patches[0].starts_with("kind: ClusterConfiguration\n"));
        assert_eq!(
            c.kubeadm_config_patches_json6902,
            vec![PatchJson6902 {
                group: "kubeadm.k8s.io".into(),
                version: "v1beta3".into(),
                kind: "ClusterConfiguration".into(),
                name: "config".into(),
                namespace: "kube-system".into(),
                patch: "- op: add\n  path: /apiServer/certSANs/-\n  value: my-hostname\n".into(),
            }]
        );
        assert_eq!(
            c.containerd_config_patches,
            vec![
                "[plugins.\"io.containerd.grpc.v1.cri\".registry]
  config_path = \"/etc/containerd/certs.d\""
            ]
        );
        assert_eq!(
            c.containerd_config_patches_json6902,
            vec![r#"[{"op": "remove", "path": "/version"}]"#]
        );

        let n = &c.networking;
        assert_eq!(n.ip_family, IpFamily::Ipv6);
        assert_eq!(n.api_server_address, "::1");
        assert_eq!(n.api_server_port, 6443);
        assert_eq!(n.pod_subnet, "fd00:100::/56");
        assert_eq!(n.service_subnet, "fd00:200::/112");
        assert!(n.disable_default_cni);
        assert_eq!(n.kube_proxy_mode, KubeProxyMode::Ipvs);
        assert_eq!(n.dns_search, Some(vec!["example.test".to_string()]));

        assert_eq!(c.nodes.len(), 2);
        let cp = &c.nodes[0];
        assert_eq!(cp.role, NodeRole::ControlPlane);
        assert_eq!(cp.image, "kindred/node:v1.34.12");
        assert_eq!(cp.labels["tier"], "frontend");
        assert_eq!(
            cp.extra_mounts,
            vec![Mount {
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                read_only: true,
                selinux_relabel: true,
                propagation: MountPropagation::HostToContainer,
            }]
        );
        assert_eq!(
            cp.extra_port_mappings,
            vec![PortMapping {
                container_port: 80,
                host_port: 8080,
                listen_address: "127.0.0.1".into(),
                protocol: PortProtocol::Udp,
            }]
        );
        assert_eq!(cp.kubeadm_config_patches, vec!["kind: InitConfiguration\n"]);
        assert_eq!(
            cp.kubeadm_config_patches_json6902[0].kind,
            "InitConfiguration"
        );
        assert_eq!(cp.kubeadm_config_patches_json6902[0].name, "");
        assert_eq!(c.nodes[1].role, NodeRole::Worker);
        assert_eq!(
            c.nodes[1],
            crate::config::Node {
                role: NodeRole::Worker,
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_registry_decodes_under_kindreds_api_version() {
        let c = parse_ok(
            "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry: {enabled: true, port: 5002, keep: true}\n",
        );
        assert_eq!(
            c.registry,
            Some(crate::config::Registry {
                enabled: Some(true),
                port: Some(5002),
                keep: true,
            })
        );
        assert!(c.registry().is_some());
        // An empty block asks for the registry with its defaults; `enabled: false` does not.
        let c = parse_ok("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry: {}\n");
        assert!(c.registry().is_some());
        let c = parse_ok(
            "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry:\n  enabled: false\n",
        );
        assert!(c.registry.is_some() && c.registry().is_none());
        let c = parse_ok("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\n");
        assert_eq!(c.registry, None);
    }

    #[test]
    fn the_registry_is_not_part_of_kinds_schema() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nname: x\nregistry:\n  port: 5001\n",
        );
        assert!(
            msg.starts_with("test.yaml: registry (line 4) is a kindred field"),
            "{msg}"
        );
        assert!(msg.contains("apiVersion: kindred.dev/v1alpha4"), "{msg}");
        assert!(msg.contains("--registry"), "{msg}");
    }

    #[test]
    fn load_balancer_services_are_on_unless_turned_off() {
        let c = parse_ok("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\n");
        assert!(c.load_balancer_services());
        let c = parse_ok(
            "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nloadBalancerServices:\n  enabled: false\n",
        );
        assert!(!c.load_balancer_services());
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nloadBalancerServices: {enabled: false}\n",
        );
        assert!(
            msg.contains("loadBalancerServices (line 3) is a kindred field"),
            "{msg}"
        );
        assert!(msg.contains("--disable-load-balancer-services"), "{msg}");
        let msg = parse_err(
            "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nloadBalancerServices: {enable: false}\n",
        );
        assert!(msg.contains("unknown field `enable`"), "{msg}");
    }

    #[test]
    fn node_lifecycle_is_on_unless_turned_off() {
        let c = parse_ok("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\n");
        assert!(c.node_lifecycle());
        let c = parse_ok(
            "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nnodeLifecycle: {enabled: false}\n",
        );
        assert!(!c.node_lifecycle());
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodeLifecycle: {enabled: false}\n",
        );
        assert!(
            msg.contains("nodeLifecycle (line 3) is a kindred field"),
            "{msg}"
        );
        assert!(msg.contains("--disable-node-lifecycle"), "{msg}");
    }

    #[test]
    fn registry_typos_are_unknown_fields() {
        let msg =
            parse_err("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry:\n  prot: 5001\n");
        assert!(msg.contains("registry: unknown field `prot`"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
        let msg =
            parse_err("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry:\n  port: five\n");
        assert!(msg.contains("registry.port"), "{msg}");
    }

    #[test]
    fn kindred_api_version_is_accepted() {
        let c = parse_ok("apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nname: k\n");
        assert_eq!(c.api_version, KINDRED_API_VERSION);
        assert_eq!(c.name, "k");
    }

    #[test]
    fn every_enum_spelling_decodes() {
        let c = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking: {ipFamily: dual, kubeProxyMode: nftables}
nodes:
- extraMounts:
  - {hostPath: /a, containerPath: /a, propagation: None}
  - {hostPath: /b, containerPath: /b, propagation: Bidirectional}
  extraPortMappings:
  - {containerPort: 1, protocol: TCP}
  - {containerPort: 2, protocol: SCTP}
",
        );
        assert_eq!(c.networking.ip_family, IpFamily::Dual);
        assert_eq!(c.networking.kube_proxy_mode, KubeProxyMode::Nftables);
        let node = &c.nodes[0];
        assert_eq!(node.role, NodeRole::ControlPlane, "kind's default role");
        assert_eq!(node.extra_mounts[0].propagation, MountPropagation::None);
        assert_eq!(
            node.extra_mounts[1].propagation,
            MountPropagation::Bidirectional
        );
        assert_eq!(node.extra_port_mappings[0].protocol, PortProtocol::Tcp);
        assert_eq!(node.extra_port_mappings[1].protocol, PortProtocol::Sctp);
        let none = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking: {kubeProxyMode: none, ipFamily: ipv4}
",
        );
        assert_eq!(none.networking.kube_proxy_mode, KubeProxyMode::None);
        assert_eq!(none.networking.ip_family, IpFamily::Ipv4);
    }

    #[test]
    fn empty_keys_decode_as_empty_values() {
        // Keys whose entries are all commented out are null in YAML; kind treats them as empty.
        let c = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking:
featureGates:
nodes:
- role: worker
  extraMounts:
  # - hostPath: /tmp
  labels:
",
        );
        assert_eq!(c.networking, Default::default());
        assert!(c.feature_gates.is_empty());
        assert!(c.nodes[0].extra_mounts.is_empty());
        assert!(c.nodes[0].labels.is_empty());
    }

    #[test]
    fn dns_search_distinguishes_absent_from_empty() {
        let absent = parse_ok("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n");
        assert_eq!(absent.networking.dns_search, None);
        let empty = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnetworking:\n  dnsSearch: []\n",
        );
        assert_eq!(empty.networking.dns_search, Some(vec![]));
    }

    #[test]
    fn unknown_field_names_field_line_and_file() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- role: control-plane
  extraPortMapings:
  - containerPort: 80
",
        );
        assert!(msg.starts_with("test.yaml: "), "{msg}");
        assert!(msg.contains("unknown field `extraPortMapings`"), "{msg}");
        assert!(
            msg.contains("extraPortMappings"),
            "lists the right name: {msg}"
        );
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("nodes[0]"), "{msg}");
    }

    #[test]
    fn unknown_top_level_field_is_reported() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n\nnode:\n- role: worker\n",
        );
        assert!(msg.contains("unknown field `node`"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn unknown_networking_field_is_reported() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking:
  podSubnets: 10.0.0.0/16
",
        );
        assert!(
            msg.contains("networking: unknown field `podSubnets`"),
            "{msg}"
        );
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn misspelled_role_names_the_allowed_ones() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes:\n- role: controlplane\n",
        );
        assert!(msg.contains("nodes[0].role"), "{msg}");
        assert!(msg.contains("unknown variant `controlplane`"), "{msg}");
        assert!(msg.contains("`control-plane` or `worker`"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn bad_enum_values_name_the_allowed_ones() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnetworking:\n  ipFamily: IPv6\n",
        );
        assert!(msg.contains("`ipv4`, `ipv6`, `dual`"), "{msg}");
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- extraMounts:
  - propagation: rshared
",
        );
        assert!(
            msg.contains("`None`, `HostToContainer`, `Bidirectional`"),
            "{msg}"
        );
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- extraPortMappings:
  - protocol: tcp
",
        );
        assert!(msg.contains("`TCP`, `UDP`, `SCTP`"), "{msg}");
    }

    #[test]
    fn wrong_type_is_reported_with_line() {
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking:
  apiServerPort: high
",
        );
        assert!(msg.contains("networking.apiServerPort"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn wrong_api_version_names_found_and_accepted() {
        let msg = parse_err("apiVersion: kind.x-k8s.io/v1beta1\nkind: Cluster\n");
        assert!(msg.contains("\"kind.x-k8s.io/v1beta1\""), "{msg}");
        assert!(msg.contains(KIND_API_VERSION), "{msg}");
        assert!(msg.contains(KINDRED_API_VERSION), "{msg}");

        let msg = parse_err("kind: Cluster\nnodes: []\n");
        assert!(msg.contains("apiVersion is missing"), "{msg}");
        assert!(msg.contains(KIND_API_VERSION), "{msg}");

        // Reported as a version problem even though its fields would not decode either.
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha3
kind: Cluster
nodes:
- role: control-plane
  extraPortMappings: []
  oldField: 1
",
        );
        assert!(
            msg.contains("kind.x-k8s.io/v1alpha3 is an older kind schema"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_kind_is_reported() {
        let msg = parse_err("apiVersion: kind.x-k8s.io/v1alpha4\nkind: InitConfiguration\n");
        assert!(msg.contains("kind is \"InitConfiguration\""), "{msg}");
        assert!(msg.contains("kind: Cluster"), "{msg}");
        let msg = parse_err("apiVersion: kind.x-k8s.io/v1alpha4\nname: x\n");
        assert!(msg.contains("kind is missing"), "{msg}");
    }

    #[test]
    fn empty_document_is_an_error() {
        for empty in ["", "\n\n", "# only a comment\n", "---\n"] {
            let err = parse(empty, "-").unwrap_err();
            assert!(matches!(err, ConfigError::Empty { .. }), "{empty:?}: {err}");
            let msg = err.to_string();
            assert!(
                msg.starts_with("<stdin>: the cluster config is empty"),
                "{msg}"
            );
            assert!(msg.contains("kind: Cluster"), "{msg}");
        }
    }

    #[test]
    fn non_map_documents_and_syntax_errors_are_reported() {
        let msg = parse_err("- kind: Cluster\n");
        assert!(msg.contains("not a list"), "{msg}");
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes:\n- role: worker\n role: x\n",
        );
        assert!(msg.starts_with("test.yaml: "), "{msg}");
        assert!(msg.contains("line "), "{msg}");
        let msg =
            parse_err("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n---\nkind: Cluster\n");
        assert!(msg.contains("more than one YAML document"), "{msg}");
    }

    #[test]
    fn merge_keys_are_expanded_as_kind_does() {
        let merged = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- &worker
  role: worker
  labels: {tier: a}
- <<: *worker
  image: kindred/node:v1.34.12
- <<: *worker
  labels: {tier: b}
",
        );
        let expanded = parse_ok(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- {role: worker, labels: {tier: a}}
- {role: worker, labels: {tier: a}, image: kindred/node:v1.34.12}
- {role: worker, labels: {tier: b}}
",
        );
        assert_eq!(merged, expanded);
        // Still strict: an unknown field merged in is reported.
        let msg = parse_err(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes:\n- <<: {rol: worker}\n",
        );
        assert!(msg.contains("unknown field `rol`"), "{msg}");
    }

    #[test]
    fn duplicate_field_is_an_error() {
        let msg =
            parse_err("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nname: a\nname: b\n");
        assert!(msg.contains("name"), "{msg}");
    }

    #[test]
    fn load_reads_a_file_and_returns_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(
            &path,
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nname: from-file\n",
        )
        .unwrap();
        let (cluster, base) = load(path.to_str().unwrap()).unwrap();
        assert_eq!(cluster.name, "from-file");
        assert_eq!(base.as_deref(), Some(dir.path()));
    }

    #[test]
    fn load_names_a_missing_file() {
        let msg = load("/nonexistent/kindred-config.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot read cluster config /nonexistent/kindred-config.yaml"),
            "{msg}"
        );
    }

    #[test]
    fn serializes_back_to_an_equal_config() {
        let c = parse_ok(EVERY_FIELD);
        let yaml = serde_yaml::to_string(&c).unwrap();
        assert_eq!(parse_ok(&yaml), c, "{yaml}");
    }
}
