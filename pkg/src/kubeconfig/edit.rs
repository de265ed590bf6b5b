//! Editing the kubeconfig file: lock, read, change, write back atomically.

use std::fs;
use std::io;
use std::path::Path;

use super::atomic_write::write_atomically;
use super::document::Document;
use super::entry::{context_name, Entry};
use super::error::KubeconfigError;
use super::file_lock::{lock_path, FileLock};

/// Adds (or replaces) `entry`'s cluster, user and context in the kubeconfig at `path` and makes
/// it the current context. Creates the file and its directory if missing; every other entry
/// and field is kept.
pub fn merge(path: &Path, entry: &Entry) -> Result<(), KubeconfigError> {
    if let Some(dir) = parent(path) {
        fs::create_dir_all(dir).map_err(|source| KubeconfigError::Write {
            file: path.to_path_buf(),
            source,
        })?;
    }
    let _lock = lock(path)?;
    let mut document = read(path)?.unwrap_or_else(Document::empty);
    document.upsert(entry);
    write(path, &document)
}

/// Removes kindred cluster `cluster`'s cluster, user and context from the kubeconfig at
/// `path`, and unsets `current-context` if it pointed there. Returns whether the file changed;
/// a missing file is left missing.
pub fn remove(path: &Path, cluster: &str) -> Result<bool, KubeconfigError> {
    // Checked before locking so that no lock file appears in a directory kindred never used.
    if !path.exists() {
        return Ok(false);
    }
    let _lock = lock(path)?;
    let Some(mut document) = read(path)? else {
        return Ok(false);
    };
    if !document.remove(&context_name(cluster)) {
        return Ok(false);
    }
    write(path, &document)?;
    Ok(true)
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|dir| !dir.as_os_str().is_empty())
}

fn lock(path: &Path) -> Result<FileLock, KubeconfigError> {
    FileLock::acquire(path).map_err(|source| KubeconfigError::Lock {
        file: path.to_path_buf(),
        lock_file: lock_path(path),
        source,
    })
}

/// The kubeconfig at `path`, or None if there is no such file.
fn read(path: &Path) -> Result<Option<Document>, KubeconfigError> {
    match fs::read_to_string(path) {
        Ok(text) => Document::parse(&text, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(KubeconfigError::NotAKubeconfig {
            file: path.to_path_buf(),
            reason: "it is not UTF-8 text".into(),
        }),
        Err(source) => Err(KubeconfigError::Read {
            file: path.to_path_buf(),
            source,
        }),
    }
}

fn write(path: &Path, document: &Document) -> Result<(), KubeconfigError> {
    write_atomically(path, document.to_yaml().as_bytes()).map_err(|source| KubeconfigError::Write {
        file: path.to_path_buf(),
        source,
    })
}
