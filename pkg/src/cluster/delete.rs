//! `delete cluster`: remove every node container (with its volumes), the cluster's kubeconfig
//! entries, and the shared network once no cluster uses it.

use std::path::Path;

use futures_util::future::try_join_all;

use super::{ClusterError, CLUSTER_LABEL, NETWORK};
use crate::kubeconfig;
use crate::provider::Docker;

/// Returns whether the cluster had any nodes.
pub async fn delete(
    docker: &Docker,
    name: &str,
    kubeconfig_path: &Path,
) -> Result<bool, ClusterError> {
    let nodes = docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={name}")])
        .await?;
    try_join_all(nodes.iter().map(|n| docker.remove_container(&n.name))).await?;
    kubeconfig::remove(kubeconfig_path, name)?;
    docker.remove_network_if_unused(NETWORK).await?;
    Ok(!nodes.is_empty())
}
