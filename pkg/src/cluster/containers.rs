//! The container specs of a cluster: a Kubernetes node (systemd, its own /var, the kernel
//! modules), an HA cluster's API load balancer and the node lifecycle agent. Every container
//! carries the cluster and create-token labels, so that cleanup finds what one create made.

use std::collections::HashMap;

use super::ownership::Ownership;
use super::plan::{ClusterPlan, NodePlan};
use super::registry::RegistryRequest;
use super::{IP_FAMILY_LABEL, NETWORK, ROLE_LABEL};
use crate::config::IpFamily;
use crate::provider::{ContainerSpec, NetworkAddressing, NodeSecurity, PublishedPort};

/// Node restart policy: nodes come back with the Docker daemon (and after a host reboot)
/// unless the user stopped them.
const RESTART_POLICY: &str = "unless-stopped";

/// Where the load balancer reads its backends (written by create's load-balancer step).
pub(super) const LB_BACKENDS: &str = "/kindred/lb-backends";

/// What every container of one create shares.
pub(super) struct ClusterContainers<'a> {
    pub plan: &'a ClusterPlan,
    pub owner: &'a Ownership,
    pub registry: Option<RegistryRequest>,
    pub security: NodeSecurity,
    /// The host has /lib/modules to share (not so when nested in a CI container: nodes then
    /// use the modules the host kernel already has loaded).
    pub lib_modules: bool,
    /// The API server's host port, on the node (or load balancer) that is the endpoint.
    pub api_port: PublishedPort,
    /// The cluster's block for LoadBalancer Services, recorded on its nodes so other kindred
    /// processes leave it alone (provider::network).
    pub lb_pool: Option<crate::config::Cidr>,
    /// The network's addressing: a node with a fixed IPv4 address gets the IPv6 address
    /// derived from it where the network has IPv6.
    pub addressing: NetworkAddressing,
}

impl ClusterContainers<'_> {
    /// A node container; `ip` pins its address on the network (None: Docker picks).
    pub fn node(&self, node: &NodePlan, ip: Option<String>) -> ContainerSpec {
        let role = (ROLE_LABEL.to_string(), node.role.as_str().to_string());
        let family = self.plan.config.networking.ip_family;
        let family_label = (IP_FAMILY_LABEL.to_string(), family.to_string());
        // IPv6 nodes route pods' IPv6 traffic; Docker turns IPv6 off in containers otherwise.
        let sysctls = if family == IpFamily::Ipv4 {
            HashMap::new()
        } else {
            HashMap::from(
                [
                    ("net.ipv6.conf.all.disable_ipv6", "0"),
                    ("net.ipv6.conf.all.forwarding", "1"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            )
        };
        // Marks the cluster as a user of the registry (see cluster::registry).
        let registry_user = self
            .registry
            .map(|r| (crate::registry::USER_LABEL.to_string(), r.port.to_string()));
        let pool = self
            .lb_pool
            .as_ref()
            .map(|b| (crate::provider::LB_POOL_LABEL.to_string(), b.to_string()));
        ContainerSpec {
            name: node.name.clone(),
            image: node.config.image.clone(),
            hostname: Some(node.name.clone()),
            labels: HashMap::from_iter(
                self.owner
                    .labels()
                    .into_iter()
                    .chain([role, family_label])
                    .chain(registry_user)
                    .chain(pool),
            ),
            tmpfs: vec!["/run".into(), "/tmp".into()],
            // Kept out of the overlay root: containerd's snapshots need a real filesystem.
            volumes: vec!["/var".into()],
            volume_labels: HashMap::from(self.owner.labels()),
            binds: if self.lib_modules {
                vec!["/lib/modules:/lib/modules:ro".into()]
            } else {
                vec![]
            },
            network: Some(NETWORK.into()),
            ip6: self.ipv6_for(&ip),
            ip,
            sysctls,
            restart_policy: Some(RESTART_POLICY.into()),
            security: Some(self.security),
            ports: if node.name == self.plan.api_endpoint_host() {
                vec![self.api_port.clone()]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    /// An HA cluster's API load balancer: `kindred agent loadbalancer`, at a fixed address,
    /// publishing the API server's port.
    pub fn load_balancer(&self, name: &str, ip: Option<String>) -> ContainerSpec {
        let args = ["loadbalancer", "--backends", LB_BACKENDS];
        ContainerSpec {
            ip6: self.ipv6_for(&ip),
            ip,
            ports: vec![self.api_port.clone()],
            ..self.agent(name.to_string(), super::LOAD_BALANCER_ROLE, &args)
        }
    }

    /// The node lifecycle agent (`kindred agent node-lifecycle`), given the runtime's API
    /// socket (`socket`, a path on the daemon's host) so it can tell a stopped node from a
    /// removed one. Docker picks its address.
    pub fn node_lifecycle(&self, socket: &str) -> ContainerSpec {
        let name = format!("{}-{}", self.plan.name(), super::NODE_LIFECYCLE_ROLE);
        let args = ["node-lifecycle", "--cluster", self.plan.name()];
        ContainerSpec {
            binds: vec![format!("{socket}:/var/run/docker.sock")],
            ..self.agent(name, super::NODE_LIFECYCLE_ROLE, &args)
        }
    }

    /// A host-side agent: `kindred agent ARGS` from the first control plane's node image
    /// (which carries the kindred binary) in an ordinary unprivileged container on the
    /// cluster's network, labelled with its role.
    fn agent(&self, name: String, role: &str, args: &[&str]) -> ContainerSpec {
        let cmd = std::iter::once("agent").chain(args.iter().copied());
        ContainerSpec {
            hostname: Some(name.clone()),
            name,
            image: self.plan.first_control_plane().config.image.clone(),
            labels: HashMap::from_iter(
                self.owner
                    .labels()
                    .into_iter()
                    .chain([(ROLE_LABEL.to_string(), role.to_string())]),
            ),
            entrypoint: Some(vec!["/usr/local/bin/kindred".into()]),
            cmd: Some(cmd.map(String::from).collect()),
            env: vec!["KINDRED_LOG=kindred=info".into()],
            network: Some(NETWORK.into()),
            restart_policy: Some(RESTART_POLICY.into()),
            // The image's stop signal is systemd's; the agents exit on SIGTERM.
            stop_signal: Some("SIGTERM".into()),
            ..Default::default()
        }
    }

    /// The fixed IPv6 address that goes with a fixed IPv4 address, if the network has IPv6.
    fn ipv6_for(&self, ip: &Option<String>) -> Option<String> {
        let v4 = ip.as_deref()?.parse().ok()?;
        Some(self.addressing.ipv6_for(v4)?.to_string())
    }
}
