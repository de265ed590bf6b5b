//! The plan of a cluster: which node containers to create, named as kind names them.

use crate::config::{Cluster, Node, NodeRole};

#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Container and host name, e.g. `dev-control-plane`, `dev-worker2`.
    pub name: String,
    pub role: NodeRole,
    /// The node's entry in the config.
    pub config: Node,
}

#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub config: Cluster,
    pub nodes: Vec<NodePlan>,
    /// With several control planes: the container balancing the API over them, named
    /// `<cluster>-external-load-balancer` as kind names it.
    pub load_balancer: Option<String>,
}

impl ClusterPlan {
    /// `config` must be defaulted and validated.
    pub fn new(config: Cluster) -> ClusterPlan {
        let (mut control_planes, mut workers) = (0, 0);
        let nodes = config
            .nodes
            .iter()
            .map(|n| {
                let (kind, count) = match n.role {
                    NodeRole::ControlPlane => ("control-plane", &mut control_planes),
                    NodeRole::Worker => ("worker", &mut workers),
                };
                *count += 1;
                let suffix = if *count == 1 {
                    String::new()
                } else {
                    count.to_string()
                };
                NodePlan {
                    name: format!("{}-{kind}{suffix}", config.name),
                    role: n.role,
                    config: n.clone(),
                }
            })
            .collect::<Vec<NodePlan>>();
        let load_balancer =
            (control_planes > 1).then(|| format!("{}-external-load-balancer", config.name));
        ClusterPlan {
            config,
            nodes,
            load_balancer,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The control plane that runs `kubeadm init`.
    pub fn first_control_plane(&self) -> &NodePlan {
        self.nodes
            .iter()
            .find(|n| n.role == NodeRole::ControlPlane)
            .expect("validated config has a control plane")
    }

    /// Control planes joining the first one (HA clusters).
    pub fn other_control_planes(&self) -> impl Iterator<Item = &NodePlan> {
        let first = self.first_control_plane().name.clone();
        self.nodes
            .iter()
            .filter(move |n| n.role == NodeRole::ControlPlane && n.name != first)
    }

    /// The host (container name) behind kubeadm's controlPlaneEndpoint: the load balancer of
    /// an HA cluster, else the only control plane.
    pub fn api_endpoint_host(&self) -> &str {
        self.load_balancer
            .as_deref()
            .unwrap_or(&self.first_control_plane().name)
    }

    pub fn workers(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn nodes_are_named_like_kind() {
        let yaml = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: dev\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n- role: control-plane\n";
        let plan = ClusterPlan::new(parse(yaml, "test").unwrap().with_defaults());
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev-control-plane",
                "dev-worker",
                "dev-worker2",
                "dev-control-plane2"
            ]
        );
        assert_eq!(plan.first_control_plane().name, "dev-control-plane");
        assert_eq!(plan.workers().count(), 2);
        assert_eq!(
            plan.load_balancer.as_deref(),
            Some("dev-external-load-balancer")
        );
        assert_eq!(plan.api_endpoint_host(), "dev-external-load-balancer");
        let others: Vec<&str> = plan
            .other_control_planes()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(others, ["dev-control-plane2"]);
    }

    #[test]
    fn one_control_plane_needs_no_load_balancer() {
        let yaml = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: dev\n";
        let plan = ClusterPlan::new(parse(yaml, "test").unwrap().with_defaults());
        assert_eq!(plan.load_balancer, None);
        assert_eq!(plan.api_endpoint_host(), "dev-control-plane");
    }
}
