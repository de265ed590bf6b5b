//! How to reach a cluster's API server: from the host through the published port, or from
//! inside the Docker network through the control plane's name (an HA cluster's load balancer
//! in both cases).

use super::{ClusterError, ADMIN_CONF, CLUSTER_LABEL, LOAD_BALANCER_ROLE, ROLE_LABEL};
use crate::kubeadm::API_SERVER_BIND_PORT;
use crate::kubeconfig::{self, Entry};
use crate::provider::Docker;

/// The first control-plane container of a cluster (the one that ran `kubeadm init`).
pub async fn control_plane(docker: &Docker, cluster: &str) -> Result<String, ClusterError> {
    let mut cps = docker
        .list_by_labels(&[
            format!("{CLUSTER_LABEL}={cluster}"),
            format!("{ROLE_LABEL}=control-plane"),
        ])
        .await?;
    // Sorted by name: `<cluster>-control-plane` precedes `...-control-plane2`.
    cps.sort_by(|a, b| a.name.len().cmp(&b.name.len()).then(a.name.cmp(&b.name)));
    cps.into_iter().next().map(|c| c.name).ok_or_else(|| {
        ClusterError::Msg(format!(
            "no cluster named {cluster} (see `kindred get clusters`)"
        ))
    })
}

/// The kubeconfig entry of a cluster, with the API server as seen from the host, or from
/// containers on the kindred network with `internal`.
pub async fn kubeconfig_entry(
    docker: &Docker,
    cluster: &str,
    internal: bool,
) -> Result<Entry, ClusterError> {
    let cp = control_plane(docker, cluster).await?;
    // HA clusters are reached through their load balancer.
    let lb = docker
        .list_by_labels(&[
            format!("{CLUSTER_LABEL}={cluster}"),
            format!("{ROLE_LABEL}={LOAD_BALANCER_ROLE}"),
        ])
        .await?
        .into_iter()
        .next()
        .map(|c| c.name);
    let front = lb.as_deref().unwrap_or(&cp);
    let server = if internal {
        format!("https://{front}:{API_SERVER_BIND_PORT}")
    } else {
        let port = docker
            .host_port(front, &format!("{API_SERVER_BIND_PORT}/tcp"))
            .await?;
        format!("https://127.0.0.1:{port}")
    };
    let admin = docker.read_container_file(&cp, ADMIN_CONF).await?;
    Ok(kubeconfig::from_admin_conf(
        &String::from_utf8_lossy(&admin),
        cluster,
        &server,
    )?)
}
