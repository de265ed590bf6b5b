//! Action 10: the cluster's entry merged into the user's kubeconfig (under its file lock) and
//! made current; recorded with the owner so cleanup removes it if a later step fails.

use super::{Created, Ctx};
use crate::cluster::{kubeconfig_entry, ClusterError};
use crate::kubeconfig;

pub(super) async fn run(ctx: &Ctx<'_>) -> Result<Created, ClusterError> {
    let entry = kubeconfig_entry(ctx.docker, ctx.plan.name(), false).await?;
    kubeconfig::merge(&ctx.opts.kubeconfig, &entry)?;
    ctx.owner.wrote_kubeconfig();
    Ok(Created {
        context: kubeconfig::context_name(ctx.plan.name()),
        server: entry.server,
    })
}
