//! Action 2 (HA clusters only): points the API load balancer at every control plane. The list
//! is written whole and renamed into place so the balancer never reads half a file.

use super::Ctx;
use crate::cluster::containers::LB_BACKENDS;
use crate::cluster::node::Node;
use crate::cluster::ClusterError;
use crate::config::NodeRole;
use crate::kubeadm;
use crate::ui::Step;

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<(), ClusterError> {
    let Some(lb) = &ctx.plan.load_balancer else {
        return Ok(());
    };
    let backends: String = ctx
        .plan
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .map(|n| format!("{}:{}\n", n.name, kubeadm::API_SERVER_BIND_PORT))
        .collect();
    Node::new(ctx.docker, lb)
        .sh(
            &format!(
                "mkdir -p /kindred && printf '%s' '{backends}' > {LB_BACKENDS}.tmp && mv {LB_BACKENDS}.tmp {LB_BACKENDS}"
            ),
            step,
        )
        .await?;
    Ok(())
}
