//! `delete cluster`: remove every node container (with its volumes), the cluster's kubeconfig
//! entries, the local registry once no cluster uses it (unless it is kept), and the shared
//! network once nothing uses it.

use std::path::Path;

use futures_util::future::try_join_all;

use super::{registry, ClusterError, CLUSTER_LABEL, NETWORK};
use crate::kubeconfig;
use crate::provider::Docker;

/// What `delete` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The cluster had nodes.
    pub existed: bool,
    /// The local registry went with it (it was the last cluster using it, and it was not kept).
    pub registry_removed: bool,
}

pub async fn delete(
    docker: &Docker,
    name: &str,
    kubeconfig_path: &Path,
) -> Result<Deleted, ClusterError> {
    let nodes = docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={name}")])
        .await?;
    try_join_all(nodes.iter().map(|n| docker.remove_container(&n.name))).await?;
    kubeconfig::remove(kubeconfig_path, name)?;
    let registry_removed = registry::remove_if_unused(docker).await?;
    docker.remove_network_if_unused(NETWORK).await?;
    Ok(Deleted {
        existed: !nodes.is_empty(),
        registry_removed,
    })
}
