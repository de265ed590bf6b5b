//! Action 7: the other control planes and the workers join. Control planes one at a time:
//! each adds an etcd member, and etcd admits a single learner at a time. Workers only need the
//! API, so they join meanwhile, all at once. Each starts unpacking its images (unpack.rs) just
//! before its join.

use futures_util::future::{try_join, try_join_all};

use super::kubeadm_config::{self, Bootstrap, KUBEADM_CONFIG};
use super::{unpack, Ctx};
use crate::cluster::node::Node;
use crate::cluster::plan::NodePlan;
use crate::cluster::ClusterError;
use crate::kubeadm::NodeBootstrap;
use crate::ui::Step;

/// How many nodes [`run`] joins (zero: nothing to do).
pub(super) fn joining(ctx: &Ctx<'_>) -> usize {
    ctx.plan.other_control_planes().count() + ctx.plan.workers().count()
}

pub(super) async fn run(
    ctx: &Ctx<'_>,
    bootstrap: &Bootstrap,
    step: &Step,
) -> Result<(), ClusterError> {
    let control_planes = async {
        for node in ctx.plan.other_control_planes() {
            join(
                ctx,
                bootstrap,
                node,
                NodeBootstrap::JoiningControlPlane,
                step,
            )
            .await?;
        }
        Ok::<(), ClusterError>(())
    };
    let workers = try_join_all(
        ctx.plan
            .workers()
            .map(|w| join(ctx, bootstrap, w, NodeBootstrap::Worker, step)),
    );
    try_join(control_planes, workers).await?;
    Ok(())
}

/// `kubeadm join` on one node; a failure carries kubelet's last log lines.
async fn join(
    ctx: &Ctx<'_>,
    bootstrap: &Bootstrap,
    node: &NodePlan,
    role: NodeBootstrap,
    step: &Step,
) -> Result<(), ClusterError> {
    let config = bootstrap.render(ctx, node, role)?;
    unpack::start(
        Node::new(ctx.docker, &node.name),
        node.role,
        &ctx.plan.config,
        step,
    )
    .await?;
    kubeadm_config::write(ctx.docker, &node.name, &config, step).await?;
    let join = format!("kubeadm join --config={KUBEADM_CONFIG} --ignore-preflight-errors=all");
    let node = Node::new(ctx.docker, &node.name);
    match node.sh(&join, step).await {
        Ok(_) => Ok(()),
        Err(e) => Err(node.with_kubelet_log(e).await),
    }
}
