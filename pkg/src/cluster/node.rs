//! A handle on one node container: the commands cluster code runs there, named for what they
//! do. A shell script whose output goes to a step's details and whose failure carries its last
//! lines, kubectl as cluster admin, a file written through a here-document, a unit's last
//! journal lines, and the wait for systemd to finish booting.

use std::time::{Duration, Instant};

use super::{ClusterError, ADMIN_CONF};
use crate::provider::{ExecOutput, Provider};
use crate::ui::Step;

/// A node container of the provider, by name. Cheap to make: it holds two references.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    provider: &'a dyn Provider,
    name: &'a str,
}

impl<'a> Node<'a> {
    pub fn new(provider: &'a dyn Provider, name: &'a str) -> Self {
        Node { provider, name }
    }

    /// Runs `bash -c script`; its output goes to the step's details, and a failure carries
    /// the last lines of it.
    pub async fn sh(self, script: &str, step: &Step) -> Result<String, ClusterError> {
        let node = self.name;
        step.detail(format!("[{node}] $ {script}"));
        let out = self.provider.exec(node, &["bash", "-c", script]).await?;
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

    /// `kubectl <args>` (shell words) as cluster admin on a control-plane node, through
    /// [`Node::sh`].
    pub async fn kubectl(self, args: &str, step: &Step) -> Result<String, ClusterError> {
        self.sh(&format!("kubectl --kubeconfig={ADMIN_CONF} {args}"), step)
            .await
    }

    /// `kubectl <args>` as cluster admin, its output returned whatever its exit code: for
    /// queries polled until they answer.
    pub async fn kubectl_output(self, args: &str) -> Result<ExecOutput, ClusterError> {
        let script = format!("kubectl --kubeconfig={ADMIN_CONF} {args}");
        Ok(self
            .provider
            .exec(self.name, &["bash", "-c", &script])
            .await?)
    }

    /// Writes `content` to `path`, creating its directory.
    pub async fn write_file(
        self,
        path: &str,
        content: &str,
        step: &Step,
    ) -> Result<(), ClusterError> {
        const END: &str = "KINDRED_END_OF_FILE";
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        self.sh(
            &format!("mkdir -p {dir} && cat > {path} <<'{END}'\n{content}\n{END}"),
            step,
        )
        .await?;
        Ok(())
    }

    /// Runs `script` as the transient systemd unit `unit` and returns once it has started:
    /// work that goes on beside the caller, its output in the node's journal. The script goes
    /// to a file first: systemd keeps a unit's command in the unit's file and would re-read
    /// (and warn about) a script's `$`, `;` and newlines at every daemon reload.
    pub async fn start_unit(
        self,
        unit: &str,
        script: &str,
        step: &Step,
    ) -> Result<(), ClusterError> {
        let path = format!("/run/kindred/{unit}.sh");
        self.write_file(&path, script, step).await?;
        self.sh(
            &format!("systemd-run --unit={unit} --collect --quiet bash {path}"),
            step,
        )
        .await
        .map(drop)
    }

    /// The last 15 journal lines of a systemd unit (empty if they cannot be read), to explain
    /// a failure that the failing command itself does not.
    pub async fn journal_tail(self, unit: &str) -> String {
        let cmd = [
            "journalctl",
            "-u",
            unit,
            "--no-pager",
            "-n",
            "15",
            "-o",
            "cat",
        ];
        self.provider
            .exec(self.name, &cmd)
            .await
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    /// Adds this node's last kubelet log lines to a failed kubeadm command: kubeadm itself
    /// often only says that it timed out waiting.
    pub async fn with_kubelet_log(self, err: ClusterError) -> ClusterError {
        match err {
            ClusterError::NodeCommand {
                node,
                command,
                code,
                output,
                kubelet_log: None,
            } => ClusterError::NodeCommand {
                node,
                command,
                code,
                output,
                kubelet_log: Some(self.journal_tail("kubelet").await),
            },
            other => other,
        }
    }

    /// Waits until systemd has finished booting (`running`, or `degraded`: a unit the node
    /// does not need may fail in a container).
    pub async fn wait_for_systemd(self) -> Result<(), ClusterError> {
        let limit = crate::patience::scaled(Duration::from_secs(180));
        let deadline = Instant::now() + limit;
        loop {
            let out = self
                .provider
                .exec(self.name, &["systemctl", "is-system-running"])
                .await?;
            let state = out.stdout.trim();
            if state == "running" || state == "degraded" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let failed = self
                    .provider
                    .exec(self.name, &["systemctl", "--failed", "--no-legend"])
                    .await?;
                return Err(ClusterError::NodeBoot {
                    node: self.name.to_string(),
                    state: state.to_string(),
                    waited_secs: limit.as_secs(),
                    failed_units: failed.stdout,
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
