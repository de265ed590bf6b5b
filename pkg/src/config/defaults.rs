//! Filling in what a config leaves out, with kind's defaults so that kind configs behave the
//! same under kindred.

use std::path::{Path, PathBuf};

use super::types::{Cluster, IpFamily, Node, CLUSTER_KIND, KINDRED_API_VERSION};

/// The cluster name when neither the config, `--name` nor `KINDRED_CLUSTER_NAME` gives one.
pub const DEFAULT_CLUSTER_NAME: &str = "kindred";

/// The local registry's host port when neither the config nor `--registry-port` gives one
/// (kind's documented local registry uses the same).
pub const DEFAULT_REGISTRY_PORT: i32 = 5001;

const IPV4_POD_SUBNET: &str = "10.244.0.0/16";
/// kube-controller-manager hands each node a /64, so the range needs room for many of them.
const IPV6_POD_SUBNET: &str = "fd00:10:244::/56";
/// A /16 rather than kubeadm's /12: kind's choice, which keeps the service IP allocator small.
const IPV4_SERVICE_SUBNET: &str = "10.96.0.0/16";
const IPV6_SERVICE_SUBNET: &str = "fd00:10:96::/112";

impl Cluster {
    /// Sets the cluster name, overriding the config's: for `--name` / `KINDRED_CLUSTER_NAME`.
    pub fn with_name(mut self, name: impl Into<String>) -> Cluster {
        self.name = name.into();
        self
    }

    /// Sets every node's image, overriding the config's: for `--image`.
    pub fn with_node_image(mut self, image: &str) -> Cluster {
        for node in &mut self.nodes {
            node.image = image.to_string();
        }
        self
    }

    /// Turns LoadBalancer Services off (`--disable-load-balancer-services`).
    pub fn without_load_balancer_services(mut self) -> Cluster {
        self.load_balancer_services = Some(super::types::Toggle {
            enabled: Some(false),
        });
        self
    }

    /// Runs no node lifecycle agent (`--disable-node-lifecycle`).
    pub fn without_node_lifecycle(mut self) -> Cluster {
        self.node_lifecycle = Some(super::types::Toggle {
            enabled: Some(false),
        });
        self
    }

    /// Asks for the local registry (`--registry`, `--registry-port`, `--keep-registry`): flags
    /// override the config's settings; a flag left unset keeps the config's.
    pub fn with_registry(mut self, port: Option<u16>, keep: bool) -> Cluster {
        let registry = self.registry.get_or_insert_with(Default::default);
        registry.enabled = Some(true);
        if let Some(port) = port {
            registry.port = Some(i32::from(port));
        }
        registry.keep |= keep;
        self
    }

    /// Fills in everything left unset, with the cgroup v1 default node image. Call after
    /// `with_name` / `with_node_image` and before `validate`.
    pub fn with_defaults(self) -> Cluster {
        self.with_defaults_using(&crate::defaults::default_node_image())
    }

    /// Like `with_defaults`, giving nodes without an image `default_image` (the host's default,
    /// `cluster::host_default`).
    pub fn with_defaults_using(mut self, default_image: &str) -> Cluster {
        if self.api_version.is_empty() {
            self.api_version = KINDRED_API_VERSION.to_string();
        }
        if self.kind.is_empty() {
            self.kind = CLUSTER_KIND.to_string();
        }
        if self.name.is_empty() {
            self.name = DEFAULT_CLUSTER_NAME.to_string();
        }
        if self.nodes.is_empty() {
            // Node's default role is control-plane.
            self.nodes.push(Node::default());
        }

        if let Some(registry) = self.registry.as_mut().filter(|r| r.is_enabled()) {
            registry.port.get_or_insert(DEFAULT_REGISTRY_PORT);
        }

        let family = self.networking.ip_family;
        let net = &mut self.networking;
        if net.api_server_address.is_empty() {
            net.api_server_address = match family {
                IpFamily::Ipv6 => "::1",
                IpFamily::Ipv4 | IpFamily::Dual => "127.0.0.1",
            }
            .to_string();
        }
        if net.pod_subnet.is_empty() {
            net.pod_subnet = subnets_for(family, IPV4_POD_SUBNET, IPV6_POD_SUBNET);
        }
        if net.service_subnet.is_empty() {
            net.service_subnet = subnets_for(family, IPV4_SERVICE_SUBNET, IPV6_SERVICE_SUBNET);
        }
        // apiServerPort 0 (random), ipFamily ipv4, kubeProxyMode iptables, role control-plane,
        // protocol TCP and propagation None are the types' own defaults.

        // Like kind's Docker provider: all IPv6 addresses on IPv6-only clusters.
        let listen_address = match family {
            IpFamily::Ipv6 => "::",
            IpFamily::Ipv4 | IpFamily::Dual => "0.0.0.0",
        };
        for node in &mut self.nodes {
            if node.image.is_empty() {
                node.image = default_image.to_string();
            }
            for mapping in &mut node.extra_port_mappings {
                if mapping.listen_address.is_empty() {
                    mapping.listen_address = listen_address.to_string();
                }
            }
        }
        self
    }

    /// Makes relative `extraMounts` host paths absolute against `base_dir`: the config file's
    /// directory (from `load`), or the current directory for a config read from stdin.
    /// Docker would take a relative path for the name of a volume instead.
    pub fn resolve_host_paths(mut self, base_dir: &Path) -> Cluster {
        for node in &mut self.nodes {
            for mount in &mut node.extra_mounts {
                let host = Path::new(&mount.host_path);
                if !mount.host_path.is_empty() && host.is_relative() {
                    // components() drops the "." of "./data".
                    let joined: PathBuf = base_dir.join(host).components().collect();
                    mount.host_path = joined.to_string_lossy().into_owned();
                }
            }
        }
        self
    }
}

fn subnets_for(family: IpFamily, ipv4: &str, ipv6: &str) -> String {
    match family {
        IpFamily::Ipv4 => ipv4.to_string(),
        IpFamily::Ipv6 => ipv6.to_string(),
        IpFamily::Dual => format!("{ipv4},{ipv6}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{
        KubeProxyMode, Mount, MountPropagation, NodeRole, PortMapping, PortProtocol,
    };
    use crate::config::{parse, Networking};

    fn defaulted(yaml: &str) -> Cluster {
        parse(yaml, "test.yaml").unwrap().with_defaults()
    }

    #[test]
    fn empty_cluster_gets_one_control_plane_and_ipv4_networking() {
        let c = defaulted("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n");
        assert_eq!(c.name, "kindred");
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.nodes[0].role, NodeRole::ControlPlane);
        assert_eq!(c.nodes[0].image, crate::defaults::default_node_image());
        assert_eq!(
            c.networking,
            Networking {
                ip_family: IpFamily::Ipv4,
                api_server_address: "127.0.0.1".into(),
                api_server_port: 0,
                pod_subnet: "10.244.0.0/16".into(),
                service_subnet: "10.96.0.0/16".into(),
                disable_default_cni: false,
                kube_proxy_mode: KubeProxyMode::Iptables,
                dns_search: None,
            }
        );
        assert!(c.validate().is_ok());
    }

    #[test]
    fn ipv6_defaults() {
        let c = defaulted(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
networking:
  ipFamily: ipv6
nodes:
- extraPortMappings:
  - containerPort: 80
",
        );
        assert_eq!(c.networking.api_server_address, "::1");
        assert_eq!(c.networking.pod_subnet, "fd00:10:244::/56");
        assert_eq!(c.networking.service_subnet, "fd00:10:96::/112");
        assert_eq!(c.nodes[0].extra_port_mappings[0].listen_address, "::");
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }

    #[test]
    fn dual_stack_defaults_list_ipv4_first() {
        let c = defaulted(
            "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnetworking:\n  ipFamily: dual\n",
        );
        assert_eq!(c.networking.api_server_address, "127.0.0.1");
        assert_eq!(c.networking.pod_subnet, "10.244.0.0/16,fd00:10:244::/56");
        assert_eq!(c.networking.service_subnet, "10.96.0.0/16,fd00:10:96::/112");
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }

    #[test]
    fn given_values_are_kept() {
        let c = defaulted(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
name: mine
networking:
  apiServerAddress: 0.0.0.0
  apiServerPort: 6443
  podSubnet: 192.168.0.0/16
nodes:
- role: worker
  image: my/node:dev
- role: control-plane
",
        );
        assert_eq!(c.name, "mine");
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].image, "my/node:dev");
        assert_eq!(c.networking.api_server_address, "0.0.0.0");
        assert_eq!(c.networking.api_server_port, 6443);
        assert_eq!(c.networking.pod_subnet, "192.168.0.0/16");
        assert_eq!(c.networking.service_subnet, "10.96.0.0/16");
    }

    #[test]
    fn port_mapping_and_mount_defaults() {
        let c = defaulted(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
nodes:
- extraPortMappings:
  - containerPort: 80
  extraMounts:
  - {hostPath: /a, containerPath: /b}
",
        );
        assert_eq!(
            c.nodes[0].extra_port_mappings[0],
            PortMapping {
                container_port: 80,
                host_port: 0,
                listen_address: "0.0.0.0".into(),
                protocol: PortProtocol::Tcp,
            }
        );
        assert_eq!(
            c.nodes[0].extra_mounts[0].propagation,
            MountPropagation::None
        );
        assert!(!c.nodes[0].extra_mounts[0].read_only);
    }

    #[test]
    fn name_and_image_overrides() {
        let c = defaulted(
            "apiVersion: kind.x-k8s.io/v1alpha4
kind: Cluster
name: from-config
nodes:
- image: a
- role: worker
",
        )
        .with_name("from-flag")
        .with_node_image("kindred/node:v1.33.13");
        assert_eq!(c.name, "from-flag");
        assert!(c.nodes.iter().all(|n| n.image == "kindred/node:v1.33.13"));
        // An override before defaulting survives it.
        let c = Cluster::default().with_name("early").with_defaults();
        assert_eq!(c.name, "early");
        assert_eq!(c.api_version, KINDRED_API_VERSION);
        assert_eq!(c.kind, "Cluster");
    }

    #[test]
    fn registry_defaults_and_flags() {
        // No registry unless asked for.
        let c = defaulted("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n");
        assert!(c.registry().is_none());
        // --registry on a kind config: the default port.
        let c = parse("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n", "t")
            .unwrap()
            .with_registry(None, false)
            .with_defaults();
        let r = c.registry().unwrap();
        assert_eq!((r.port, r.keep), (Some(DEFAULT_REGISTRY_PORT), false));
        assert!(c.validate().is_ok());
        // The config's port stays unless a flag names another; --keep-registry adds keep.
        let yaml = "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry: {port: 5002}\n";
        let c = parse(yaml, "t")
            .unwrap()
            .with_registry(None, true)
            .with_defaults();
        let r = c.registry().unwrap();
        assert_eq!((r.port, r.keep), (Some(5002), true));
        let c = parse(yaml, "t")
            .unwrap()
            .with_registry(Some(5003), false)
            .with_defaults();
        assert_eq!(c.registry().unwrap().port, Some(5003));
        // A flag turns on a registry the config turned off.
        let off = "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\nregistry: {enabled: false}\n";
        let c = parse(off, "t").unwrap().with_defaults();
        assert!(c.registry().is_none());
        assert_eq!(
            c.registry.as_ref().unwrap().port,
            None,
            "no port for a disabled registry"
        );
        let c = parse(off, "t")
            .unwrap()
            .with_registry(None, false)
            .with_defaults();
        assert_eq!(c.registry().unwrap().port, Some(DEFAULT_REGISTRY_PORT));
    }

    #[test]
    fn relative_host_paths_resolve_against_the_config_directory() {
        let mount = |host: &str| Mount {
            host_path: host.into(),
            container_path: "/data".into(),
            ..Default::default()
        };
        let cluster = Cluster {
            nodes: vec![Node {
                extra_mounts: vec![mount("./data"), mount("files/x"), mount("/abs"), mount("")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let c = cluster.resolve_host_paths(Path::new("/home/me/cfg"));
        let hosts: Vec<&str> = c.nodes[0]
            .extra_mounts
            .iter()
            .map(|m| m.host_path.as_str())
            .collect();
        assert_eq!(
            hosts,
            ["/home/me/cfg/data", "/home/me/cfg/files/x", "/abs", ""]
        );
    }
}
