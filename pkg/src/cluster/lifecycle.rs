//! `stop cluster` / `start cluster`: every node container stopped or started in an order that
//! keeps the control plane consistent. Nodes keep their addresses (see provider::network), so
//! nothing in the cluster needs rewriting when they come back.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use super::list::{nodes, NodeSummary};
use super::node::Node;
use super::{ClusterError, LOAD_BALANCER_ROLE};
use crate::provider::Provider;
use crate::ui::{Step, Ui};

/// Docker's last resort: SIGKILL to the whole node if systemd has not halted by then.
const STOP_TIMEOUT_SECS: i32 = 30;
/// How long the pods of a stopping node get to exit on SIGTERM. systemd stops each pod
/// container's scope with SIGTERM and then waits its default stop timeout (90 s) for what is
/// left, so one process that ignores SIGTERM (any `sleep` running as a container's PID 1) held
/// every node until Docker's SIGKILL at 30 s (issue 13). etcd and the other control-plane
/// components exit within a second of SIGTERM; CoreDNS's lameduck is cut short, harmlessly.
const POD_GRACE: Duration = Duration::from_secs(3);

async fn cluster_nodes(
    docker: &dyn Provider,
    name: &str,
) -> Result<Vec<NodeSummary>, ClusterError> {
    let nodes = nodes(docker, Some(name)).await?;
    if nodes.is_empty() {
        return Err(ClusterError::NoSuchCluster {
            name: name.to_string(),
            known: super::clusters(docker).await?,
        });
    }
    Ok(nodes)
}

fn is_control_plane(n: &NodeSummary) -> bool {
    n.role != "worker"
}

/// Workers first, then the control plane, so no kubelet is left talking to a stopped API
/// server longer than needed and etcd members stop together.
pub async fn stop(docker: &dyn Provider, name: &str, ui: &Ui) -> Result<(), ClusterError> {
    let nodes = cluster_nodes(docker, name).await?;
    // First, so that nodes stopped on purpose are not tainted as shut down.
    for agent in super::list::node_lifecycle_agents(docker, name).await? {
        docker.stop_container(&agent, STOP_TIMEOUT_SECS).await?;
    }
    let (control, workers): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| is_control_plane(n));
    for (what, group) in [("worker", workers), ("control-plane", control)] {
        if group.is_empty() {
            continue;
        }
        let step = ui.step(format!("Stopping {} {what} container(s)", group.len()));
        try_join_all(group.iter().map(|n| stop_node(docker, n))).await?;
        step.done();
    }
    Ok(())
}

/// Stops one node container: Docker sends the image's stop signal (systemd's SIGRTMIN+3, a
/// clean halt); pods still running after [`POD_GRACE`] are killed, so that systemd's halt
/// goes on instead of waiting for them, and the node exits by itself (status 130) rather than
/// by Docker's SIGKILL (137), its journal and volume in order.
async fn stop_node(docker: &dyn Provider, node: &NodeSummary) -> Result<(), ClusterError> {
    let stop = docker.stop_container(&node.name, STOP_TIMEOUT_SECS);
    if node.role == LOAD_BALANCER_ROLE {
        // A plain process that exits on SIGTERM, without systemd or pods.
        return Ok(stop.await?);
    }
    let hurry = async {
        tokio::time::sleep(POD_GRACE).await;
        // Fails harmlessly once the node has stopped.
        let killed = docker
            .exec(
                &node.name,
                &["systemctl", "kill", "--signal=SIGKILL", "kubepods.slice"],
            )
            .await;
        tracing::debug!("{}: pods killed after the grace: {killed:?}", node.name);
        std::future::pending::<()>().await
    };
    tokio::select! {
        stopped = stop => Ok(stopped?),
        () = hurry => unreachable!("pending() never completes"),
    }
}

/// Control plane first (every control-plane node and the load balancer at once, so etcd
/// regains quorum), then the workers; with `wait`, until every node has reported Ready since
/// the start and the system pods run again.
pub async fn start(
    docker: &dyn Provider,
    name: &str,
    wait: Duration,
    ui: &Ui,
) -> Result<(), ClusterError> {
    let nodes = cluster_nodes(docker, name).await?;
    let (control, workers): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| is_control_plane(n));
    // `<name>-control-plane` sorts before `...-control-plane2`.
    let cp = control
        .iter()
        .filter(|n| n.role == "control-plane")
        .min_by(|a, b| a.name.len().cmp(&b.name.len()).then(a.name.cmp(&b.name)))
        .ok_or_else(|| ClusterError::NoControlPlane {
            cluster: name.to_string(),
        })?;

    // The shared registry, when this cluster uses it and it was stopped (`stop cluster` leaves
    // it running: other clusters may use it).
    let uses_registry = !docker
        .list_by_labels(&[
            format!("{}={name}", super::CLUSTER_LABEL),
            crate::registry::USER_LABEL.to_string(),
        ])
        .await?
        .is_empty();
    if uses_registry {
        if let Some(state) = super::registry::find(docker).await? {
            if state.ours && !state.running {
                let step = ui.step(format!(
                    "Starting the registry {}",
                    crate::registry::CONTAINER
                ));
                docker.start_container(crate::registry::CONTAINER).await?;
                step.done();
            }
        }
    }

    let step = ui.step(format!(
        "Starting {} control-plane container(s)",
        control.len()
    ));
    try_join_all(control.iter().map(|n| docker.start_container(&n.name))).await?;
    // The load balancer is a plain process, not a systemd node.
    try_join_all(
        control
            .iter()
            .filter(|n| n.role != LOAD_BALANCER_ROLE)
            .map(|n| Node::new(docker, &n.name).wait_for_systemd()),
    )
    .await?;
    step.done();
    // Heartbeats newer than this come from the kubelets started now (node clock, UTC).
    let since = docker
        .exec_ok(&cp.name, &["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .await?
        .trim()
        .to_string();
    if !workers.is_empty() {
        let step = ui.step(format!("Starting {} worker node(s)", workers.len()));
        try_join_all(workers.iter().map(|n| docker.start_container(&n.name))).await?;
        try_join_all(
            workers
                .iter()
                .map(|n| Node::new(docker, &n.name).wait_for_systemd()),
        )
        .await?;
        step.done();
    }
    for agent in super::list::node_lifecycle_agents(docker, name).await? {
        docker.start_container(&agent).await?;
    }
    if !wait.is_zero() {
        let step = ui.step(format!(
            "Waiting up to {}s for every node to be Ready again",
            wait.as_secs()
        ));
        let kube_nodes = nodes
            .iter()
            .filter(|n| n.role != LOAD_BALANCER_ROLE)
            .count();
        wait_recovered(docker, &cp.name, kube_nodes, &since, wait, &step).await?;
        step.done();
    }
    Ok(())
}

async fn wait_recovered(
    docker: &dyn Provider,
    cp: &str,
    count: usize,
    since: &str,
    wait: Duration,
    step: &Step,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + wait;
    let nodes_query = r#"get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}={.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}{"\n"}{end}'"#;
    let pods_query = r#"get pods -n kube-system -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[*].ready}{"\n"}{end}'"#;
    loop {
        let cp = Node::new(docker, cp);
        let out = cp.kubectl_output(nodes_query).await?;
        let ready = fresh_ready_nodes(&out.stdout, since);
        let pods = cp.kubectl_output(pods_query).await?;
        let unready: Vec<&str> = pods
            .stdout
            .lines()
            .filter(|l| l.contains("false") || l.ends_with('='))
            .map(|l| l.split('=').next().unwrap_or(l))
            .collect();
        step.progress(format!(
            "{ready}/{count} nodes Ready, {} system pods not ready",
            unready.len()
        ));
        if out.code == 0 && pods.code == 0 && ready == count && unready.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::NotRecovered {
                waited_secs: wait.as_secs(),
                ready,
                total: count,
                unready: unready.iter().map(|u| u.to_string()).collect(),
                output: format!("{}{}", out.stdout, out.stderr),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Nodes whose Ready condition is True with a heartbeat at or after `since` (RFC 3339 UTC
/// timestamps compare as strings).
fn fresh_ready_nodes(text: &str, since: &str) -> usize {
    text.lines()
        .filter(|l| {
            let mut parts = l.split('=');
            let (_, status, beat) = (parts.next(), parts.next(), parts.next());
            status == Some("True") && beat.is_some_and(|b| b >= since)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_nodes_with_a_new_heartbeat_count() {
        let text = "a=True=2026-11-22T07:10:05Z\n\
                    b=True=2026-11-22T07:09:59Z\n\
                    c=False=2026-11-22T07:10:06Z\n\
                    d=True=2026-11-22T07:10:00Z\n";
        assert_eq!(fresh_ready_nodes(text, "2026-11-22T07:10:00Z"), 2);
    }
}
