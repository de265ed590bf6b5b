//! Whether the Docker host can hold a cluster: refused before anything is created when the
//! nodes would need more memory than the host has (the fixed cap on the node count is a config
//! rule, `config::MAX_NODES`).
//!
//! The figures are what nodes use once the cluster runs, measured with `docker stats`
//! (docs/benchmarks.md: a control plane ~480 MiB, a worker ~110 MiB), rounded up. Only the
//! host's total memory counts, not what is free now: the rule refuses clusters that cannot
//! fit at all, not ones that merely make the host busy.

use super::ClusterError;
use crate::config::{Cluster, NodeRole};
use crate::provider::Provider;

/// Memory a running control-plane node uses (etcd, API server, controllers, kubelet).
pub const CONTROL_PLANE_MIB: u64 = 512;
/// Memory a running worker node uses (kubelet, containerd, the agents).
pub const WORKER_MIB: u64 = 128;

/// The memory a cluster's nodes need once running, in MiB.
pub fn estimated_memory_mib(config: &Cluster) -> u64 {
    config
        .nodes
        .iter()
        .map(|n| match n.role {
            NodeRole::ControlPlane => CONTROL_PLANE_MIB,
            NodeRole::Worker => WORKER_MIB,
        })
        .sum()
}

/// Refuses a cluster needing more memory than `total_mib`.
fn check_memory(config: &Cluster, total_mib: u64) -> Result<(), ClusterError> {
    let needed_mib = estimated_memory_mib(config);
    if needed_mib > total_mib {
        return Err(ClusterError::NotEnoughMemory {
            nodes: config.nodes.len(),
            needed_mib,
            total_mib,
        });
    }
    Ok(())
}

/// Refuses a cluster the Docker host cannot hold. A daemon that does not report its memory is
/// not refused.
pub(super) async fn check(docker: &dyn Provider, config: &Cluster) -> Result<(), ClusterError> {
    let info = docker.info_json().await?;
    match info.get("MemTotal").and_then(|m| m.as_u64()) {
        Some(bytes) if bytes > 0 => check_memory(config, bytes / (1024 * 1024)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Node;

    fn cluster(control_planes: usize, workers: usize) -> Cluster {
        let mut c = Cluster::default().with_defaults();
        let template = c.nodes[0].clone();
        c.nodes = (0..control_planes + workers)
            .map(|i| Node {
                role: if i < control_planes {
                    NodeRole::ControlPlane
                } else {
                    NodeRole::Worker
                },
                ..template.clone()
            })
            .collect();
        c
    }

    #[test]
    fn a_cluster_that_fits_in_the_hosts_memory_is_accepted() {
        assert_eq!(estimated_memory_mib(&cluster(1, 2)), 512 + 2 * 128);
        assert!(check_memory(&cluster(1, 2), 2048).is_ok());
        assert!(check_memory(&cluster(3, 2), 4096).is_ok());
        assert!(check_memory(&cluster(1, 90), 23 * 1024).is_ok());
    }

    #[test]
    fn a_cluster_larger_than_the_hosts_memory_is_refused_with_the_reason_and_fix() {
        let err = check_memory(&cluster(1, 3000), 23 * 1024).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("3001 nodes need about 384512 MiB of memory"),
            "{text}"
        );
        assert!(
            text.contains("more than the 23552 MiB the Docker host has"),
            "{text}"
        );
        assert!(text.contains("use fewer nodes"), "{text}");
        assert!(check_memory(&cluster(1, 2), 700).is_err());
    }
}
