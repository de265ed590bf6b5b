//! Checking a (defaulted) config before anything is created, so that mistakes surface as one
//! list of field-by-field problems rather than as a half-built cluster.

mod names;
mod network;
mod patches;
mod ports;
mod registry;

use std::collections::BTreeMap;

use super::error::{ConfigError, Problem};
use super::types::{Cluster, Mount, Node, NodeRole};

/// Longest cluster name: kind's limit. Node names add up to 15 characters
/// (`-control-plane2`) and must stay usable as container and host names.
const MAX_NAME_LEN: usize = 50;
/// Most nodes in one cluster. Each node is a container running systemd, containerd and
/// kubelet; past this, creating and joining them takes longer than anyone waits and no host
/// kindred runs on holds them (a worker alone needs ~128 MiB), so a larger count is almost
/// always a typo or a generated config gone wrong.
pub const MAX_NODES: usize = 100;

/// Paths a node container gets from kindred itself (tmpfs, the /var volume, the root), which
/// an extra mount cannot replace.
/// ("" is the root, `/`).
const RESERVED_PATHS: [&str; 4] = ["", "/var", "/run", "/tmp"];

impl Cluster {
    /// Reports every problem found, each with its field path. Meant for a config that went
    /// through `with_defaults` (unset subnets and addresses are not checked).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        check_name(&self.name, &mut problems);
        check_nodes(&self.nodes, &mut problems);
        network::check_networking(&self.networking, &mut problems);
        if let Some(r) = &self.registry {
            registry::check_registry(r, &mut problems);
        }
        ports::check_host_ports(self, &mut problems);
        check_keys("featureGates", self.feature_gates.keys(), &mut problems);
        check_keys("runtimeConfig", self.runtime_config.keys(), &mut problems);
        patches::check_merge_patches(
            "kubeadmConfigPatches",
            &self.kubeadm_config_patches,
            &mut problems,
        );
        patches::check_json6902_patches(
            "kubeadmConfigPatchesJSON6902",
            &self.kubeadm_config_patches_json6902,
            &mut problems,
        );
        for (i, patch) in self.containerd_config_patches.iter().enumerate() {
            if let Err(message) = crate::containerd::parse_merge_patch(patch) {
                problems.add(format!("containerdConfigPatches[{i}]"), message);
            }
        }
        for (i, patch) in self.containerd_config_patches_json6902.iter().enumerate() {
            patches::check_operations(
                &format!("containerdConfigPatchesJSON6902[{i}]"),
                patch,
                &mut problems,
            );
        }
        problems.into_result()
    }
}

/// Collects problems so that one run reports all of them.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: self.0 })
        }
    }
}

fn check_name(name: &str, problems: &mut Problems) {
    if name.len() > MAX_NAME_LEN || !names::is_dns_subdomain(name) {
        problems.add(
            "name",
            format!(
                "\"{name}\" is not a valid cluster name: use 1-{MAX_NAME_LEN} lowercase letters, \
                 digits, '-' and '.', starting and ending with a letter or digit (node \
                 containers are named <name>-control-plane, <name>-worker2, ...)"
            ),
        );
    }
}

fn check_nodes(nodes: &[Node], problems: &mut Problems) {
    if nodes.len() > MAX_NODES {
        problems.add(
            "nodes",
            format!(
                "{} nodes; kindred creates at most {MAX_NODES} nodes per cluster (each is a \
                 container running systemd, containerd and kubelet); use fewer nodes, or split \
                 the workload over several clusters",
                nodes.len()
            ),
        );
    }
    if !nodes.iter().any(|n| n.role == NodeRole::ControlPlane) {
        problems.add(
            "nodes",
            "there is no control-plane node; add a node with `role: control-plane` \
             (nodes without a role are control-plane nodes)",
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let at = format!("nodes[{i}]");
        check_labels(&format!("{at}.labels"), &node.labels, problems);
        for (j, mount) in node.extra_mounts.iter().enumerate() {
            let field = format!("{at}.extraMounts[{j}]");
            check_mount(&field, mount, problems);
            let path = mount.container_path.trim_end_matches('/');
            if node.extra_mounts[..j]
                .iter()
                .any(|m| m.container_path.trim_end_matches('/') == path && !path.is_empty())
            {
                problems.add(
                    format!("{field}.containerPath"),
                    format!(
                        "\"{}\" is already mounted by an earlier entry; each path inside a node \
                         can be mounted once",
                        mount.container_path
                    ),
                );
            }
        }
        for (j, mapping) in node.extra_port_mappings.iter().enumerate() {
            ports::check_port_mapping(&format!("{at}.extraPortMappings[{j}]"), mapping, problems);
        }
        patches::check_merge_patches(
            &format!("{at}.kubeadmConfigPatches"),
            &node.kubeadm_config_patches,
            problems,
        );
        patches::check_json6902_patches(
            &format!("{at}.kubeadmConfigPatchesJSON6902"),
            &node.kubeadm_config_patches_json6902,
            problems,
        );
    }
}

fn check_mount(at: &str, mount: &Mount, problems: &mut Problems) {
    if mount.host_path.is_empty() {
        problems.add(
            format!("{at}.hostPath"),
            "is empty; give the host file or directory to mount",
        );
    }
    if mount.container_path.is_empty() {
        problems.add(
            format!("{at}.containerPath"),
            "is empty; give an absolute path inside the node, e.g. /data",
        );
    } else if !mount.container_path.starts_with('/') {
        problems.add(
            format!("{at}.containerPath"),
            format!(
                "\"{}\" is not an absolute path; paths inside the node start with /",
                mount.container_path
            ),
        );
    }
    let trimmed = mount.container_path.trim_end_matches('/');
    if mount.container_path.starts_with('/') && RESERVED_PATHS.contains(&trimmed) {
        problems.add(
            format!("{at}.containerPath"),
            format!(
                "\"{}\" would replace the node's own {}; mount below it instead, e.g. \
                 {trimmed}/data",
                mount.container_path,
                if trimmed.is_empty() {
                    "root filesystem"
                } else {
                    "filesystem there"
                },
            ),
        );
    }
    // Docker's bind syntax (`host:container:options`) has no way to escape a colon.
    for (field, path) in [
        ("hostPath", &mount.host_path),
        ("containerPath", &mount.container_path),
    ] {
        if path.contains(':') {
            problems.add(
                format!("{at}.{field}"),
                format!("\"{path}\" contains ':', which Docker bind mounts cannot express"),
            );
        }
    }
}

fn check_labels(at: &str, labels: &BTreeMap<String, String>, problems: &mut Problems) {
    for (key, value) in labels {
        if !names::is_label_key(key) {
            problems.add(
                at,
                format!(
                    "\"{key}\" is not a valid label key: use up to 63 letters, digits, '-', '_' \
                     and '.', starting and ending with a letter or digit, optionally after a \
                     DNS prefix and '/' (e.g. example.com/tier)"
                ),
            );
        }
        if !value.is_empty() && !names::is_label_name(value) {
            problems.add(
                at,
                format!(
                    "\"{value}\" (the value of {key}) is not a valid label value: use up to 63 \
                     letters, digits, '-', '_' and '.', starting and ending with a letter or \
                     digit, or leave it empty"
                ),
            );
        }
    }
}

/// Feature gates and runtime config end up as `key=value,key=value` command line flags.
fn check_keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>, problems: &mut Problems) {
    for key in keys {
        if key.trim().is_empty() {
            problems.add(field, "has an empty key");
        } else if key.contains([',', '=']) || key.contains(char::is_whitespace) {
            problems.add(
                field,
                format!(
                    "key \"{key}\" contains ',', '=' or whitespace, which cannot be passed in \
                     a command line flag"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    /// Parses, defaults and validates; returns the problems as "field: message" lines.
    pub(super) fn problems_of(yaml: &str) -> Vec<String> {
        let cluster = parse(yaml, "test.yaml").unwrap().with_defaults();
        match cluster.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    pub(super) const HEADER: &str = "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n";

    #[test]
    fn valid_names() {
        for name in ["kindred", "a", "dev-1", "team.a", "x".repeat(50).as_str()] {
            let yaml = format!("{HEADER}name: \"{name}\"\n");
            assert_eq!(problems_of(&yaml), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn bad_names_say_what_is_allowed() {
        let too_long = "x".repeat(51);
        for name in [
            "My-Cluster",
            "under_score",
            "-lead",
            "trail-",
            "a..b",
            "a.-b",
            "sp ace",
            too_long.as_str(),
        ] {
            let yaml = format!("{HEADER}name: \"{name}\"\n");
            let problems = problems_of(&yaml);
            assert_eq!(problems.len(), 1, "{name}: {problems:?}");
            assert!(
                problems[0].starts_with(&format!("name: \"{name}\" is not a valid cluster name"))
            );
            assert!(problems[0].contains("lowercase letters, digits, '-' and '.'"));
            assert!(problems[0].contains("1-50"));
        }
    }

    #[test]
    fn more_nodes_than_the_limit_are_refused_with_the_reason_and_fix() {
        let workers = |n: usize| {
            let mut yaml = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n".to_string();
            yaml.push_str(&"- role: worker\n".repeat(n));
            problems_of(&yaml)
        };
        assert!(workers(MAX_NODES - 1).is_empty(), "{:?}", workers(99));
        let problems = workers(3000);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("3001 nodes; kindred creates at most 100 nodes per cluster"),
            "{problems:?}"
        );
        assert!(problems[0].contains("use fewer nodes"), "{problems:?}");
    }

    #[test]
    fn no_control_plane_is_reported() {
        let problems = problems_of(&format!("{HEADER}nodes:\n- role: worker\n- role: worker\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("nodes: there is no control-plane node"));
        assert!(problems[0].contains("role: control-plane"));
    }

    #[test]
    fn mount_paths_are_checked() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- extraMounts:
  - hostPath: /ok
    containerPath: relative/path
  - containerPath: /data
  - hostPath: /a:b
    containerPath: /c
"
        ));
        assert_eq!(
            problems,
            vec![
                "nodes[0].extraMounts[0].containerPath: \"relative/path\" is not an absolute path; \
                 paths inside the node start with /",
                "nodes[0].extraMounts[1].hostPath: is empty; give the host file or directory to \
                 mount",
                "nodes[0].extraMounts[2].hostPath: \"/a:b\" contains ':', which Docker bind \
                 mounts cannot express",
            ]
        );
    }

    #[test]
    fn labels_are_checked() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- labels:
    ok: yes-1
    example.com/tier: web
    \"bad key\": x
    good: \"bad value!\"
"
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("nodes[0].labels: \"bad key\" is not a valid label key"));
        assert!(
            problems[1].contains("\"bad value!\" (the value of good) is not a valid label value")
        );
    }

    #[test]
    fn feature_gate_and_runtime_config_keys_are_checked() {
        let problems = problems_of(&format!(
            "{HEADER}featureGates:
  \"\": true
  Good: true
runtimeConfig:
  \"a=b\": \"true\"
  api/all: \"true\"
"
        ));
        assert_eq!(
            problems,
            vec![
                "featureGates: has an empty key",
                "runtimeConfig: key \"a=b\" contains ',', '=' or whitespace, which cannot be \
                 passed in a command line flag",
            ]
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let yaml = format!(
            "{HEADER}name: Bad_Name
networking:
  podSubnet: 10.0.0.0/8
  serviceSubnet: 10.96.0.0/12
  apiServerPort: -1
nodes:
- role: worker
  extraPortMappings:
  - containerPort: 80
    hostPort: 70000
  extraMounts:
  - hostPath: /x
    containerPath: x
"
        );
        let err = parse(&yaml, "test.yaml")
            .unwrap()
            .with_defaults()
            .validate()
            .unwrap_err();
        let ConfigError::Invalid { problems } = &err else {
            panic!("{err}")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "nodes",
                "nodes[0].extraMounts[0].containerPath",
                "nodes[0].extraPortMappings[0].hostPort",
                "networking.apiServerPort",
                "networking.serviceSubnet",
            ]
        );
        // One line per problem, under a heading.
        let text = err.to_string();
        assert!(
            text.starts_with("invalid cluster config:\n  name: "),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1 + problems.len(), "{text}");
        assert!(text
            .contains("\n  nodes[0].extraPortMappings[0].hostPort: 70000 is out of range 0-65535"));
    }

    #[test]
    fn mount_container_paths_must_be_unique_and_not_the_nodes_own() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- extraMounts:
  - {{hostPath: /a, containerPath: /data}}
  - {{hostPath: /b, containerPath: /data/}}
  - {{hostPath: /c, containerPath: /var}}
  - {{hostPath: /d, containerPath: /}}
  - {{hostPath: /e, containerPath: /var/lib/data}}
- role: worker
  extraMounts:
  - {{hostPath: /a, containerPath: /data}}
"
        ));
        assert_eq!(
            problems,
            [
                "nodes[0].extraMounts[1].containerPath: \"/data/\" is already mounted by an \
                 earlier entry; each path inside a node can be mounted once",
                "nodes[0].extraMounts[2].containerPath: \"/var\" would replace the node's own \
                 filesystem there; mount below it instead, e.g. /var/data",
                "nodes[0].extraMounts[3].containerPath: \"/\" would replace the node's own root \
                 filesystem; mount below it instead, e.g. /data",
            ]
        );
    }

    /// Every kind of mistake in the node options and patches, each with the field and a hint.
    #[test]
    fn every_invalid_option_is_explained() {
        let invalid = |yaml: &str| problems_of(&format!("{HEADER}{yaml}"));
        let cases: [(&str, &str); 8] = [
            (
                "nodes:\n- extraPortMappings:\n  - {containerPort: 99999, hostPort: 80}\n",
                "nodes[0].extraPortMappings[0].containerPort: 99999 is out of range 1-65535",
            ),
            (
                "nodes:\n- extraPortMappings:\n  - {containerPort: 80, hostPort: -5}\n",
                "nodes[0].extraPortMappings[0].hostPort: -5 is out of range 0-65535 (0 picks a \
                 free port)",
            ),
            (
                "nodes:\n- extraPortMappings:\n  - {containerPort: 80, hostPort: 8080}\n\
                 - role: worker\n  extraPortMappings:\n  - {containerPort: 81, hostPort: 8080}\n",
                "nodes[1].extraPortMappings[0].hostPort: 0.0.0.0:8080/TCP is already published \
                 by nodes[0].extraPortMappings[0]",
            ),
            (
                "nodes:\n- extraPortMappings:\n  - {containerPort: 80, listenAddress: 'my-host'}\n",
                "nodes[0].extraPortMappings[0].listenAddress: \"my-host\" is not an IP address",
            ),
            (
                "nodes:\n- extraMounts:\n  - {hostPath: /a, containerPath: data}\n",
                "nodes[0].extraMounts[0].containerPath: \"data\" is not an absolute path",
            ),
            (
                "containerdConfigPatches:\n- |\n  [plugins.x\n  a = 1\n",
                "containerdConfigPatches[0]: is not valid TOML (line 1 column",
            ),
            (
                "containerdConfigPatchesJSON6902:\n- '{op: add, path: /a}'\n",
                "containerdConfigPatchesJSON6902[0]: is not a list of JSON patch operations",
            ),
            (
                "kubeadmConfigPatchesJSON6902:\n- kind: KubeletConfiguration\n  patch: '[{op: nope}]'\n",
                "kubeadmConfigPatchesJSON6902[0].patch: operation 0 needs `op` set to one of add",
            ),
        ];
        for (yaml, expected) in cases {
            let problems = invalid(yaml);
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{yaml}\nexpected {expected}\ngot {problems:?}"
            );
        }
        // Values outside the enums are decoding errors naming the allowed spellings.
        for (yaml, allowed) in [
            (
                "nodes:\n- extraPortMappings:\n  - {containerPort: 80, protocol: HTTP}\n",
                "expected one of `TCP`, `UDP`, `SCTP`",
            ),
            (
                "nodes:\n- extraMounts:\n  - {hostPath: /a, containerPath: /a, propagation: Shared}\n",
                "expected one of `None`, `HostToContainer`, `Bidirectional`",
            ),
        ] {
            let err = parse(&format!("{HEADER}{yaml}"), "test.yaml").unwrap_err().to_string();
            assert!(err.contains(allowed), "{err}");
            assert!(err.contains("nodes[0]"), "{err}");
        }
    }
}
