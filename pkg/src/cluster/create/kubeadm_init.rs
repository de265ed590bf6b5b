//! Action 5: `kubeadm init` on the first control plane (with `--upload-certs` in HA, so the
//! other control planes can fetch the certificates). A failure carries kubelet's last log lines.

use super::kubeadm_config::{self, Bootstrap, KUBEADM_CONFIG};
use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::ClusterError;
use crate::kubeadm::NodeBootstrap;
use crate::ui::Step;

pub(super) async fn run(
    ctx: &Ctx<'_>,
    bootstrap: &Bootstrap,
    step: &Step,
) -> Result<(), ClusterError> {
    let cp = ctx.plan.first_control_plane();
    let config = bootstrap.render(ctx, cp, NodeBootstrap::FirstControlPlane)?;
    kubeadm_config::write(ctx.docker, &cp.name, &config, step).await?;
    let upload_certs = if bootstrap.certificate_key.is_some() {
        " --upload-certs"
    } else {
        ""
    };
    let init = format!(
        "kubeadm init --config={KUBEADM_CONFIG} --skip-token-print --ignore-preflight-errors=all{upload_certs}"
    );
    let node = Node::new(ctx.docker, &cp.name);
    if let Err(e) = node.sh(&init, step).await {
        return Err(node.with_kubelet_log(e).await);
    }
    Ok(())
}
