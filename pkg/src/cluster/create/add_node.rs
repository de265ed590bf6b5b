//! `create node`: one more worker joins a running cluster, built from the same pieces as
//! `create cluster` (the node container spec, addresses pinned under the network lock, the
//! kubeadm join config) and labelled with a fresh ownership token, so that a failure or an
//! interruption removes the new container and its volume and nothing else of the cluster.

use std::collections::HashMap;
use std::time::Duration;

use super::interrupt;
use super::kubeadm_config::{self, KUBEADM_CONFIG};
use crate::cluster::containers::ClusterContainers;
use crate::cluster::node_options::NodeOptions;
use crate::cluster::nodes::{next_worker_name, wait_node_ready, NodeRoleRequest};
use crate::cluster::ownership::Ownership;
use crate::cluster::plan::{ClusterPlan, NodePlan};
use crate::cluster::{
    access, node::Node, node_setup, ClusterError, CLUSTER_LABEL, IP_FAMILY_LABEL,
    LOAD_BALANCER_ROLE, NETWORK, ROLE_LABEL,
};
use crate::config::{Cluster, IpFamily, Networking, Node as ConfigNode, NodeRole, Registry};
use crate::kubeadm::{self, NodeBootstrap, RenderInput};
use crate::provider::{NodeSecurity, Provider, PublishedPort, LB_POOL_LABEL};
use crate::ui::{Step, Ui};

/// Labels copied from the cluster's existing nodes onto the new one: the local registry's
/// user mark and the LoadBalancer block (so both stay the cluster's while any node lives).
const INHERITED_LABELS: [&str; 3] = [crate::registry::USER_LABEL, LB_POOL_LABEL, IP_FAMILY_LABEL];

pub struct AddNodeOptions {
    pub cluster: String,
    pub role: NodeRoleRequest,
    /// The node image; None: the image the cluster's nodes run.
    pub image: Option<String>,
    /// How long to wait for the new Node to be Ready (zero: do not wait).
    pub wait: Duration,
}

/// Adds a node; returns its name. On failure or SIGINT/SIGTERM the new container and its
/// volume are removed (only those: they carry this command's token).
pub async fn add_node(
    docker: &dyn Provider,
    opts: &AddNodeOptions,
    ui: &Ui,
) -> Result<String, ClusterError> {
    opts.role.check()?;
    // No kubeconfig entry is written, so cleanup never touches the user's kubeconfig.
    let owner = Ownership::new(&opts.cluster, std::path::Path::new("/dev/null"))?;
    let result = tokio::select! {
        added = add_owned(docker, opts, &owner, ui) => added,
        signal = interrupt::signal() => Err(ClusterError::Interrupted { signal }),
    };
    if let Err(e) = &result {
        tracing::debug!("create node failed: {e}");
        // A refusal before anything was made needs no cleanup; after a signal a creation
        // already sent to Docker may still land, so that case is always cleaned up.
        let interrupted = matches!(e, ClusterError::Interrupted { .. });
        if !interrupted && !made_anything(docker, &owner).await {
            return result;
        }
        let step = ui.step("Removing the node this command created");
        forget_nodes(docker, &opts.cluster, &owner).await;
        match owner.clean_up(docker, true).await {
            Ok(_) => step.done(),
            Err(e) => {
                step.fail();
                ui.warn(e.to_string());
            }
        }
    }
    result
}

/// Whether a container or volume carries `owner`'s token (if Docker cannot say: assume so).
async fn made_anything(docker: &dyn Provider, owner: &Ownership) -> bool {
    let containers = docker.list_by_labels(&[owner.filter()]).await;
    let volumes = docker.volumes_labelled(&owner.filter()).await;
    !matches!((containers, volumes), (Ok(c), Ok(v)) if c.is_empty() && v.is_empty())
}

/// Deletes the Node objects of the containers `owner` made (a join may have registered one
/// before the failure); best effort, the container removal that follows is what matters.
async fn forget_nodes(docker: &dyn Provider, cluster: &str, owner: &Ownership) {
    let (Ok(made), Ok(cp)) = (
        docker.list_by_labels(&[owner.filter()]).await,
        access::control_plane(docker, cluster).await,
    ) else {
        return;
    };
    for node in made {
        let delete = format!("delete node {} --ignore-not-found --wait=false", node.name);
        if let Err(e) = Node::new(docker, &cp).kubectl_output(&delete).await {
            tracing::debug!("deleting the Node {}: {e}", node.name);
        }
    }
}

/// The config `create` would have had for the new worker: a control plane (the plan names
/// the API endpoint after it; it is never touched) and the worker, with the cluster's
/// registry when its nodes use one.
fn node_config(
    cluster: &str,
    image: &str,
    registry_port: Option<i32>,
    family: IpFamily,
) -> Cluster {
    Cluster {
        name: cluster.to_string(),
        networking: Networking {
            ip_family: family,
            ..Networking::default()
        },
        nodes: vec![
            ConfigNode {
                role: NodeRole::ControlPlane,
                image: image.to_string(),
                ..ConfigNode::default()
            },
            ConfigNode {
                role: NodeRole::Worker,
                image: image.to_string(),
                ..ConfigNode::default()
            },
        ],
        registry: registry_port.map(|port| Registry {
            port: Some(port),
            ..Registry::default()
        }),
        ..Cluster::default()
    }
    .with_defaults()
}

async fn add_owned(
    docker: &dyn Provider,
    opts: &AddNodeOptions,
    owner: &Ownership,
    ui: &Ui,
) -> Result<String, ClusterError> {
    let cluster = &opts.cluster;
    let cp = access::control_plane(docker, cluster).await?;
    let existing = docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={cluster}")])
        .await?;
    let cp_info =
        existing
            .iter()
            .find(|c| c.name == cp)
            .ok_or_else(|| ClusterError::NoControlPlane {
                cluster: cluster.clone(),
            })?;
    let image = opts.image.clone().unwrap_or_else(|| cp_info.image.clone());
    if !docker.image_exists(&image).await? {
        return Err(ClusterError::NodeImageMissing { image });
    }
    let lb = existing
        .iter()
        .find(|c| c.labels.get(ROLE_LABEL).map(String::as_str) == Some(LOAD_BALANCER_ROLE))
        .map(|c| c.name.clone());
    let inherited: Vec<(String, String)> = INHERITED_LABELS
        .iter()
        .filter_map(|k| Some((k.to_string(), cp_info.labels.get(*k)?.clone())))
        .collect();

    let step = ui.step("Preparing the new node");
    let registry_port = cp_info
        .labels
        .get(crate::registry::USER_LABEL)
        .and_then(|p| p.parse::<i32>().ok());
    // Clusters from before the label are IPv4 (kindred made no other).
    let family = cp_info
        .labels
        .get(IP_FAMILY_LABEL)
        .and_then(|f| IpFamily::parse_label(f))
        .unwrap_or(IpFamily::Ipv4);
    let (name, config, options) = {
        // Held until the container exists: a concurrent create must not take its address.
        let _lock = crate::provider::lock_network(NETWORK, &|waiting| step.note(waiting)).await?;
        let taken = docker.container_names().await?;
        let name = next_worker_name(cluster, &taken);
        let addressing = docker
            .ensure_network(
                NETWORK,
                HashMap::from([("io.kindred.network".to_string(), "true".to_string())]),
                family.has_ipv6(),
            )
            .await?;
        let ip = if addressing.supports_fixed_addresses() {
            let used = docker.used_addresses(NETWORK).await?;
            addressing
                .free_addresses(&used, 1)?
                .into_iter()
                .next()
                .map(|ip| ip.to_string())
        } else {
            None
        };
        let config = node_config(cluster, &image, registry_port, family);
        let node = config.nodes[1].clone();
        let plan = ClusterPlan::new(config);
        let shared = ClusterContainers {
            plan: &plan,
            owner,
            registry: None,
            security: NodeSecurity::from_env()?,
            lib_modules: std::path::Path::new("/lib/modules").is_dir(),
            // Only the API endpoint's container publishes it; a worker never is that.
            api_port: PublishedPort {
                container_port: kubeadm::API_SERVER_BIND_PORT,
                protocol: "tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port: None,
            },
            lb_pool: None,
            addressing,
        };
        let mut spec = shared.node(
            &NodePlan {
                name: name.clone(),
                role: NodeRole::Worker,
                config: node,
            },
            ip,
        );
        spec.labels.extend(inherited);
        // The proxy variables and DNS search domains of this environment, as create applies.
        let options = NodeOptions::prepare(docker, &plan, &|v| std::env::var(v).ok()).await?;
        options.apply(&mut spec, &docker.network_subnets(NETWORK).await?);
        docker.run(&spec).await?;
        (name, plan.config, options)
    };
    Node::new(docker, &name).wait_for_systemd().await?;
    // containerd's proxy drop-ins and the local registry's hosts, on the new node alone.
    let only_new = ClusterPlan {
        nodes: vec![NodePlan {
            name: name.clone(),
            role: NodeRole::Worker,
            config: config.nodes[1].clone(),
        }],
        config,
        load_balancer: None,
    };
    node_setup::configure_nodes(docker, &only_new, &options, &step).await?;
    super::unpack::start(
        Node::new(docker, &name),
        NodeRole::Worker,
        &only_new.config,
        &step,
    )
    .await?;
    step.done_with(name.clone());

    let step = ui.step(format!("Joining {name} to {cluster}"));
    join(docker, cluster, &cp, lb.as_deref(), &name, family, &step).await?;
    step.done();

    if !opts.wait.is_zero() {
        let step = ui.step(format!(
            "Waiting up to {}s for {name} to be Ready",
            opts.wait.as_secs()
        ));
        wait_node_ready(docker, cluster, &cp, &name, None, opts.wait, &step).await?;
        step.done();
    }
    Ok(name)
}

/// Renders the worker's join config with a fresh bootstrap token (the one from create has
/// expired after 24 hours) and runs `kubeadm join`.
async fn join(
    docker: &dyn Provider,
    cluster: &str,
    cp: &str,
    lb: Option<&str>,
    node: &str,
    family: IpFamily,
    step: &Step,
) -> Result<(), ClusterError> {
    let token = Node::new(docker, cp)
        .sh(
            "kubeadm token create --ttl 30m --description 'kindred create node'",
            step,
        )
        .await?
        .trim()
        .to_string();
    let kube_version = Node::new(docker, node)
        .sh("cat /kind/version", step)
        .await?
        .trim()
        .to_string();
    let cluster_config = Cluster {
        name: cluster.to_string(),
        networking: Networking {
            ip_family: family,
            ..Networking::default()
        },
        ..Cluster::default()
    }
    .with_defaults();
    let mut input = RenderInput::from_cluster(&cluster_config, &ConfigNode::default());
    input.kubernetes_version = kube_version;
    input.node_name = node.to_string();
    input.node_ips = kubeadm_config::node_ips_of(docker, node, family).await?;
    input.bootstrap = NodeBootstrap::Worker;
    input.control_plane_endpoint =
        format!("{}:{}", lb.unwrap_or(cp), kubeadm::API_SERVER_BIND_PORT);
    input.bootstrap_token = token;
    input.cgroup_v1 = docker.cgroup_version().await? == "1";
    input.timeout_scale = crate::patience::scale();
    let config = kubeadm::render_node(&input)?;
    kubeadm_config::write(docker, node, &config, step).await?;
    let join = format!("kubeadm join --config={KUBEADM_CONFIG} --ignore-preflight-errors=all");
    let node = Node::new(docker, node);
    match node.sh(&join, step).await {
        Ok(_) => Ok(()),
        Err(e) => Err(node.with_kubelet_log(e).await),
    }
}
