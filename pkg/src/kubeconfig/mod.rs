//! The user's kubeconfig: adding a cluster's credentials to it and taking them out again, the
//! way kind does, so `kubectl` works right after `kindred create cluster`.
//!
//! A command picks the file with `target_path`, builds an `Entry` from the node's kubeadm
//! `admin.conf` with `from_admin_conf`, then calls `merge` (create) or `remove` (delete);
//! `render` prints the same entry as a standalone kubeconfig (`kindred get kubeconfig`).
//!
//! The file is edited as loose YAML, so everything kindred does not own (other clusters,
//! preferences, extensions, fields of newer kubectl versions) survives a round trip, and is
//! written back in a YAML that kubectl's (1.1) parser reads the same way. Comments and
//! formatting do not survive: kubectl drops them too when it writes the file.

mod admin_conf;
mod atomic_write;
mod document;
mod edit;
mod entry;
mod error;
mod file_lock;
pub(crate) use file_lock::FileLock;
mod target_path;
mod yaml_text;

#[cfg(test)]
mod edit_tests;

pub use admin_conf::from_admin_conf;
pub use edit::{merge, remove};
pub use entry::{context_name, render, Entry};
pub use error::KubeconfigError;
pub use target_path::{target_path, target_path_from, KUBECONFIG_ENV};
