//! The CI image's entrypoint (`kindred ci-entrypoint -- COMMAND...`): a CI job's container
//! gets a Docker daemon of its own, runs the job, and always leaves nothing behind.
//!
//! Steps, in order:
//! 1. Adapt the container for a nested daemon ([`prepare`]): writable /sys and cgroups, the
//!    iptables backend that works here, the outer network's MTU.
//! 2. Start dockerd and wait until it answers.
//! 3. Load every image archive in [`IMAGES_DIR`] (how a job gets node images without a
//!    registry).
//! 4. Run the command. SIGTERM or SIGINT (the pod being deleted, the job cancelled) is passed
//!    on to it, so `kindred create` deletes what it had half created.
//! 5. Clean up whatever happened: delete every cluster and the local registry, copy the
//!    daemon's log to `$KINDRED_ARTIFACTS` if set, stop dockerd. Exit with the command's status.

pub mod prepare;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::cluster;
use crate::provider::{Docker, Provider};
use crate::ui::Ui;

/// Archives (`docker save` output) in this directory are loaded into the daemon at start.
pub const IMAGES_DIR: &str = "/kindred/images";
/// Where dockerd's output goes.
pub const DOCKERD_LOG: &str = "/var/log/dockerd.log";
/// Extra flags for the nested dockerd (whitespace-separated), e.g. `--registry-mirror=...`.
pub const DOCKERD_ARGS_ENV: &str = "KINDRED_CI_DOCKERD_ARGS";
/// How long the command gets to finish after it was passed a signal.
const COMMAND_GRACE: Duration = Duration::from_secs(30);
/// How long dockerd gets to start, and to stop.
const DOCKERD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CiError {
    #[error("no command given: the CI image runs the job's command, e.g. `kindred create cluster --wait 5m && ...` (as the container's arguments)")]
    NoCommand,
    #[error("cannot start dockerd: {0}")]
    StartDockerd(String),
    #[error("dockerd did not answer within {secs}s; its last lines ({log}):\n{tail}")]
    DockerdTimeout {
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("cannot run {command}: {source}")]
    Command {
        command: String,
        source: std::io::Error,
    },
    #[error("loading {path}: {reason}")]
    Load { path: String, reason: String },
}

/// Runs the whole entrypoint and returns the exit status for the container.
pub async fn run(command: &[String], ui: &Ui) -> Result<i32, CiError> {
    let Some((program, args)) = command.split_first() else {
        return Err(CiError::NoCommand);
    };
    let prepared = prepare::prepare();
    for note in &prepared.notes {
        ui.info(format!("ci: {note}"));
    }
    for warning in &prepared.warnings {
        ui.warn(format!("ci: {warning}"));
    }

    let mut dockerd_args = prepared.dockerd_args;
    if let Ok(extra) = std::env::var(DOCKERD_ARGS_ENV) {
        dockerd_args.extend(extra.split_whitespace().map(String::from));
    }
    let mut dockerd = start_dockerd(&dockerd_args)?;
    let outcome = run_job(&mut dockerd, program, args, ui).await;
    cleanup(&mut dockerd, ui).await;
    outcome
}

/// Steps 2-4; the caller cleans up whatever the result.
async fn run_job(
    dockerd: &mut Child,
    program: &str,
    args: &[String],
    ui: &Ui,
) -> Result<i32, CiError> {
    let step = ui.step("Starting the nested Docker daemon");
    let docker = wait_for_dockerd(dockerd).await?;
    let version = docker
        .client()
        .version()
        .await
        .ok()
        .and_then(|v| v.version)
        .unwrap_or_default();
    step.done_with(format!("Docker {version}, log in {DOCKERD_LOG}"));
    load_archives(&docker, Path::new(IMAGES_DIR), ui).await?;

    ui.info(format!("ci: running {program} {}", args.join(" ")));
    // Its own process group, so a signal reaches every process of the job: a shell script
    // passes nothing on to the kindred it runs.
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| CiError::Command {
            command: program.to_string(),
            source,
        })?;
    let status = wait_passing_signals(&mut child, ui).await;
    let code = match status {
        Some(s) => exit_code(s),
        None => 128 + Signal::SIGKILL as i32,
    };
    ui.info(format!("ci: {program} exited with status {code}"));
    Ok(code)
}

/// 128 + the signal for a command killed by one, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn start_dockerd(extra: &[String]) -> Result<Child, CiError> {
    let log = std::fs::File::create(DOCKERD_LOG)
        .map_err(|e| CiError::StartDockerd(format!("{DOCKERD_LOG}: {e}")))?;
    let err = log
        .try_clone()
        .map_err(|e| CiError::StartDockerd(e.to_string()))?;
    Command::new("dockerd")
        .arg("--host=unix:///var/run/docker.sock")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| CiError::StartDockerd(e.to_string()))
}

fn log_tail(lines: usize) -> String {
    let text = std::fs::read_to_string(DOCKERD_LOG).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn wait_for_dockerd(dockerd: &mut Child) -> Result<Docker, CiError> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = dockerd.try_wait() {
            return Err(CiError::StartDockerd(format!(
                "it exited ({status}); its last lines:\n{}",
                log_tail(20)
            )));
        }
        if let Ok(docker) = Docker::connect().await {
            return Ok(docker);
        }
        if started.elapsed() > DOCKERD_TIMEOUT {
            return Err(CiError::DockerdTimeout {
                secs: DOCKERD_TIMEOUT.as_secs(),
                log: DOCKERD_LOG.into(),
                tail: log_tail(20),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Archives in `dir`, in name order (`*.tar`, `*.tar.gz`, ...).
fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".tar"))
        })
        .collect();
    found.sort();
    found
}

async fn load_archives(docker: &Docker, dir: &Path, ui: &Ui) -> Result<(), CiError> {
    for archive in archives(dir) {
        let step = ui.step(format!("Loading {}", archive.display()));
        docker
            .load_archive(&archive)
            .await
            .map_err(|e| CiError::Load {
                path: archive.display().to_string(),
                reason: e.to_string(),
            })?;
        step.done();
    }
    Ok(())
}

/// Waits for the command; the first SIGTERM/SIGINT is passed on to its process group, which
/// then gets [`COMMAND_GRACE`] to finish (every process of it, not just the first: a script's
/// `kindred create` deletes its cluster after the shell has gone). After that, or on a second
/// signal, the group is killed. `None` when it had to be killed.
async fn wait_passing_signals(child: &mut Child, ui: &Ui) -> Option<std::process::ExitStatus> {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return child.wait().await.ok();
    };
    let received = tokio::select! {
        status = child.wait() => return status.ok(),
        _ = term.recv() => Signal::SIGTERM,
        _ = int.recv() => Signal::SIGINT,
    };
    ui.info(format!(
        "ci: {received} received: passing it on, then cleaning up (the command gets {}s)",
        COMMAND_GRACE.as_secs()
    ));
    let group = child.id().map(|pid| Pid::from_raw(-(pid as i32)));
    if let Some(group) = group {
        let _ = nix::sys::signal::kill(group, received);
    }
    let finished = async {
        let status = child.wait().await.ok();
        // The rest of the group: tini reaps them once they exit.
        while let Some(group) = group {
            if nix::sys::signal::kill(group, None).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        status
    };
    let waited = tokio::select! {
        status = finished => status,
        _ = tokio::time::sleep(COMMAND_GRACE) => None,
        _ = term.recv() => None,
        _ = int.recv() => None,
    };
    if waited.is_none() {
        ui.warn("ci: the command did not stop in time; killing it");
        if let Some(group) = group {
            let _ = nix::sys::signal::kill(group, Signal::SIGKILL);
        }
        let _ = child.kill().await;
    }
    waited
}

/// Deletes every cluster and the registry, keeps dockerd's log, stops dockerd. Best effort:
/// each failure is reported and the rest still runs.
async fn cleanup(dockerd: &mut Child, ui: &Ui) {
    if let Ok(docker) = Docker::connect().await {
        let kubeconfig = crate::kubeconfig::target_path(None);
        match cluster::clusters(&docker).await {
            Ok(names) => {
                for name in names {
                    let step = ui.step(format!("ci: deleting cluster {name}"));
                    match cluster::delete(&docker, &name, &kubeconfig).await {
                        Ok(_) => step.done(),
                        Err(e) => {
                            step.fail();
                            ui.warn(format!("ci: cannot delete cluster {name}: {e}"));
                        }
                    }
                }
            }
            Err(e) => ui.warn(format!("ci: cannot list clusters: {e}")),
        }
        if let Err(e) = cluster::delete_registry(&docker).await {
            ui.warn(format!("ci: cannot delete the local registry: {e}"));
        }
    }
    if let Some(dir) = std::env::var_os(cluster::ARTIFACTS_ENV) {
        let to = Path::new(&dir).join("dockerd.log");
        if std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(DOCKERD_LOG, &to))
            .is_ok()
        {
            ui.info(format!("ci: dockerd's log copied to {}", to.display()));
        }
    }
    stop_dockerd(dockerd, ui).await;
}

async fn stop_dockerd(dockerd: &mut Child, ui: &Ui) {
    if let Some(pid) = dockerd.id() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(DOCKERD_TIMEOUT, dockerd.wait())
        .await
        .is_err()
    {
        ui.warn("ci: dockerd did not stop in time; killing it");
        let _ = dockerd.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_archives_are_loaded_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.tar", "a.tar.gz", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.tar")).unwrap();
        let names: Vec<String> = archives(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.tar.gz", "b.tar"]);
        assert!(archives(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn signals_become_shell_style_exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(15)), 143);
    }
}
