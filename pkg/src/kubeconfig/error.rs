//! What can go wrong with a kubeconfig, naming the file and saying whether it was touched.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("cannot read kubeconfig {}: {source}", file.display())]
    Read { file: PathBuf, source: io::Error },
    /// The file exists but kubectl could not load it either; `reason` says why (YAML errors
    /// carry "line N column M").
    #[error(
        "{} is not a kubeconfig: {reason}; kindred did not change it",
        file.display()
    )]
    NotAKubeconfig { file: PathBuf, reason: String },
    /// Writes go to a temporary file that is renamed over the kubeconfig last, so a failed
    /// write leaves the old file in place.
    #[error(
        "cannot write kubeconfig {}: {source}; the file was left as it was",
        file.display()
    )]
    Write { file: PathBuf, source: io::Error },
    #[error("cannot lock kubeconfig {} (via {}): {source}", file.display(), lock_file.display())]
    Lock {
        file: PathBuf,
        lock_file: PathBuf,
        source: io::Error,
    },
    /// kubeadm's admin.conf did not have the shape kubeadm writes (one cluster, one user, with
    /// inline certificate data).
    #[error("cannot use kubeadm's admin.conf: {reason}")]
    AdminConf { reason: String },
}
