//! Action 4: what every node's kubeadm config shares, decided once before `kubeadm init`: the
//! Kubernetes version in the image, the control-plane endpoint, the bootstrap token, the HA
//! certificate key, the cgroup version, the node addresses. Init and the joins render each
//! node's config from it.

use std::collections::HashMap;

use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::plan::NodePlan;
use crate::cluster::{ClusterError, NETWORK};
use crate::config::IpFamily;
use crate::kubeadm::{self, NodeBootstrap, NodeConfig, RenderInput};
use crate::provider::Provider;
use crate::ui::Step;

/// Where kubeadm's config is written on each node (kind uses the same directory).
pub(super) const KUBEADM_CONFIG: &str = "/kind/kubeadm.conf";

/// The cluster's kubeadm settings, passed to init and the joins.
pub(super) struct Bootstrap {
    /// The Kubernetes version the node image carries (`/kind/version`).
    pub kube_version: String,
    /// `host:port` of the API server as nodes reach it (the load balancer in HA).
    pub endpoint: String,
    /// The token joining nodes authenticate with.
    pub token: String,
    /// HA: `kubeadm init --upload-certs` stores the control-plane certificates in the
    /// cluster, encrypted with this key; joining control planes fetch them with it.
    pub certificate_key: Option<String>,
    cgroup_v1: bool,
    node_ips: HashMap<String, Vec<String>>,
}

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<Bootstrap, ClusterError> {
    let (docker, plan) = (ctx.docker, ctx.plan);
    let cp = plan.first_control_plane();
    let kube_version = Node::new(docker, &cp.name)
        .sh("cat /kind/version", step)
        .await?
        .trim()
        .to_string();
    let cgroup_v1 = docker.cgroup_version().await? == "1";
    tracing::debug!(
        "Docker runs containers on cgroup v{}; kubelet is configured to match",
        if cgroup_v1 { 1 } else { 2 }
    );
    let token = crate::random::bootstrap_token()?;
    let endpoint = format!(
        "{}:{}",
        plan.api_endpoint_host(),
        kubeadm::API_SERVER_BIND_PORT
    );
    let certificate_key = match plan.load_balancer {
        Some(_) => Some(crate::random::hex(32)?),
        None => None,
    };
    let family = plan.config.networking.ip_family;
    // Dual-stack with IPv6 first in podSubnet: IPv6 is the primary family, of nodes too.
    let ipv6_first = (plan.config.networking.pod_subnet.split(',').next())
        .is_some_and(|first| first.contains(':'));
    let mut node_ips = HashMap::new();
    for n in &plan.nodes {
        let mut ips = node_ips_of(docker, &n.name, family).await?;
        if ipv6_first {
            ips.reverse();
        }
        node_ips.insert(n.name.clone(), ips);
    }
    Ok(Bootstrap {
        kube_version,
        endpoint,
        token,
        certificate_key,
        cgroup_v1,
        node_ips,
    })
}

impl Bootstrap {
    /// `node`'s kubeadm config (and the kubelet patches it refers to).
    pub fn render(
        &self,
        ctx: &Ctx<'_>,
        node: &NodePlan,
        bootstrap: NodeBootstrap,
    ) -> Result<NodeConfig, ClusterError> {
        let config = &ctx.plan.config;
        let mut input = RenderInput::from_cluster(config, &node.config);
        input.kubernetes_version = self.kube_version.clone();
        input.node_name = node.name.clone();
        input.node_ips = self.node_ips[&node.name].clone();
        input.bootstrap = bootstrap;
        input.control_plane_endpoint = self.endpoint.clone();
        input.api_server_cert_sans = vec![
            "127.0.0.1".into(),
            "::1".into(),
            "localhost".into(),
            config.networking.api_server_address.clone(),
        ];
        input.bootstrap_token = self.token.clone();
        input.certificate_key = self.certificate_key.clone();
        input.cgroup_v1 = self.cgroup_v1;
        input.timeout_scale = crate::patience::scale();
        Ok(kubeadm::render_node(&input)?)
    }
}

/// The node's addresses for kubelet's `node-ip`, in the family's order: IPv4, IPv6, or both
/// (IPv4 first, the primary family of a dual-stack cluster with the default subnets).
pub(super) async fn node_ips_of(
    docker: &dyn Provider,
    node: &str,
    family: IpFamily,
) -> Result<Vec<String>, ClusterError> {
    let v4 = docker.container_ip(node, NETWORK).await?;
    if family == IpFamily::Ipv4 {
        return Ok(vec![v4]);
    }
    let Some(v6) = docker.container_ipv6(node, NETWORK).await? else {
        return Err(ClusterError::NodeWithoutIpv6 {
            node: node.to_string(),
            family: family.to_string(),
        });
    };
    Ok(match family {
        IpFamily::Ipv6 => vec![v6],
        _ => vec![v4, v6],
    })
}

/// Writes the node's kubeadm config and the files it refers to (the node's kubelet patches).
pub(super) async fn write(
    docker: &dyn Provider,
    node: &str,
    config: &NodeConfig,
    step: &Step,
) -> Result<(), ClusterError> {
    let node = Node::new(docker, node);
    for (path, content) in &config.files {
        node.write_file(path, content, step).await?;
    }
    node.write_file(KUBEADM_CONFIG, &config.kubeadm_config, step)
        .await
}
