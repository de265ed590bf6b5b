//! `get clusters` / `get nodes`: read back from the labels on node containers.

use super::{ClusterError, CLUSTER_LABEL, ROLE_LABEL};
use crate::provider::Docker;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    pub name: String,
    pub cluster: String,
    pub role: String,
    pub state: String,
    pub image: String,
}

/// Names of every cluster with at least one node container, sorted.
pub async fn clusters(docker: &Docker) -> Result<Vec<String>, ClusterError> {
    let mut names: Vec<String> = docker
        .list_by_labels(&[CLUSTER_LABEL.to_string()])
        .await?
        .into_iter()
        .filter_map(|c| c.labels.get(CLUSTER_LABEL).cloned())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Node containers of one cluster, or of all clusters with `None`.
pub async fn nodes(
    docker: &Docker,
    cluster: Option<&str>,
) -> Result<Vec<NodeSummary>, ClusterError> {
    let filter = match cluster {
        Some(name) => format!("{CLUSTER_LABEL}={name}"),
        None => CLUSTER_LABEL.to_string(),
    };
    Ok(docker
        .list_by_labels(&[filter])
        .await?
        .into_iter()
        .map(|c| NodeSummary {
            cluster: c.labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
            role: c.labels.get(ROLE_LABEL).cloned().unwrap_or_default(),
            name: c.name,
            state: c.state,
            image: c.image,
        })
        .collect())
}
