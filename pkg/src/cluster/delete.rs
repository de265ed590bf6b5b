//! `delete cluster`: remove every node container (with its volumes), the cluster's kubeconfig
//! entries, the local registry once no cluster uses it (unless it is kept), and the shared
//! network once nothing uses it (and no other kindred process is about to). Every removal is
//! tried even when one fails; the error then lists what is left and how to remove it.

use std::path::Path;

use futures_util::future::join_all;

use super::ownership::{remove_network_if_idle, CleanedUp, CleanupError, Leftover};
use super::{registry, ClusterError, CLUSTER_LABEL, NETWORK};
use crate::kubeconfig;
use crate::provider::Provider;

/// What `delete` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The cluster had nodes.
    pub existed: bool,
    /// The local registry went with it (it was the last cluster using it, and it was not kept).
    pub registry_removed: bool,
}

pub async fn delete(
    docker: &dyn Provider,
    name: &str,
    kubeconfig_path: &Path,
) -> Result<Deleted, ClusterError> {
    let nodes = docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={name}")])
        .await?;
    let mut leftovers = Vec::new();
    let results = join_all(nodes.iter().map(|n| docker.remove_container(&n.name))).await;
    for (node, result) in nodes.iter().zip(results) {
        if let Err(e) = result {
            leftovers.push(Leftover {
                what: format!("container {}", node.name),
                fix: format!("docker rm -f -v {}", node.name),
                cause: e.to_string(),
            });
        }
    }
    if let Err(e) = kubeconfig::remove(kubeconfig_path, name) {
        leftovers.push(Leftover {
            what: format!("the kubeconfig entry {}", kubeconfig::context_name(name)),
            fix: format!(
                "kubectl config --kubeconfig {} delete-context {}",
                kubeconfig_path.display(),
                kubeconfig::context_name(name)
            ),
            cause: e.to_string(),
        });
    }
    let registry_removed = match registry::remove_if_unused(docker).await {
        Ok(removed) => removed,
        Err(e) => {
            leftovers.push(Leftover {
                what: format!("the registry {}", crate::registry::CONTAINER),
                fix: "kindred delete registry".into(),
                cause: e.to_string(),
            });
            false
        }
    };
    if let Err(e) = remove_network_if_idle(docker).await {
        leftovers.push(Leftover {
            what: format!("the network {NETWORK}"),
            fix: format!("docker network rm {NETWORK}"),
            cause: e.to_string(),
        });
    }
    if !leftovers.is_empty() {
        return Err(ClusterError::Cleanup(CleanupError {
            leftovers,
            removed: CleanedUp::default(),
        }));
    }
    Ok(Deleted {
        existed: !nodes.is_empty(),
        registry_removed,
    })
}
