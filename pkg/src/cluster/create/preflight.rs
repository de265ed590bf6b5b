//! Action 0, before anything is created: a runtime that can run nodes here (not Podman on
//! cgroup v1), every node image present and runnable here, the kernel able to run kube-proxy's
//! mode, enough memory, the API server port free, the name free, the local registry (if asked
//! for) running on the same port or its port free.

use super::pause::pause_point;
use crate::cluster::plan::ClusterPlan;
use crate::cluster::registry::{self as local_registry, RegistryRequest};
use crate::cluster::{capacity, host_support, ClusterError, CLUSTER_LABEL};
use crate::provider::Provider;

pub(super) async fn run(docker: &dyn Provider, plan: &ClusterPlan) -> Result<(), ClusterError> {
    host_support::check_runtime(docker).await?;
    let mut images: Vec<&str> = plan.nodes.iter().map(|n| n.config.image.as_str()).collect();
    images.dedup();
    for image in images.iter().copied() {
        if !docker.image_exists(image).await? {
            return Err(ClusterError::NodeImageMissing {
                image: image.to_string(),
            });
        }
    }
    host_support::check_images(docker, &images).await?;
    host_support::check_kube_proxy_mode(plan.config.networking.kube_proxy_mode)?;
    capacity::check(docker, &plan.config).await?;
    let net = &plan.config.networking;
    if net.api_server_port > 0 {
        // The daemon runs on this host (or in this pod): a port we cannot bind, it cannot either.
        let addr = if net.api_server_address.contains(':') {
            format!("[{}]:{}", net.api_server_address, net.api_server_port)
        } else {
            format!("{}:{}", net.api_server_address, net.api_server_port)
        };
        if let Err(source) = std::net::TcpListener::bind(&addr) {
            return Err(ClusterError::ApiServerPortTaken {
                port: net.api_server_port,
                address: addr,
                source,
            });
        }
    }
    // Fails early when the name is taken; the check that counts is made again under the network
    // lock, right before the containers are created (see `reserve_name`).
    pause_point("name-check").await;
    reserve_name(docker, plan).await?;
    pause_point("name-checked").await;
    if let Some(request) = RegistryRequest::of(&plan.config) {
        local_registry::check(docker, request).await?;
    }
    Ok(())
}

/// Fails if the cluster exists or a container has one of its node names. Under the network
/// lock this reserves the name: every create checks and creates its containers while holding
/// it, so a create that gets the lock later sees the containers of one that got it before.
pub(super) async fn reserve_name(
    docker: &dyn Provider,
    plan: &ClusterPlan,
) -> Result<(), ClusterError> {
    let name = plan.name();
    if !docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={name}")])
        .await?
        .is_empty()
    {
        return Err(ClusterError::NameTaken {
            name: name.to_string(),
        });
    }
    let wanted: Vec<&String> = plan
        .nodes
        .iter()
        .map(|n| &n.name)
        .chain(plan.load_balancer.as_ref())
        .collect();
    if let Some(container) = docker
        .container_names()
        .await?
        .into_iter()
        .find(|c| wanted.contains(&c))
    {
        return Err(ClusterError::ContainerNameTaken {
            container,
            cluster: name.to_string(),
        });
    }
    Ok(())
}
