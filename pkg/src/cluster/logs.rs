//! `export logs`: everything needed to debug a cluster after the fact (a failed CI job), in one
//! directory. Nodes are collected concurrently; a file that cannot be collected (a node whose
//! systemd never started, a stopped container) is noted in `errors.txt` and the rest goes on,
//! because a half-broken cluster is exactly when logs are wanted.
//!
//! ```text
//! DIR/kindred-version.txt, docker-info.json, errors.txt (only if something failed)
//! DIR/<node>/inspect.json            docker inspect of the node container
//!           container.log            the container's own output (entrypoint, systemd)
//!           journal.log              the whole journal
//!           kubelet.log, containerd.log
//!           crictl-ps.txt, crictl-images.txt
//!           kubernetes-version.txt, kubeadm.conf
//!           var/log/...              pods/, containers/, journal/ ... as on the node
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use futures_util::future::join_all;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{select_nodes, ClusterError};
use crate::provider::{Provider, ProviderError};

/// Why one file (or tree) could not be collected; noted in `errors.txt`, the rest goes on.
#[derive(Debug, thiserror::Error)]
enum CollectError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `create` or `write`.
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited with {code}: {stderr}")]
    Command {
        command: String,
        code: i64,
        stderr: String,
    },
    /// Reading the copied archive (or the copy stream) failed.
    #[error("{0}")]
    Archive(#[source] std::io::Error),
    #[error("some entries were not copied: {}", .0.join("; "))]
    NotCopied(Vec<String>),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("unpacking stopped: {0}")]
    Unpack(#[from] tokio::task::JoinError),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CollectError {
    let path = path.to_path_buf();
    move |source| CollectError::Io {
        action,
        path,
        source,
    }
}

/// With no directory given, logs go under `$KINDRED_ARTIFACTS/kindred-logs-<cluster>` (CI
/// systems collect such a directory), else into a new temporary directory.
pub const ARTIFACTS_ENV: &str = "KINDRED_ARTIFACTS";

#[derive(Debug)]
pub struct ExportedLogs {
    pub dir: PathBuf,
    /// `what: why` for each file that could not be collected (also in `errors.txt`).
    pub errors: Vec<String>,
}

/// The directory `export logs` uses when none is given: under `artifacts` if set (not
/// empty), else `None` (a new temporary directory).
pub fn artifacts_dir(cluster: &str, artifacts: Option<&str>) -> Option<PathBuf> {
    artifacts
        .filter(|a| !a.is_empty())
        .map(|a| Path::new(a).join(format!("kindred-logs-{cluster}")))
}

/// [`artifacts_dir`] from the environment, else a new temporary directory (kept).
fn default_logs_dir(cluster: &str) -> Result<PathBuf, ClusterError> {
    logs_dir(cluster, std::env::var(ARTIFACTS_ENV).ok().as_deref())
}

fn logs_dir(cluster: &str, artifacts: Option<&str>) -> Result<PathBuf, ClusterError> {
    if let Some(dir) = artifacts_dir(cluster, artifacts) {
        return Ok(dir);
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("kindred-logs-{cluster}-"))
        .tempdir()
        .map_err(ClusterError::TempDir)?;
    Ok(dir.keep())
}

/// Collects the logs of every node of `cluster` into `dir` (created if missing; `None`: the
/// default directory, made only once the cluster is known to exist).
pub async fn export_logs(
    docker: &dyn Provider,
    cluster: &str,
    dir: Option<&Path>,
) -> Result<ExportedLogs, ClusterError> {
    let all = super::nodes(docker, Some(cluster)).await?;
    let nodes = select_nodes(cluster, &all, &[], &super::clusters(docker).await?)?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => default_logs_dir(cluster)?,
    };
    let dir = dir.as_path();
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| ClusterError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;

    let agents = super::list::node_lifecycle_agents(docker, cluster).await?;
    let mut jobs: Vec<Job> = vec![
        Box::pin(async move {
            let text = format!(
                "kindred {} (default Kubernetes {})\n",
                env!("CARGO_PKG_VERSION"),
                crate::defaults::KUBERNETES_VERSION
            );
            (
                "kindred-version.txt".into(),
                write(&dir.join("kindred-version.txt"), text.as_bytes()).await,
            )
        }),
        Box::pin(async move {
            let file = "docker-info.json";
            let result = match docker.info_json().await {
                Ok(info) => write_json(&dir.join(file), &info).await,
                Err(e) => Err(e.into()),
            };
            (file.into(), result)
        }),
    ];
    for node in &nodes {
        // An HA cluster's load balancer is a plain container: its inspect and output only.
        let kube_node = all
            .iter()
            .any(|n| &n.name == node && n.role != super::LOAD_BALANCER_ROLE);
        jobs.extend(node_jobs(docker, node, dir, kube_node));
    }
    // The node lifecycle agent's output says what it did to which Node.
    for agent in &agents {
        jobs.extend(node_jobs(docker, agent, dir, false));
    }
    let mut errors: Vec<String> = join_all(jobs)
        .await
        .into_iter()
        .filter_map(|(what, r)| r.err().map(|why| format!("{what}: {why}")))
        .collect();
    errors.sort();
    if !errors.is_empty() {
        let text = errors.join("\n") + "\n";
        if let Err(e) = write(&dir.join("errors.txt"), text.as_bytes()).await {
            errors.push(format!("errors.txt: {e}"));
        }
    }
    Ok(ExportedLogs {
        dir: dir.to_path_buf(),
        errors,
    })
}

/// One file (or tree) to collect: its name for `errors.txt`, and the outcome.
type Job<'a> = Pin<Box<dyn Future<Output = (String, Result<(), CollectError>)> + Send + 'a>>;

fn node_jobs<'a>(
    docker: &'a dyn Provider,
    node: &'a str,
    dir: &Path,
    kube_node: bool,
) -> Vec<Job<'a>> {
    let ndir = dir.join(node);
    let mut jobs: Vec<Job<'a>> = Vec::new();
    let label = move |file: &str| format!("{node}/{file}");

    // Commands whose output is the file.
    let commands: [(&str, &[&str]); 5] = [
        ("journal.log", &["journalctl", "--no-pager"]),
        (
            "kubelet.log",
            &["journalctl", "--no-pager", "-u", "kubelet"],
        ),
        (
            "containerd.log",
            &["journalctl", "--no-pager", "-u", "containerd"],
        ),
        ("crictl-ps.txt", &["crictl", "ps", "-a"]),
        ("crictl-images.txt", &["crictl", "images"]),
    ];
    let commands = if kube_node { &commands[..] } else { &[] };
    for &(file, cmd) in commands {
        let path = ndir.join(file);
        jobs.push(Box::pin(async move {
            (label(file), command_to_file(docker, node, cmd, &path).await)
        }));
    }
    // Files copied out (work on stopped containers too).
    let files: &[(&str, &str)] = if kube_node {
        &[
            ("kubernetes-version.txt", "/kind/version"),
            ("kubeadm.conf", "/kind/kubeadm.conf"),
        ]
    } else {
        &[]
    };
    for &(file, source) in files {
        let path = ndir.join(file);
        jobs.push(Box::pin(async move {
            let result = match docker.read_container_file(node, source).await {
                Ok(bytes) => write(&path, &bytes).await,
                Err(e) => Err(e.into()),
            };
            (label(file), result)
        }));
    }
    let path = ndir.join("inspect.json");
    jobs.push(Box::pin(async move {
        let result = match docker.inspect_container_json(node).await {
            Ok(v) => write_json(&path, &v).await,
            Err(e) => Err(e.into()),
        };
        (label("inspect.json"), result)
    }));
    let path = ndir.join("container.log");
    jobs.push(Box::pin(async move {
        let result = match docker.logs(node).await {
            Ok(text) => write(&path, text.as_bytes()).await,
            Err(e) => Err(e.into()),
        };
        (label("container.log"), result)
    }));
    if !kube_node {
        return jobs;
    }
    let var = ndir.join("var");
    jobs.push(Box::pin(async move {
        (
            label("var/log"),
            copy_tree(docker, node, "/var/log", &var).await,
        )
    }));
    jobs
}

/// Runs a command on the node with its stdout going to `path`; a failing command keeps what it
/// printed and reports its stderr.
async fn command_to_file(
    docker: &dyn Provider,
    node: &str,
    cmd: &[&str],
    path: &Path,
) -> Result<(), CollectError> {
    mkdir_parent(path).await?;
    let out = match docker.exec_to_file(node, cmd, path).await {
        Ok(out) => out,
        Err(e) => {
            remove_if_empty(path).await;
            return Err(e.into());
        }
    };
    if out.code != 0 {
        remove_if_empty(path).await;
        return Err(CollectError::Command {
            command: cmd.join(" "),
            code: out.code,
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}

/// Copies a directory out of the container through the archive API and unpacks it under
/// `dest` (so `/var/log` lands in `dest/log`). Entries that cannot be unpacked are skipped and
/// reported; the rest is kept.
async fn copy_tree(
    docker: &dyn Provider,
    node: &str,
    source: &str,
    dest: &Path,
) -> Result<(), CollectError> {
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(io_error("create", dest))?;
    let tar_path = dest.join(".copy.tar");
    let mut stream = docker.copy_out(node, source);
    let mut file = tokio::fs::File::create(&tar_path)
        .await
        .map_err(io_error("create", &tar_path))?;
    let mut copied = Ok(());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = file.write_all(&bytes).await {
                    copied = Err(io_error("write", &tar_path)(e));
                    break;
                }
            }
            Err(e) => {
                copied = Err(CollectError::Archive(e));
                break;
            }
        }
    }
    let _ = file.flush().await;
    drop(file);
    // Unpack whatever arrived, even after an error midway.
    let (t, d) = (tar_path.clone(), dest.to_path_buf());
    let unpacked = tokio::task::spawn_blocking(move || unpack(&t, &d))
        .await
        .map_err(CollectError::from)
        .and_then(|r| r);
    let _ = tokio::fs::remove_file(&tar_path).await;
    copied.and(unpacked)
}

fn unpack(tar_path: &Path, dest: &Path) -> Result<(), CollectError> {
    let file = std::fs::File::open(tar_path).map_err(CollectError::Archive)?;
    let mut archive = tar::Archive::new(file);
    let mut failed = Vec::new();
    for entry in archive.entries().map_err(CollectError::Archive)? {
        let mut entry = match entry {
            Ok(e) => e,
            // A truncated archive: keep what came before.
            Err(e) => {
                failed.push(format!("archive ends early: {e}"));
                break;
            }
        };
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if let Err(e) = entry.unpack_in(dest) {
            failed.push(format!("{name}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CollectError::NotCopied(failed))
    }
}

/// An empty file next to an error in errors.txt only suggests the command printed nothing.
async fn remove_if_empty(path: &Path) {
    if matches!(tokio::fs::metadata(path).await, Ok(m) if m.len() == 0) {
        let _ = tokio::fs::remove_file(path).await;
    }
}

async fn mkdir_parent(path: &Path) -> Result<(), CollectError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_error("create", parent))?;
    }
    Ok(())
}

async fn write(path: &Path, bytes: &[u8]) -> Result<(), CollectError> {
    mkdir_parent(path).await?;
    tokio::fs::write(path, bytes)
        .await
        .map_err(io_error("write", path))
}

async fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), CollectError> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    write(path, text.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_dir_is_per_cluster_under_the_variable() {
        assert_eq!(
            artifacts_dir("dev", Some("/ci/artifacts")),
            Some(PathBuf::from("/ci/artifacts/kindred-logs-dev"))
        );
        assert_eq!(artifacts_dir("dev", Some("")), None);
        assert_eq!(artifacts_dir("dev", None), None);
    }

    #[test]
    fn unpacking_keeps_what_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("t.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "log/pods/a/0.log", &b"hello"[..])
            .unwrap();
        builder.finish().unwrap();
        drop(builder);
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        unpack(&tar_path, &dest).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("log/pods/a/0.log")).unwrap(),
            "hello"
        );
        // Truncated: the error says so; nothing panics.
        let bytes = std::fs::read(&tar_path).unwrap();
        std::fs::write(&tar_path, &bytes[..600]).unwrap();
        let err = unpack(&tar_path, &dir.path().join("out2")).unwrap_err();
        assert!(err.to_string().contains("not copied"), "{err}");
    }

    #[test]
    fn without_artifacts_the_dir_is_a_fresh_temporary_one() {
        let dir = logs_dir("unit", None).unwrap();
        assert!(dir.is_dir());
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kindred-logs-unit-"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
