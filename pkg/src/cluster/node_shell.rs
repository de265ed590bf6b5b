//! Commands on a node container as the create steps run them: a shell script whose output goes
//! to the step's details and whose failure carries its last lines, kubectl as cluster admin,
//! a file written through a here-document, and the wait for systemd to finish booting.

use std::time::{Duration, Instant};

use super::{ClusterError, ADMIN_CONF};
use crate::provider::Provider;
use crate::ui::Step;

/// Runs `bash -c script` on a node; a failure carries the command's output.
pub(super) async fn sh(
    docker: &dyn Provider,
    node: &str,
    script: &str,
    step: &Step,
) -> Result<String, ClusterError> {
    step.detail(format!("[{node}] $ {script}"));
    let out = docker.exec(node, &["bash", "-c", script]).await?;
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        step.detail(format!("[{node}] {line}"));
    }
    if out.code != 0 {
        let tail: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).collect();
        return Err(ClusterError::NodeCommand {
            node: node.to_string(),
            command: script.to_string(),
            code: out.code,
            output: tail[tail.len().saturating_sub(25)..].join("\n"),
            kubelet_log: None,
        });
    }
    Ok(out.stdout)
}

/// `kubectl <args>` as cluster admin on a control-plane node, through [`sh`].
pub(super) async fn kubectl(
    docker: &dyn Provider,
    node: &str,
    args: &str,
    step: &Step,
) -> Result<String, ClusterError> {
    sh(
        docker,
        node,
        &format!("kubectl --kubeconfig={ADMIN_CONF} {args}"),
        step,
    )
    .await
}

/// Writes `content` to `path` on the node, creating its directory.
pub(super) async fn write_file(
    docker: &dyn Provider,
    node: &str,
    path: &str,
    content: &str,
    step: &Step,
) -> Result<(), ClusterError> {
    const END: &str = "KINDRED_END_OF_FILE";
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    sh(
        docker,
        node,
        &format!("mkdir -p {dir} && cat > {path} <<'{END}'\n{content}\n{END}"),
        step,
    )
    .await?;
    Ok(())
}

/// Adds the node's last kubelet log lines to a kubeadm failure: kubeadm itself often only
/// says that it timed out waiting.
pub(super) async fn with_kubelet_log(docker: &dyn Provider, err: ClusterError) -> ClusterError {
    match err {
        ClusterError::NodeCommand {
            node,
            command,
            code,
            output,
            kubelet_log: None,
        } => {
            let log = super::unit_log_tail(docker, &node, "kubelet").await;
            ClusterError::NodeCommand {
                node,
                command,
                code,
                output,
                kubelet_log: Some(log),
            }
        }
        other => other,
    }
}

/// Waits until systemd on the node has finished booting (`running`, or `degraded`: a unit the
/// node does not need may fail in a container).
pub(super) async fn wait_for_systemd(
    docker: &dyn Provider,
    node: &str,
) -> Result<(), ClusterError> {
    let limit = crate::patience::scaled(Duration::from_secs(180));
    let deadline = Instant::now() + limit;
    loop {
        let out = docker
            .exec(node, &["systemctl", "is-system-running"])
            .await?;
        let state = out.stdout.trim();
        if state == "running" || state == "degraded" {
            return Ok(());
        }
        if Instant::now() > deadline {
            let failed = docker
                .exec(node, &["systemctl", "--failed", "--no-legend"])
                .await?;
            return Err(ClusterError::NodeBoot {
                node: node.to_string(),
                state: state.to_string(),
                waited_secs: limit.as_secs(),
                failed_units: failed.stdout,
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
