//! Action 3b: the first control plane starts unpacking its preloaded images in the background,
//! in the order `kubeadm init` needs them; every other node starts when it joins (join.rs,
//! and `create node`), so that its unpacking does not take CPU from the init everything waits
//! on. Node images carry the images in containerd's content store without unpacking them (the
//! builder cannot mount), so otherwise the first container of each image waits for its unpack
//! inside kubelet's CreateContainer call; on a slow host that call can outlast kubelet's
//! deadline and be cancelled and begun again. Best effort: kubelet still unpacks whatever is
//! not ready when it needs it (containerd takes whichever unpack of a layer finishes first).

use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::ClusterError;
use crate::config::{Cluster, NodeRole};
use crate::ui::Step;

/// The systemd unit the unpacking runs as (`journalctl -u` it in a node, or in exported logs).
const UNIT: &str = "kindred-unpack-images";

/// Image name patterns (extended regular expressions on the reference) in the order a node of
/// the role needs them: the sandbox, the static pods (control planes only), then the
/// DaemonSets and CoreDNS. Images matching none are left to kubelet.
fn wanted(role: NodeRole) -> &'static [&'static str] {
    match role {
        NodeRole::ControlPlane => &[
            "/pause:",
            "/etcd:",
            "/kube-apiserver:",
            "/kube-controller-manager:",
            "/kube-scheduler:",
            "/kube-proxy:",
            "/kindred/agent:",
            "/coredns:",
        ],
        NodeRole::Worker => &["/pause:", "/kube-proxy:", "/kindred/agent:", "/coredns:"],
    }
}

/// The script the unit runs: `ctr images mount` unpacks an image into the snapshotter (what a
/// container start would do), then the temporary view is removed again.
fn script(role: NodeRole) -> String {
    let patterns = wanted(role)
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"refs=$(ctr -n k8s.io images ls -q | grep -v '^sha256:')
for pattern in {patterns}; do
  for ref in $(printf '%s\n' "$refs" | grep -E -- "$pattern"); do
    dir=$(mktemp -d)
    if ctr -n k8s.io images mount "$ref" "$dir" >/dev/null; then
      ctr -n k8s.io images unmount --rm "$dir" >/dev/null
      echo "unpacked $ref"
    fi
    rmdir "$dir"
  done
done"#
    )
}

/// Starts the unpacking on one node and returns at once (the unit runs on after it). Not when
/// the config's containerd patches may choose another snapshotter: `ctr` would unpack into
/// overlayfs, which the runtime would then not use.
pub(super) async fn start(
    node: Node<'_>,
    role: NodeRole,
    config: &Cluster,
    step: &Step,
) -> Result<(), ClusterError> {
    if snapshotter_patched(config) {
        step.detail("images are left packed until kubelet needs them: containerdConfigPatches name a snapshotter");
        return Ok(());
    }
    node.start_unit(UNIT, &script(role), step).await
}

fn snapshotter_patched(config: &Cluster) -> bool {
    config
        .containerd_config_patches
        .iter()
        .chain(&config.containerd_config_patches_json6902)
        .any(|p| p.contains("snapshotter"))
}

pub(super) async fn run(ctx: &Ctx<'_>, step: &Step) -> Result<(), ClusterError> {
    let first = ctx.plan.first_control_plane();
    let node = Node::new(ctx.docker, &first.name);
    start(node, NodeRole::ControlPlane, &ctx.plan.config, step).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_skip_the_control_plane_images_and_the_order_starts_with_the_sandbox() {
        let worker = script(NodeRole::Worker);
        assert!(
            !worker.contains("etcd") && !worker.contains("kube-apiserver"),
            "{worker}"
        );
        let cp = script(NodeRole::ControlPlane);
        let at = |s: &str| cp.find(s).unwrap();
        assert!(
            at("/pause:") < at("/etcd:") && at("/etcd:") < at("/kube-proxy:"),
            "{cp}"
        );
    }

    #[test]
    fn a_patched_snapshotter_leaves_the_images_to_kubelet() {
        let mut config = Cluster::default();
        assert!(!snapshotter_patched(&config));
        config.containerd_config_patches =
            vec!["[plugins.\"io.containerd.cri.v1.images\"]\nsnapshotter = \"native\"".into()];
        assert!(snapshotter_patched(&config));
    }

    #[test]
    fn the_script_is_valid_bash() {
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", &script(NodeRole::ControlPlane)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
