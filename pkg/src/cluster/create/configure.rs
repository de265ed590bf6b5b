//! Action 3: every node booted (systemd running) and configured before kubeadm: containerd
//! patches, proxy drop-ins and registry hosts (see `cluster::node_setup`).

use futures_util::future::try_join_all;

use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::{node_setup, ClusterError};
use crate::ui::Step;

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<(), ClusterError> {
    try_join_all(
        ctx.plan
            .nodes
            .iter()
            .map(|n| Node::new(ctx.docker, &n.name).wait_for_systemd()),
    )
    .await?;
    for note in &ctx.options.notes {
        step.detail(note);
    }
    node_setup::configure_nodes(ctx.docker, ctx.plan, ctx.options, step).await
}
