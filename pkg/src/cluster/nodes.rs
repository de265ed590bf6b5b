//! One node of a running cluster: `delete node` (drain, delete the Node, remove the container
//! and its volume) and `restart node` (restart the container, wait until Ready again), and
//! what they share with `create node` (create/add_node.rs): the naming of new workers, the
//! refusals, the wait for one Node to be Ready.

use std::time::{Duration, Instant};

use super::list::{nodes, NodeSummary};
use super::node::Node;
use super::{access, ClusterError, LOAD_BALANCER_ROLE};
use crate::provider::Provider;
use crate::ui::{Step, Ui};

/// What `create node --role` asks for; only workers can join a running cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRoleRequest {
    Worker,
    ControlPlane,
}

impl NodeRoleRequest {
    /// Refuses a control plane: joining one needs the certificates kubeadm uploads for two
    /// hours at init, a new etcd member, and an HA load balancer a one-node cluster lacks.
    pub fn check(self) -> Result<(), ClusterError> {
        match self {
            NodeRoleRequest::Worker => Ok(()),
            NodeRoleRequest::ControlPlane => Err(ClusterError::ControlPlaneNotAddable),
        }
    }
}

/// kind's naming: `<cluster>-worker`, then `-worker2`, `-worker3`, ...: the first not taken.
pub fn next_worker_name(cluster: &str, taken: &[String]) -> String {
    (1..)
        .map(|i| {
            if i == 1 {
                format!("{cluster}-worker")
            } else {
                format!("{cluster}-worker{i}")
            }
        })
        .find(|n| !taken.contains(n))
        .expect("an unbounded range has a free name")
}

/// What is about to be done to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Delete,
    Restart,
}

/// The cluster's node `node`. The HA load balancer is not a node. Deleting is refused unless
/// it is a worker: removing a control plane would need its etcd member removed first and
/// (HA) the load balancer rewritten, and the last one takes the whole cluster with it
/// (`delete cluster` does that).
fn pick<'a>(
    cluster: &str,
    all: &'a [NodeSummary],
    node: &str,
    action: Action,
) -> Result<&'a NodeSummary, ClusterError> {
    let found = all
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| ClusterError::NoSuchNode {
            cluster: cluster.to_string(),
            unknown: vec![node.to_string()],
            nodes: all.iter().map(|n| n.name.clone()).collect(),
        })?;
    if found.role == LOAD_BALANCER_ROLE {
        return Err(ClusterError::NotAKubernetesNode {
            node: node.to_string(),
            cluster: cluster.to_string(),
        });
    }
    if action == Action::Delete && found.role != "worker" {
        return Err(ClusterError::NodeNotDeletable {
            node: node.to_string(),
            cluster: cluster.to_string(),
            role: found.role.clone(),
        });
    }
    Ok(found)
}

async fn cluster_nodes(
    docker: &dyn Provider,
    cluster: &str,
) -> Result<Vec<NodeSummary>, ClusterError> {
    let all = nodes(docker, Some(cluster)).await?;
    if all.is_empty() {
        return Err(ClusterError::NoSuchCluster {
            name: cluster.to_string(),
            known: super::clusters(docker).await?,
        });
    }
    Ok(all)
}

/// Drains the worker if its container runs (within `drain_timeout`; a drain that does not
/// finish is reported and the node removed anyway), deletes its Node object, removes its container and volume.
pub async fn delete_node(
    docker: &dyn Provider,
    cluster: &str,
    node: &str,
    drain_timeout: Duration,
    ui: &Ui,
) -> Result<(), ClusterError> {
    let all = cluster_nodes(docker, cluster).await?;
    let found = pick(cluster, &all, node, Action::Delete)?;
    let cp = access::control_plane(docker, cluster).await?;
    let step = ui.step(format!("Draining {node}"));
    if found.state != "running" {
        // No kubelet to stop the pods: a drain would only wait out its timeout. The Node's
        // deletion below has the pod garbage collector remove its pods.
        step.done_with(format!("skipped: the container is {}", found.state));
    } else {
        let drain = format!(
            "drain {node} --ignore-daemonsets --delete-emptydir-data --force --timeout={}s",
            drain_timeout.as_secs()
        );
        match Node::new(docker, &cp).kubectl(&drain, &step).await {
            Ok(_) => step.done(),
            Err(e) => {
                step.fail();
                ui.warn(format!("{e}\nremoving {node} anyway"));
            }
        }
    }
    let step = ui.step(format!("Deleting the Node {node} and its container"));
    Node::new(docker, &cp)
        .kubectl(&format!("delete node {node} --ignore-not-found"), &step)
        .await?;
    // The node's /var is an anonymous volume: removed with the container.
    docker.remove_container(node).await?;
    step.done();
    Ok(())
}

/// Restarts a node's container and waits (up to `wait`) until its kubelet reports Ready again.
pub async fn restart_node(
    docker: &dyn Provider,
    cluster: &str,
    node: &str,
    wait: Duration,
    ui: &Ui,
) -> Result<(), ClusterError> {
    let all = cluster_nodes(docker, cluster).await?;
    pick(cluster, &all, node, Action::Restart)?;
    let cp = access::control_plane(docker, cluster).await?;
    let step = ui.step(format!("Restarting {node}"));
    // Heartbeats newer than this come from the restarted kubelet (node clock, UTC).
    let since = docker
        .exec_ok(&cp, &["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .await?
        .trim()
        .to_string();
    docker.stop_container(node, 30).await?;
    docker.start_container(node).await?;
    Node::new(docker, node).wait_for_systemd().await?;
    step.done();
    if !wait.is_zero() {
        let step = ui.step(format!(
            "Waiting up to {}s for {node} to be Ready again",
            wait.as_secs()
        ));
        // A restarted control plane's API server is briefly away: ask through a running one.
        wait_node_ready(docker, cluster, &cp, node, Some(&since), wait, &step).await?;
        step.done();
    }
    Ok(())
}

/// Polls one Node's Ready condition until it is True (with `since`: with a heartbeat at or
/// after it, so a Ready left over from before a restart does not count).
pub(super) async fn wait_node_ready(
    docker: &dyn Provider,
    cluster: &str,
    cp: &str,
    node: &str,
    since: Option<&str>,
    wait: Duration,
    step: &Step,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + wait;
    let query = format!(
        r#"get node {node} -o jsonpath='{{.status.conditions[?(@.type=="Ready")].status}}={{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}}'"#
    );
    loop {
        // The API server may not answer for a moment (a restarted control plane): keep polling.
        let out = Node::new(docker, cp).kubectl_output(&query).await;
        let line = out
            .as_ref()
            .map(|o| o.stdout.trim().to_string())
            .unwrap_or_default();
        if is_ready(&line, since) {
            return Ok(());
        }
        step.progress(format!("Ready={}", line.split('=').next().unwrap_or("")));
        if Instant::now() > deadline {
            return Err(ClusterError::NodesNotReady {
                cluster: cluster.to_string(),
                ready: 0,
                total: 1,
                waited_secs: wait.as_secs(),
                nodes: format!("{node}={line}"),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `status=heartbeat` as [`wait_node_ready`] reads it: True, and fresh when `since` is given
/// (RFC 3339 UTC timestamps compare as strings).
fn is_ready(line: &str, since: Option<&str>) -> bool {
    let mut parts = line.splitn(2, '=');
    let (status, beat) = (parts.next(), parts.next().unwrap_or(""));
    status == Some("True") && since.is_none_or(|s| beat >= s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, role: &str) -> NodeSummary {
        NodeSummary {
            name: name.into(),
            cluster: "dev".into(),
            role: role.into(),
            state: "running".into(),
            ip: String::new(),
            image: String::new(),
        }
    }

    #[test]
    fn new_workers_take_the_first_free_kind_name() {
        assert_eq!(next_worker_name("dev", &[]), "dev-worker");
        let taken = vec!["dev-control-plane".to_string(), "dev-worker".to_string()];
        assert_eq!(next_worker_name("dev", &taken), "dev-worker2");
        // A gap left by `delete node` is filled first.
        let taken = vec!["dev-worker".to_string(), "dev-worker3".to_string()];
        assert_eq!(next_worker_name("dev", &taken), "dev-worker2");
    }

    #[test]
    fn control_planes_cannot_be_added() {
        assert!(NodeRoleRequest::Worker.check().is_ok());
        let err = NodeRoleRequest::ControlPlane.check().unwrap_err();
        assert!(err.to_string().contains("only workers"), "{err}");
    }

    #[test]
    fn deleting_a_control_plane_or_an_unknown_node_is_refused() {
        let all = [
            summary("dev-control-plane", "control-plane"),
            summary("dev-worker", "worker"),
            summary("dev-external-load-balancer", LOAD_BALANCER_ROLE),
        ];
        assert!(pick("dev", &all, "dev-worker", Action::Delete).is_ok());
        let err = pick("dev", &all, "dev-control-plane", Action::Delete).unwrap_err();
        assert!(
            matches!(err, ClusterError::NodeNotDeletable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("delete cluster"), "{err}");
        assert!(pick("dev", &all, "dev-control-plane", Action::Restart).is_ok());
        for action in [Action::Delete, Action::Restart] {
            let err = pick("dev", &all, "dev-external-load-balancer", action).unwrap_err();
            assert!(
                matches!(err, ClusterError::NotAKubernetesNode { .. }),
                "{err}"
            );
        }
        let err = pick("dev", &all, "dev-worker7", Action::Delete).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dev-worker7") && text.contains("dev-control-plane, dev-worker"),
            "{text}"
        );
    }

    #[test]
    fn readiness_after_a_restart_needs_a_fresh_heartbeat() {
        assert!(is_ready("True=2026-12-01T10:00:05Z", None));
        assert!(!is_ready("False=2026-12-01T10:00:05Z", None));
        assert!(!is_ready("", None));
        let since = Some("2026-12-01T10:00:00Z");
        assert!(is_ready("True=2026-12-01T10:00:05Z", since));
        assert!(!is_ready("True=2026-12-01T09:59:59Z", since));
    }
}
