//! Keeping a test's clusters from outliving it: a guard that deletes them on drop, and a
//! runner that deletes them before and after a test body and checks nothing is left.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use crate::{containers_of, kindred};

/// A kind config for 1 control plane + 1 worker.
pub const ONE_PLUS_ONE: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
";

/// A kind config for 1 control plane + 2 workers (the topology upstream's conformance runs
/// use).
pub const ONE_PLUS_TWO: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
";

/// Deletes the named clusters (with `kindred delete cluster`) when dropped, also when the
/// test panics.
pub struct DeleteOnDrop {
    /// The kindred executable (`env!("CARGO_BIN_EXE_kindred")`).
    pub exe: &'static str,
    pub names: Vec<String>,
    pub kubeconfig: PathBuf,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = kindred(
                self.exe,
                &["delete", "cluster", "--name", name],
                &self.kubeconfig,
            )
            .output();
        }
    }
}

/// Runs `body` between two runs of `cleanup` (the first removes leftovers of an earlier run,
/// the second what `body` created, also when it panicked; `on_failure` runs before it, e.g. to
/// export logs). Then no container of `clusters` may remain; a panic of `body` is re-raised
/// first, with any leftovers printed.
pub fn cleaned_up(
    clusters: &[&str],
    cleanup: impl Fn(),
    on_failure: impl FnOnce(),
    body: impl FnOnce(),
) {
    cleanup();
    let result = std::panic::catch_unwind(AssertUnwindSafe(body));
    if result.is_err() {
        on_failure();
    }
    cleanup();
    let left: Vec<(&str, String)> = clusters
        .iter()
        .map(|c| (*c, containers_of(c)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    if let Err(panic) = result {
        if !left.is_empty() {
            eprintln!("containers left behind: {left:?}");
        }
        std::panic::resume_unwind(panic);
    }
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

/// Where a test keeps what its failure must leave behind (e.g. a conformance run's report):
/// `$KINDRED_ARTIFACTS/<name>` when CI keeps that directory (.ci/run sets it), else
/// `scratch/<name>` (the test's own temporary directory).
pub fn artifacts_dir(name: &str, scratch: &std::path::Path) -> PathBuf {
    match std::env::var_os("KINDRED_ARTIFACTS").filter(|a| !a.is_empty()) {
        Some(kept) => PathBuf::from(kept).join(name),
        None => scratch.join(name),
    }
}

/// `kindred -v delete cluster` of a test's cluster with its kubeconfig (verbose: it says what
/// it removed, and what it thawed).
pub fn delete(exe: &str, cluster: &str, kubeconfig: &str) -> std::process::Output {
    let args = ["-v", "delete", "cluster", "--name", cluster];
    kindred(exe, &args, kubeconfig)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("run kindred")
}

/// Exports the logs of `cluster` into `$KINDRED_ARTIFACTS/kindred-logs-<cluster>` when CI keeps
/// that directory (for a failed test: run it before the cluster is deleted).
pub fn export_logs_if_kept(exe: &'static str, cluster: &str, kubeconfig: &std::path::Path) {
    if std::env::var_os("KINDRED_ARTIFACTS").is_some() {
        let _ = kindred(exe, &["export", "logs", "--name", cluster], kubeconfig).output();
    }
}
