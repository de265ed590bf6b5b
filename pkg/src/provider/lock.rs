//! The lock that serializes kindred processes working on the shared Docker network: creating
//! it, picking fixed addresses, reserving a cluster name and creating containers all happen
//! under it (see `cluster::create`).
//!
//! It lives in the user's own directories, not in world-writable /tmp where another user could
//! create the file first and hold it: `$XDG_RUNTIME_DIR/kindred/`, else `<cache dir>/locks/`
//! (`$KINDRED_CACHE_DIR` or `~/.cache/kindred`). The holder writes its pid and command line
//! into the file, so a waiting process can say what it waits for. Waiting polls a non-blocking
//! flock instead of blocking a thread in flock(2), so a waiter stays interruptible: dropping
//! the future (Ctrl-C, SIGTERM) ends the wait at once.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ProviderError;
use crate::kubeconfig::FileLock;

/// How often a waiter retries a held lock.
const POLL: Duration = Duration::from_millis(200);

/// Where the network locks live: `$XDG_RUNTIME_DIR/kindred`, else `<cache dir>/locks`.
pub fn lock_dir() -> PathBuf {
    lock_dir_from(
        std::env::var_os("XDG_RUNTIME_DIR"),
        crate::cache::cache_dir(),
    )
}

fn lock_dir_from(runtime_dir: Option<OsString>, cache_dir: PathBuf) -> PathBuf {
    match runtime_dir.filter(|d| !d.is_empty() && Path::new(d).is_absolute()) {
        Some(dir) => PathBuf::from(dir).join("kindred"),
        None => cache_dir.join("locks"),
    }
}

/// What a holder writes into the lock file: its pid, then its command line.
fn holder_text() -> String {
    let mut args = std::env::args();
    // The program's file name, not the path it was started by: shorter, and what people type.
    let program = args
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(a)
        })
        .unwrap_or_else(|| "kindred".into());
    let command: Vec<String> = std::iter::once(program).chain(args).collect();
    format!("{}\n{}\n", std::process::id(), command.join(" "))
}

/// `pid N (command)` from a lock file's content; `None` if the holder has not written it yet.
fn describe_holder(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    match lines.next().map(str::trim).filter(|c| !c.is_empty()) {
        Some(command) => Some(format!("pid {pid} ({command})")),
        None => Some(format!("pid {pid}")),
    }
}

/// The line shown while waiting for a lock held by `holder` (see [`describe_holder`]).
fn waiting_message(path: &Path, holder: Option<&str>) -> String {
    let who = holder.unwrap_or("another kindred process");
    format!(
        "waiting for the lock held by {who}: {} (it is released once that command has created \
         its containers or ended; Ctrl-C stops waiting)",
        path.display()
    )
}

/// Takes the lock `<dir>/<file_name>.lock`, polling while another process holds it and calling
/// `on_wait` with a message naming the holder (again whenever the holder changes).
pub(crate) async fn acquire(
    dir: &Path,
    file_name: &str,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<FileLock, ProviderError> {
    let io_error = |source| ProviderError::Lock {
        path: dir.join(format!("{file_name}.lock")).display().to_string(),
        source,
    };
    create_private_dir(dir).map_err(io_error)?;
    let base = dir.join(file_name);
    let mut announced: Option<Option<String>> = None;
    loop {
        if let Some(lock) = FileLock::try_acquire(&base).map_err(io_error)? {
            lock.write_holder(&holder_text()).map_err(io_error)?;
            return Ok(lock);
        }
        let path = dir.join(format!("{file_name}.lock"));
        let holder = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| describe_holder(&t));
        if announced.as_ref() != Some(&holder) {
            on_wait(&waiting_message(&path, holder.as_deref()));
            announced = Some(holder);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Takes the lock only if it is free right now.
pub(crate) fn try_acquire(dir: &Path, file_name: &str) -> Result<Option<FileLock>, ProviderError> {
    let io_error = |source| ProviderError::Lock {
        path: dir.join(format!("{file_name}.lock")).display().to_string(),
        source,
    };
    create_private_dir(dir).map_err(io_error)?;
    let lock = FileLock::try_acquire(&dir.join(file_name)).map_err(io_error)?;
    if let Some(lock) = &lock {
        lock.write_holder(&holder_text()).map_err(io_error)?;
    }
    Ok(lock)
}

/// The lock directory, readable by its owner only (the runtime dir is private already; the
/// cache dir may not be).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Serializes network creation, name reservation, address picking and container creation
/// among kindred processes of this user: Docker 20.10 happily creates two networks with one
/// name, two creates must not pick the same addresses, and of two creates of one cluster name
/// exactly one may win. `on_wait` is told who holds the lock while it waits.
pub(crate) async fn lock_network(
    name: &str,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<FileLock, ProviderError> {
    acquire(&lock_dir(), &format!("network-{name}"), on_wait).await
}

/// The network lock if it is free now; `None` while another process works on the network.
pub(crate) fn try_lock_network(name: &str) -> Result<Option<FileLock>, ProviderError> {
    try_acquire(&lock_dir(), &format!("network-{name}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn the_lock_is_in_the_users_runtime_dir_else_the_cache_dir_never_tmp() {
        let cache = PathBuf::from("/home/u/.cache/kindred");
        assert_eq!(
            lock_dir_from(Some("/run/user/1000".into()), cache.clone()),
            PathBuf::from("/run/user/1000/kindred")
        );
        assert_eq!(lock_dir_from(None, cache.clone()), cache.join("locks"));
        // An empty or relative $XDG_RUNTIME_DIR is invalid per the XDG spec: ignored.
        assert_eq!(
            lock_dir_from(Some("".into()), cache.clone()),
            cache.join("locks")
        );
        assert_eq!(
            lock_dir_from(Some("rel".into()), cache.clone()),
            cache.join("locks")
        );
    }

    #[test]
    fn the_holder_is_described_by_pid_and_command() {
        assert_eq!(
            describe_holder("4242\nkindred create cluster --name y\n").as_deref(),
            Some("pid 4242 (kindred create cluster --name y)")
        );
        assert_eq!(describe_holder("4242\n").as_deref(), Some("pid 4242"));
        assert_eq!(describe_holder(""), None);
        let text = holder_text();
        let (pid, command) = text.split_once('\n').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(!command.trim().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_names_the_holder_and_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = FileLock::try_acquire(&dir.path().join("network-t"))
            .unwrap()
            .unwrap();
        held.write_holder("4242\nkindred create cluster --name y\n")
            .unwrap();
        let seen = Mutex::new(Vec::<String>::new());
        let on_wait = |m: &str| seen.lock().unwrap().push(m.to_string());
        let waiter = acquire(dir.path(), "network-t", &on_wait);
        tokio::pin!(waiter);
        // Still held after a few polls: the waiter waits and has said for whom.
        assert!(
            tokio::time::timeout(Duration::from_millis(700), &mut waiter)
                .await
                .is_err()
        );
        drop(held);
        let lock = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the lock was released")
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].starts_with(
                "waiting for the lock held by pid 4242 (kindred create cluster --name y)"
            ),
            "{}",
            seen[0]
        );
        // The new holder wrote itself in.
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            text.starts_with(&format!("{}\n", std::process::id())),
            "{text}"
        );
    }

    #[tokio::test]
    async fn waiting_is_interruptible() {
        let dir = tempfile::tempdir().unwrap();
        let _held = FileLock::try_acquire(&dir.path().join("network-t"))
            .unwrap()
            .unwrap();
        // Dropping the waiting future ends the wait: no thread stays blocked in flock(2).
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            acquire(dir.path(), "network-t", &|_| {}),
        )
        .await;
        assert!(waited.is_err());
        assert!(try_acquire(dir.path(), "network-t").unwrap().is_none());
    }
}
