//! What one `create cluster` invocation owns, so that its cleanup (after a failure, Ctrl-C or
//! SIGTERM) removes only what it made: never another invocation's cluster of the same name,
//! nor a cluster that existed before.
//!
//! Each invocation draws a random token and labels every container and volume it creates
//! with it ([`TOKEN_LABEL`], next to the cluster label). The cluster name is reserved under the
//! network lock: the check that it is free and the creation of the containers happen while
//! holding it, so of two creates of one name exactly one gets containers and the other is told
//! the name is taken. Cleanup then removes what carries the token, the kubeconfig entry only
//! if this invocation wrote it, the local registry only if this invocation made it and no
//! cluster uses it, and the shared network only if it is unused and no other kindred process
//! is working on it. Every removal is tried even after one fails; what could not be removed is
//! reported with the command that removes it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use super::{registry as local_registry, ClusterError, CLUSTER_LABEL, NETWORK};
use crate::kubeconfig;
use crate::provider::Provider;
use crate::registry;

/// Label carrying the token of the `create cluster` invocation that made a container or volume.
pub const TOKEN_LABEL: &str = "io.kindred.create-token";

/// Cleanup passes at most after an interruption (see [`Ownership::clean_up`]).
const SETTLE_PASSES: usize = 6;

/// One `create cluster` invocation: its token and what it has done that cleanup must undo.
#[derive(Debug)]
pub struct Ownership {
    token: String,
    cluster: String,
    kubeconfig: PathBuf,
    wrote_kubeconfig: AtomicBool,
}

/// What [`Ownership::clean_up`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanedUp {
    pub containers: Vec<String>,
    pub volumes: usize,
    pub kubeconfig_entry: bool,
    pub registry: bool,
}

/// Something cleanup could not remove, and why.
#[derive(Debug)]
pub struct Leftover {
    /// What it is, e.g. `container dev-worker`.
    pub what: String,
    /// The command that removes it by hand.
    pub fix: String,
    pub cause: String,
}

/// Cleanup tried everything and some objects are still there.
#[derive(Debug, thiserror::Error)]
#[error(
    "cleanup could not remove {}:\n{}",
    .leftovers.len(),
    .leftovers.iter().map(|l| format!("  {}: {} (remove it with `{}`)", l.what, l.cause, l.fix)).collect::<Vec<_>>().join("\n")
)]
pub struct CleanupError {
    pub leftovers: Vec<Leftover>,
    /// What was removed nonetheless.
    pub removed: CleanedUp,
}

impl Ownership {
    /// A new invocation creating `cluster`, whose kubeconfig entry goes to `kubeconfig`.
    pub fn new(cluster: &str, kubeconfig: &Path) -> Result<Ownership, ClusterError> {
        Ok(Ownership {
            token: crate::random::hex(8)?,
            cluster: cluster.to_string(),
            kubeconfig: kubeconfig.to_path_buf(),
            wrote_kubeconfig: AtomicBool::new(false),
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The label filter matching this invocation's objects (`key=value`).
    pub fn filter(&self) -> String {
        format!("{TOKEN_LABEL}={}", self.token)
    }

    /// The labels every container and volume of this invocation carries.
    pub(super) fn labels(&self) -> [(String, String); 2] {
        [
            (CLUSTER_LABEL.to_string(), self.cluster.clone()),
            (TOKEN_LABEL.to_string(), self.token.clone()),
        ]
    }

    /// Records that this invocation wrote the cluster's kubeconfig entry (cleanup removes it).
    pub(super) fn wrote_kubeconfig(&self) {
        self.wrote_kubeconfig.store(true, Ordering::SeqCst);
    }

    /// Removes everything this invocation made. With `settle`, more passes follow, a second
    /// apart: after an interruption a container creation already sent to Docker may complete
    /// after a pass (late, on a busy daemon). Passes go on until two in a row find nothing
    /// left, at most [`SETTLE_PASSES`]; the last pass's failures count.
    pub async fn clean_up(
        &self,
        docker: &dyn Provider,
        settle: bool,
    ) -> Result<CleanedUp, CleanupError> {
        let mut done = CleanedUp::default();
        let mut leftovers = Vec::new();
        self.remove_containers_and_volumes(docker, &mut done, &mut leftovers)
            .await;
        let passes = if settle { SETTLE_PASSES } else { 1 };
        let mut quiet_before = false;
        for _ in 1..passes {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let removed = done.containers.len() + done.volumes;
            leftovers.clear();
            self.remove_containers_and_volumes(docker, &mut done, &mut leftovers)
                .await;
            let quiet = leftovers.is_empty() && done.containers.len() + done.volumes == removed;
            if quiet && quiet_before {
                break;
            }
            quiet_before = quiet;
        }
        match self.remove_registry_if_made_and_unused(docker).await {
            Ok(removed) => done.registry = removed,
            Err(e) => leftovers.push(Leftover {
                what: format!("the registry {}", registry::CONTAINER),
                fix: "kindred delete registry".into(),
                cause: e.to_string(),
            }),
        }
        self.remove_own_kubeconfig_entry(&mut done, &mut leftovers);
        if let Err(e) = remove_network_if_idle(docker).await {
            leftovers.push(Leftover {
                what: format!("the network {NETWORK}"),
                fix: format!("docker network rm {NETWORK}"),
                cause: e.to_string(),
            });
        }
        if leftovers.is_empty() {
            Ok(done)
        } else {
            Err(CleanupError {
                leftovers,
                removed: done,
            })
        }
    }

    /// Waits up to `limit` for Docker to answer, so that a create that failed because the
    /// daemon went away (a restart, an upgrade) can still remove what it made once the daemon
    /// is back, instead of leaving it for the user. Says on `step` that it waits. True if
    /// Docker answers.
    pub async fn wait_for_provider(
        docker: &dyn Provider,
        limit: Duration,
        step: &crate::ui::Step,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut said = false;
        loop {
            match docker.info_json().await {
                Ok(_) => return true,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    tracing::debug!("Docker still does not answer: {e}");
                    return false;
                }
                Err(e) => {
                    if !said {
                        tracing::debug!("Docker does not answer: {e}");
                        step.note(format!(
                            "Docker does not answer; waiting up to {}s for it to come back \
                             to clean up (Ctrl-C stops waiting)",
                            limit.as_secs()
                        ));
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The cluster's kubeconfig entry, if this invocation wrote it: an entry that was there
    /// before belongs to a cluster this invocation did not make.
    fn remove_own_kubeconfig_entry(&self, done: &mut CleanedUp, leftovers: &mut Vec<Leftover>) {
        if !self.wrote_kubeconfig.load(Ordering::SeqCst) {
            return;
        }
        let context = kubeconfig::context_name(&self.cluster);
        match kubeconfig::remove(&self.kubeconfig, &self.cluster) {
            Ok(removed) => done.kubeconfig_entry = removed,
            Err(e) => leftovers.push(Leftover {
                what: format!(
                    "the kubeconfig entry {context} in {}",
                    self.kubeconfig.display()
                ),
                fix: format!(
                    "kubectl config --kubeconfig {} delete-context {context}",
                    self.kubeconfig.display()
                ),
                cause: e.to_string(),
            }),
        }
    }

    /// One pass over the containers, then the volumes, carrying the token (the registry's
    /// excepted: it may serve other clusters by now).
    async fn remove_containers_and_volumes(
        &self,
        docker: &dyn Provider,
        done: &mut CleanedUp,
        leftovers: &mut Vec<Leftover>,
    ) {
        match docker.list_by_labels(&[self.filter()]).await {
            Ok(containers) => {
                let names: Vec<String> = containers
                    .into_iter()
                    .map(|c| c.name)
                    .filter(|n| n != registry::CONTAINER)
                    .collect();
                let results = join_all(names.iter().map(|n| docker.remove_container(n))).await;
                for (name, result) in names.into_iter().zip(results) {
                    match result {
                        Ok(()) => done.containers.push(name),
                        Err(e) => leftovers.push(Leftover {
                            fix: format!("docker rm -f -v {name}"),
                            what: format!("container {name}"),
                            cause: e.to_string(),
                        }),
                    }
                }
            }
            Err(e) => leftovers.push(Leftover {
                what: format!("the containers labelled {}", self.filter()),
                fix: format!(
                    "docker rm -f -v $(docker ps -aq --filter label={})",
                    self.filter()
                ),
                cause: e.to_string(),
            }),
        }
        match docker.volumes_labelled(&self.filter()).await {
            Ok(volumes) => {
                let volumes: Vec<String> = volumes
                    .into_iter()
                    .filter(|v| v != registry::VOLUME)
                    .collect();
                let results = join_all(volumes.iter().map(|v| docker.remove_volume(v))).await;
                for (volume, result) in volumes.into_iter().zip(results) {
                    match result {
                        Ok(()) => done.volumes += 1,
                        Err(e) => leftovers.push(Leftover {
                            fix: format!("docker volume rm {volume}"),
                            what: format!("volume {volume}"),
                            cause: e.to_string(),
                        }),
                    }
                }
            }
            Err(e) => leftovers.push(Leftover {
                what: format!("the volumes labelled {}", self.filter()),
                fix: format!(
                    "docker volume rm $(docker volume ls -q --filter label={})",
                    self.filter()
                ),
                cause: e.to_string(),
            }),
        }
    }

    /// The registry goes only if this invocation created it and no cluster uses it; under the
    /// network lock, so a create about to use it keeps it.
    async fn remove_registry_if_made_and_unused(
        &self,
        docker: &dyn Provider,
    ) -> Result<bool, ClusterError> {
        let made = docker
            .list_by_labels(&[self.filter(), registry::LABEL.to_string()])
            .await?
            .iter()
            .any(|c| c.name == registry::CONTAINER);
        if !made {
            return Ok(false);
        }
        let _lock = crate::provider::lock_network(NETWORK, &super::say_waiting).await?;
        if !local_registry::users(docker).await?.is_empty() {
            return Ok(false);
        }
        docker.remove_container(registry::CONTAINER).await?;
        let volume_ours = docker
            .volume_labels(registry::VOLUME)
            .await?
            .is_some_and(|l| l.get(TOKEN_LABEL) == Some(&self.token));
        if volume_ours {
            docker.remove_volume(registry::VOLUME).await?;
        }
        Ok(true)
    }
}

/// Removes the shared network if no container uses it and no other kindred process holds the
/// network lock (one that does may be about to attach containers to it).
pub(super) async fn remove_network_if_idle(docker: &dyn Provider) -> Result<bool, ClusterError> {
    let Some(_lock) = crate::provider::try_lock_network(NETWORK)? else {
        return Ok(false);
    };
    Ok(docker.remove_network_if_unused(NETWORK).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fake::FakeProvider;

    #[tokio::test(start_paused = true)]
    async fn cleanup_waits_for_a_restarting_daemon_but_not_forever() {
        let ui = crate::ui::Ui::quiet();
        let step = ui.step("t");
        let back = FakeProvider::default().down_for(3);
        assert!(Ownership::wait_for_provider(&back, Duration::from_secs(30), &step).await);
        let gone = FakeProvider::default().down_for(usize::MAX);
        let started = tokio::time::Instant::now();
        assert!(!Ownership::wait_for_provider(&gone, Duration::from_secs(30), &step).await);
        assert!(started.elapsed() >= Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(32));
    }

    #[test]
    fn every_invocation_has_its_own_token_and_labels() {
        let a = Ownership::new("dev", Path::new("/k")).unwrap();
        let b = Ownership::new("dev", Path::new("/k")).unwrap();
        assert_ne!(a.token(), b.token());
        assert_eq!(a.token().len(), 16);
        assert_eq!(a.filter(), format!("io.kindred.create-token={}", a.token()));
        assert_eq!(
            a.labels(),
            [
                ("io.kindred.cluster".to_string(), "dev".to_string()),
                (TOKEN_LABEL.to_string(), a.token().to_string()),
            ]
        );
    }

    #[test]
    fn the_kubeconfig_entry_is_removed_only_if_this_invocation_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let entry = kubeconfig::Entry {
            cluster_name: "dev".into(),
            server: "https://127.0.0.1:6443".into(),
            certificate_authority_data: "Y2E=".into(),
            client_certificate_data: "Y2VydA==".into(),
            client_key_data: "a2V5".into(),
        };
        kubeconfig::merge(&path, &entry).unwrap();
        let has_entry = || {
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("kindred-dev")
        };
        let owner = Ownership::new("dev", &path).unwrap();
        let (mut done, mut leftovers) = (CleanedUp::default(), Vec::new());
        // Another invocation's (or an existing cluster's) entry stays.
        owner.remove_own_kubeconfig_entry(&mut done, &mut leftovers);
        assert!(has_entry() && !done.kubeconfig_entry && leftovers.is_empty());
        owner.wrote_kubeconfig();
        owner.remove_own_kubeconfig_entry(&mut done, &mut leftovers);
        assert!(!has_entry() && done.kubeconfig_entry && leftovers.is_empty());
    }

    #[test]
    fn a_cleanup_error_lists_every_leftover_with_its_fix() {
        let e = CleanupError {
            leftovers: vec![
                Leftover {
                    what: "container dev-worker".into(),
                    fix: "docker rm -f -v dev-worker".into(),
                    cause: "device busy".into(),
                },
                Leftover {
                    what: "volume abc".into(),
                    fix: "docker volume rm abc".into(),
                    cause: "in use".into(),
                },
            ],
            removed: CleanedUp::default(),
        };
        let text = e.to_string();
        assert!(text.starts_with("cleanup could not remove 2:"), "{text}");
        assert!(
            text.contains(
                "container dev-worker: device busy (remove it with `docker rm -f -v dev-worker`)"
            ),
            "{text}"
        );
        assert!(text.contains("volume abc: in use (remove it with `docker volume rm abc`)"));
    }
}
