//! Action 1: the node containers (and an HA cluster's load balancer, and the node lifecycle
//! agent), made under the network lock with addresses pinned on the `kindred` network, at most
//! [`CREATE_CONCURRENCY`] at a time. The local registry, when asked for, is started first so node addresses avoid it.

use std::collections::HashMap;

use super::pause::pause_point;
use super::{preflight, Ctx};
use crate::cluster::containers::ClusterContainers;
use crate::cluster::registry::{self as local_registry, RegistryRequest};
use crate::cluster::{bounded, ClusterError, NETWORK};
use crate::config::Cidr;
use crate::kubeadm;
use crate::provider::{ContainerSpec, NodeSecurity, PublishedPort};
use crate::ui::Step;

/// Node containers created at once: Docker (and the disk behind it) slows down for everyone
/// with many concurrent creates, and a failure should not leave hundreds in flight.
const CREATE_CONCURRENCY: usize = 4;

/// What provisioning decided.
pub(super) struct Provisioned {
    /// The security profile the nodes run with (privileged, or restricted where refused).
    pub security: NodeSecurity,
    /// The cluster's block of addresses for LoadBalancer Services, when it has one, and its
    /// IPv6 twin in a cluster with IPv6.
    pub lb_pool: Option<(Cidr, Option<Cidr>)>,
}

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<Provisioned, ClusterError> {
    let (docker, plan, owner) = (ctx.docker, ctx.plan, ctx.owner);
    // Held until the containers exist: concurrent creates must not pick the same addresses,
    // and of two creates of one name only the first may create containers.
    let _lock = crate::provider::lock_network(NETWORK, &|waiting| step.note(waiting)).await?;
    pause_point("locked").await;
    preflight::reserve_name(docker, plan).await?;
    let family = plan.config.networking.ip_family;
    let addressing = docker
        .ensure_network(
            NETWORK,
            HashMap::from([("io.kindred.network".to_string(), "true".to_string())]),
            family.has_ipv6(),
        )
        .await?;
    if family.has_ipv6() && addressing.subnet_v6.is_none() {
        // A cluster made the old network its own since the check before create.
        return Err(ClusterError::NetworkWithoutIpv6 {
            family: family.to_string(),
            subnet: addressing.subnet.to_string(),
            users: "another create that took it just now".into(),
            them: "that cluster".into(),
        });
    }
    // The registry first, so that the nodes' addresses are picked around its address.
    let registry = RegistryRequest::of(&plan.config);
    if let Some(request) = registry {
        let done = local_registry::ensure(docker, &addressing, request, owner, step).await?;
        step.detail(done);
    }
    let containers = plan.nodes.len() + usize::from(plan.load_balancer.is_some());
    // The cluster's block for LoadBalancer Services, chosen under the lock like node addresses.
    let mut lb_pool = None;
    let mut ips: Vec<Option<String>> = if addressing.supports_fixed_addresses() {
        let mut used = docker.used_addresses(NETWORK).await?;
        if plan.config.load_balancer_services() {
            match addressing.free_lb_pool(&used) {
                Ok(block) => {
                    used.extend(crate::provider::block_addresses(&block));
                    lb_pool = Some(block);
                }
                Err(e) => ctx
                    .ui
                    .info(format!("LoadBalancer Services will stay pending: {e}")),
            }
        }
        addressing
            .free_addresses(&used, containers)?
            .into_iter()
            .map(|ip| Some(ip.to_string()))
            .collect()
    } else {
        ctx.ui.info(format!(
            "The Docker network `{NETWORK}` ({}) was made by an older kindred and cannot pin node \
             addresses; this cluster may not survive restarts. Delete all clusters so kindred \
             can recreate the network.",
            addressing.subnet
        ));
        if plan.config.load_balancer_services() {
            ctx.ui.info(
                "LoadBalancer Services will stay pending: the network cannot reserve addresses \
                 for them",
            );
        }
        vec![None; containers]
    };
    let lib_modules = std::path::Path::new("/lib/modules").is_dir();
    if !lib_modules {
        // Nested (a CI container): nodes use the modules the host kernel already has loaded.
        tracing::debug!("no /lib/modules here: nodes get none mounted");
    }
    let lb_ip = if plan.load_balancer.is_some() {
        ips.pop().flatten()
    } else {
        None
    };
    let shared = ClusterContainers {
        plan,
        owner,
        registry,
        security: NodeSecurity::from_env()?,
        lib_modules,
        api_port: api_port(&plan.config.networking)?,
        lb_pool,
        addressing: addressing.clone(),
    };
    let mut specs: Vec<ContainerSpec> = plan
        .nodes
        .iter()
        .zip(ips)
        .map(|(n, ip)| shared.node(n, ip))
        .collect();
    // extraMounts, extraPortMappings, dnsSearch, proxy variables (node_options.rs).
    let subnets = docker.network_subnets(NETWORK).await?;
    for spec in &mut specs {
        ctx.options.apply(spec, &subnets);
    }
    if let Some(lb) = &plan.load_balancer {
        specs.push(shared.load_balancer(lb, lb_ip));
    }
    if let Some(socket) = node_lifecycle_socket(ctx).await? {
        specs.push(shared.node_lifecycle(&socket));
    }
    let used = bounded::run_all(&specs, CREATE_CONCURRENCY, |s| docker.run(s))
        .await
        .map_err(|e| name_conflict(e, plan.name()))?;
    let lb_pool6 = lb_pool
        .filter(|_| plan.config.networking.ip_family.has_ipv6())
        .and_then(|block| addressing.ipv6_block_for(&block));
    Ok(Provisioned {
        security: used.into_iter().flatten().next().unwrap_or(shared.security),
        lb_pool: lb_pool.map(|block| (block, lb_pool6)),
    })
}

/// The socket to give the node lifecycle agent, when the cluster wants one and can have it:
/// the node image's kindred must have the agent (kind's images and older kindred ones do
/// not), and the runtime must be reached through a socket a container can be given.
async fn node_lifecycle_socket(ctx: &Ctx<'_>) -> Result<Option<String>, ClusterError> {
    let plan = ctx.plan;
    if !plan.config.node_lifecycle() {
        return Ok(None);
    }
    let image = &plan.first_control_plane().config.image;
    let labels = ctx.docker.image_labels(image).await?;
    let agents = labels
        .get(crate::agent::HOST_AGENTS_LABEL)
        .map(String::as_str)
        .unwrap_or_default();
    if !agents.split(',').any(|a| a == "node-lifecycle") {
        ctx.ui.info(format!(
            "Nodes will not follow their containers (no node lifecycle agent): the image \
             {image} has none; build a node image with this kindred to have it"
        ));
        return Ok(None);
    }
    let socket = ctx.docker.api_socket();
    if socket.is_none() {
        ctx.ui.info(
            "Nodes will not follow their containers (no node lifecycle agent): the container \
             runtime is reached over the network (DOCKER_HOST), not a socket a container can \
             be given",
        );
    }
    Ok(socket)
}

/// The API server's published port: the config's, else a free one. A fixed host port, so the
/// kubeconfig stays right when the container restarts. It is published on the address the
/// config names (127.0.0.1 by default); the kubeconfig always uses 127.0.0.1 to reach it,
/// which covers 0.0.0.0 too.
fn api_port(net: &crate::config::Networking) -> Result<PublishedPort, ClusterError> {
    let port = if net.api_server_port > 0 {
        net.api_server_port as u16
    } else {
        free_port(&net.api_server_address)?
    };
    Ok(PublishedPort {
        container_port: kubeadm::API_SERVER_BIND_PORT,
        protocol: "tcp".into(),
        host_ip: net.api_server_address.clone(),
        host_port: Some(port),
    })
}

/// A port nothing listens on at `address` right now (the kernel picks it).
fn free_port(address: &str) -> Result<u16, ClusterError> {
    let bind = if address.contains(':') {
        format!("[{address}]:0")
    } else {
        format!("{address}:0")
    };
    std::net::TcpListener::bind(&bind)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| ClusterError::NoFreePort {
            address: address.to_string(),
            source,
        })
}

/// A node name already in use as the typed error saying the cluster name is taken: a kindred
/// that does not share this one's lock (another user, an older version) got there first.
fn name_conflict(err: crate::provider::ProviderError, cluster: &str) -> ClusterError {
    match err {
        crate::provider::ProviderError::NameInUse { .. } => ClusterError::NameTaken {
            name: cluster.to_string(),
        },
        err => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_in_use_says_the_cluster_name_is_taken() {
        let conflict = crate::provider::ProviderError::NameInUse {
            name: "dev-control-plane".into(),
        };
        let err = name_conflict(conflict, "dev");
        assert!(matches!(&err, ClusterError::NameTaken { name } if name == "dev"));
        assert!(
            err.to_string().starts_with("the name dev is taken"),
            "{err}"
        );
        let other = crate::provider::ProviderError::Other("no space left".into());
        assert!(matches!(
            name_conflict(other, "dev"),
            ClusterError::Provider(_)
        ));
    }
}
