//! `kindred kubectl`: the kubectl that matches a cluster, for hosts without one. Node images
//! carry `/usr/bin/kubectl`; it is copied out of the cluster's control plane once per
//! Kubernetes version into the cache, with a kubeconfig for just that cluster beside it.

use std::path::{Path, PathBuf};

use super::{control_plane, kubeconfig_entry, ClusterError};
use crate::provider::Provider;

/// What to run: the kubectl binary and a kubeconfig whose current context is the cluster.
#[derive(Debug)]
pub struct ClusterKubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
}

/// Finds (or copies out) the cluster's kubectl and writes the cluster's kubeconfig under
/// `cache`. Works on a stopped cluster too: files are read through Docker's archive API.
pub async fn cluster_kubectl(
    docker: &dyn Provider,
    cluster: &str,
    cache: &Path,
) -> Result<ClusterKubectl, ClusterError> {
    let node = control_plane(docker, cluster).await?;
    let version = docker.read_container_file(&node, "/kind/version").await?;
    let version = String::from_utf8_lossy(&version).trim().to_string();
    let dir = cache.join("kubectl").join(&version);
    let binary = dir.join("kubectl");
    if !binary.exists() {
        let bytes = docker
            .read_container_file(&node, "/usr/bin/kubectl")
            .await
            .map_err(|source| ClusterError::NoKubectlInImage {
                cluster: cluster.to_string(),
                version: version.clone(),
                source: Box::new(source),
            })?;
        install_executable(&binary, &bytes).map_err(|source| ClusterError::Io {
            action: "write",
            path: binary.clone(),
            source,
        })?;
    }
    // Rewritten each time: the API port is fixed per cluster, but a cluster of the same
    // name may have been recreated since.
    let kubeconfig = cache.join("kubectl").join(format!("kubeconfig-{cluster}"));
    let _ = std::fs::remove_file(&kubeconfig);
    let entry = kubeconfig_entry(docker, cluster, false).await?;
    crate::kubeconfig::merge(&kubeconfig, &entry)?;
    Ok(ClusterKubectl { binary, kubeconfig })
}

/// Writes beside the target and renames into place, so a concurrent run never executes half
/// a binary.
fn install_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("a path inside the cache");
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_installed_whole_and_runnable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.34.12/kubectl");
        install_executable(&path, b"#!/bin/sh\necho hi\n").unwrap();
        let out = std::process::Command::new(&path).output().unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
