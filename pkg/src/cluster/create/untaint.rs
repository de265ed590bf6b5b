//! Action 8 (clusters without workers): lets workloads schedule on the control plane(s).

use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::ClusterError;
use crate::ui::Step;

/// True when the cluster has no workers, so the control planes must take workloads.
pub(super) fn needed(ctx: &Ctx<'_>) -> bool {
    ctx.plan.workers().count() == 0
}

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<(), ClusterError> {
    Node::new(ctx.docker, &ctx.plan.first_control_plane().name)
        .kubectl(
            "taint nodes --all node-role.kubernetes.io/control-plane-",
            step,
        )
        .await?;
    Ok(())
}
