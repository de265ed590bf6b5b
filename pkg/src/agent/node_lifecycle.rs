//! Node lifecycle, kept the way a cloud's controller manager keeps it: a Node whose container
//! is gone is deleted from the API; a Node whose container is stopped gets the
//! `node.cloudprovider.kubernetes.io/shutdown` taint, which goes again once the container runs
//! and the Node is Ready.
//!
//! Only the container runtime knows a container from a stopped or a removed one, so this runs
//! outside the cluster: `kindred agent node-lifecycle --cluster NAME` in its own container
//! beside the nodes, given the runtime's API socket (a grant equal to root on the host; no pod
//! can reach it, and the cluster holds no Docker credential). It reads the admin kubeconfig
//! from a control-plane container through that socket, so it needs no credentials of its own.
//!
//! It compares when the runtime reports a change to one of the cluster's containers, every
//! [`RESYNC`] besides (an event missed while reconnecting cannot strand a Node), every
//! [`WAITING`] while a started node's taint waits for Ready, and after a failure with a
//! growing pause: it costs nothing while the cluster is quiet, which slow hosts notice.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::AgentError;
use crate::cluster::{self, CLUSTER_LABEL, ROLE_LABEL};
use crate::provider::{Docker, Provider};

/// The taint a cloud puts on a Node whose machine is shut down (the cloud node lifecycle
/// controller's key), with effect NoSchedule.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";

/// How often containers and Nodes are compared without a change reported.
const RESYNC: Duration = Duration::from_secs(30);
/// How often a started node is checked for Ready, to lift its taint.
const WAITING: Duration = Duration::from_secs(2);
/// The longest pause after failed comparisons (the API server is down while the cluster
/// is created, started or stopped); the pause starts at [`WAITING`] and doubles.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a burst of changes (a stop is a kill, a die and a stop) may take to settle
/// before one comparison handles all of it.
const SETTLE: Duration = Duration::from_millis(300);

/// When the next comparison is due, besides a change and the resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Quiet,
    /// A taint waits for its Node to be Ready.
    Soon,
}

/// What the API says of one Node, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// `spec.providerID`; kindred's nodes have `kindred://docker/<cluster>/<container>`.
    pub provider_id: Option<String>,
    pub ready: bool,
    pub shutdown_tainted: bool,
    pub resource_version: Option<String>,
}

/// One change to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Delete(String),
    Taint(String),
    Untaint(String),
}

/// What to change, given the Nodes and the cluster's node containers (name → state:
/// `running`, `exited`, `paused`, ...). Only Nodes whose provider ID names a container of this
/// cluster are touched: a Node someone joined by other means is left alone.
pub fn decide(
    cluster: &str,
    nodes: &[NodeView],
    containers: &HashMap<String, String>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for node in nodes {
        let Some(container) = container_of(cluster, node) else {
            continue;
        };
        match containers.get(container).map(String::as_str) {
            None => actions.push(Action::Delete(node.name.clone())),
            // Running again: the taint goes once kubelet has said Ready, as a cloud does it.
            Some("running") if node.shutdown_tainted && node.ready => {
                actions.push(Action::Untaint(node.name.clone()))
            }
            Some("exited" | "created" | "dead") if !node.shutdown_tainted => {
                actions.push(Action::Taint(node.name.clone()))
            }
            // Paused, restarting, or already as it should be.
            Some(_) => {}
        }
    }
    actions
}

/// The container a Node's provider ID names, if it names one of this cluster's.
fn container_of<'a>(cluster: &str, node: &'a NodeView) -> Option<&'a str> {
    node.provider_id
        .as_deref()?
        .strip_prefix("kindred://docker/")?
        .strip_prefix(cluster)?
        .strip_prefix('/')
}

fn view(node: &Node) -> NodeView {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let spec = node.spec.as_ref();
    NodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        provider_id: spec.and_then(|s| s.provider_id.clone()),
        ready,
        shutdown_tainted: taints(node).iter().any(|t| t.key == SHUTDOWN_TAINT),
        resource_version: node.metadata.resource_version.clone(),
    }
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// The Node's taints with the shutdown taint added or removed, as a merge patch that carries
/// the resourceVersion it was computed from, so a concurrent change to the taints (kubelet,
/// the node lifecycle controller) makes it fail with a conflict and be retried on the next
/// pass instead of being overwritten.
fn taint_patch(node: &Node, shutdown: bool) -> serde_json::Value {
    let mut list: Vec<Taint> = taints(node)
        .into_iter()
        .filter(|t| t.key != SHUTDOWN_TAINT)
        .collect();
    if shutdown {
        list.push(Taint {
            key: SHUTDOWN_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    serde_json::json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": list},
    })
}

pub struct NodeLifecycle {
    cluster: String,
    docker: Docker,
}

impl NodeLifecycle {
    pub async fn connect(cluster: String) -> Result<Self, AgentError> {
        let docker = Docker::connect()
            .await
            .map_err(|e| AgentError::Msg(e.to_string()))?;
        Ok(NodeLifecycle { cluster, docker })
    }

    /// Compares until SIGTERM or SIGINT; failures are logged and retried.
    pub async fn run(self) -> Result<(), AgentError> {
        use futures_util::{FutureExt, StreamExt};
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| AgentError::Msg(e.to_string()))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| AgentError::Msg(e.to_string()))?;
        let labels = [format!("{CLUSTER_LABEL}={}", self.cluster)];
        let mut changes = self.docker.container_changes(&labels);
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client = None;
        // Zero: no comparison due before the next change or resync.
        let mut due_in = Duration::ZERO;
        let mut backoff = WAITING;
        tracing::info!(
            "keeping the Nodes of cluster {} in step with its containers",
            self.cluster
        );
        loop {
            let due = async {
                if due_in.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(due_in).await
                }
            };
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
                change = changes.next() => match change {
                    Some(Ok(())) => {
                        tokio::time::sleep(SETTLE).await;
                        while let Some(Some(Ok(()))) = changes.next().now_or_never() {}
                    }
                    Some(Err(e)) => tracing::warn!("{e}; following the container events again"),
                    None => {
                        tokio::time::sleep(WAITING).await;
                        changes = self.docker.container_changes(&labels);
                    }
                },
                _ = resync.tick() => {}
                () = due => {}
            }
            due_in = match self.pass(&mut client).await {
                Ok(next) => {
                    backoff = WAITING;
                    match next {
                        Next::Quiet => Duration::ZERO,
                        Next::Soon => WAITING,
                    }
                }
                Err(e) => {
                    tracing::warn!("{e} (again in {}s)", backoff.as_secs());
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
        }
    }

    /// One comparison of the cluster's node containers with its Nodes, and what it changed.
    async fn pass(&self, client: &mut Option<kube::Client>) -> Result<Next, AgentError> {
        let listed = self
            .docker
            .list_by_labels(&[format!("{CLUSTER_LABEL}={}", self.cluster)])
            .await
            .map_err(|e| AgentError::Msg(format!("listing the cluster's containers: {e}")))?;
        let containers: HashMap<String, String> = listed
            .into_iter()
            .filter(|c| {
                let role = c.labels.get(ROLE_LABEL).map(String::as_str);
                matches!(role, Some("control-plane" | "worker"))
            })
            .map(|c| (c.name, c.state))
            .collect();
        // Built once: the endpoint (a container name) and the admin credentials stay.
        let api: Api<Node> = match client {
            Some(c) => Api::all(c.clone()),
            None => Api::all(client.insert(self.client().await?).clone()),
        };
        let nodes = api.list(&Default::default()).await?.items;
        let views: Vec<NodeView> = nodes.iter().map(view).collect();
        let mut next = if views.iter().any(|v| {
            v.shutdown_tainted
                && container_of(&self.cluster, v)
                    .and_then(|c| containers.get(c))
                    .is_some_and(|state| state == "running")
        }) {
            Next::Soon
        } else {
            Next::Quiet
        };
        for action in decide(&self.cluster, &views, &containers) {
            let result = match &action {
                Action::Delete(name) => {
                    tracing::info!("Node {name}: its container is gone; deleting the Node");
                    match api.delete(name, &DeleteParams::default()).await {
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        other => other.map(|_| ()),
                    }
                }
                Action::Taint(name) | Action::Untaint(name) => {
                    let shutdown = matches!(action, Action::Taint(_));
                    tracing::info!(
                        "Node {name}: container {}; {} the {SHUTDOWN_TAINT} taint",
                        if shutdown {
                            "stopped"
                        } else {
                            "running and Ready"
                        },
                        if shutdown { "adding" } else { "removing" }
                    );
                    let node = nodes
                        .iter()
                        .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
                        .expect("actions name listed Nodes");
                    let patch = Patch::Merge(taint_patch(node, shutdown));
                    api.patch(name, &PatchParams::default(), &patch)
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = result {
                tracing::warn!("{action:?} failed (retrying): {e}");
                next = Next::Soon;
            }
        }
        Ok(next)
    }

    /// An admin client for the API server as containers on the kindred network reach it,
    /// from the admin kubeconfig a control-plane container holds.
    async fn client(&self) -> Result<kube::Client, AgentError> {
        let entry = cluster::kubeconfig_entry(&self.docker, &self.cluster, true)
            .await
            .map_err(|e| AgentError::Client(e.to_string()))?;
        let yaml = crate::kubeconfig::render(&entry);
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)
            .map_err(|e| AgentError::Client(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| AgentError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| AgentError::Client(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, tainted: bool) -> NodeView {
        NodeView {
            name: name.into(),
            provider_id: Some(format!("kindred://docker/dev/{name}")),
            ready,
            shutdown_tainted: tainted,
            resource_version: Some("1".into()),
        }
    }

    fn containers(states: &[(&str, &str)]) -> HashMap<String, String> {
        states
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn a_node_whose_container_is_gone_is_deleted_even_while_still_ready() {
        let nodes = [
            node("dev-control-plane", true, false),
            node("dev-worker", true, false),
        ];
        let actions = decide(
            "dev",
            &nodes,
            &containers(&[("dev-control-plane", "running")]),
        );
        assert_eq!(actions, vec![Action::Delete("dev-worker".into())]);
    }

    #[test]
    fn a_stopped_container_taints_its_node_once() {
        let c = containers(&[("dev-worker", "exited")]);
        assert_eq!(
            decide("dev", &[node("dev-worker", false, false)], &c),
            vec![Action::Taint("dev-worker".into())]
        );
        assert!(decide("dev", &[node("dev-worker", false, true)], &c).is_empty());
    }

    #[test]
    fn the_taint_goes_when_the_container_runs_and_the_node_is_ready() {
        let c = containers(&[("dev-worker", "running")]);
        assert!(
            decide("dev", &[node("dev-worker", false, true)], &c).is_empty(),
            "kubelet has not said Ready yet"
        );
        assert_eq!(
            decide("dev", &[node("dev-worker", true, true)], &c),
            vec![Action::Untaint("dev-worker".into())]
        );
    }

    #[test]
    fn paused_and_restarting_containers_change_nothing() {
        let c = containers(&[("dev-a", "paused"), ("dev-b", "restarting")]);
        let nodes = [node("dev-a", false, false), node("dev-b", false, false)];
        assert!(decide("dev", &nodes, &c).is_empty());
    }

    #[test]
    fn nodes_of_other_clusters_or_without_a_kindred_provider_id_are_left_alone() {
        let mut foreign = node("dev-extra", false, false);
        foreign.provider_id = None;
        let mut other = node("prod-worker", false, false);
        other.provider_id = Some("kindred://docker/prod/prod-worker".into());
        let mut cloud = node("vm-1", false, false);
        cloud.provider_id = Some("gce://project/zone/vm-1".into());
        // A cluster named like a prefix of another must not match it.
        let mut prefix = node("dev2-worker", false, false);
        prefix.provider_id = Some("kindred://docker/dev2/dev2-worker".into());
        assert!(decide("dev", &[foreign, other, cloud, prefix], &HashMap::new()).is_empty());
    }

    #[test]
    fn the_taint_patch_keeps_other_taints_and_pins_the_resource_version() {
        let mut n = Node::default();
        n.metadata.name = Some("dev-worker".into());
        n.metadata.resource_version = Some("42".into());
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(vec![Taint {
                key: "node.kubernetes.io/unreachable".into(),
                effect: "NoExecute".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let added = taint_patch(&n, true);
        assert_eq!(added["metadata"]["resourceVersion"], "42");
        let keys: Vec<&str> = added["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["node.kubernetes.io/unreachable", SHUTDOWN_TAINT]);
        assert_eq!(added["spec"]["taints"][1]["effect"], "NoSchedule");
        n.spec.as_mut().unwrap().taints =
            serde_json::from_value(added["spec"]["taints"].clone()).unwrap();
        let removed = taint_patch(&n, false);
        assert_eq!(removed["spec"]["taints"].as_array().unwrap().len(), 1);
    }
}
