//! Serializing kubeconfig edits (and, through the same lock type, work on the shared Docker
//! network: `provider::lock`) between kindred processes.
//!
//! kubectl (client-go) locks a kubeconfig by creating `<path>.lock` with O_EXCL and deleting it
//! afterwards; a crash in between leaves a lock that blocks every later writer until someone
//! deletes it by hand. kindred uses the same file name, so kubectl still sees kindred's edits
//! as locked, but takes an flock(2) on it instead: the kernel drops the lock when the process
//! dies, and a leftover file from a crash is simply locked again.
//!
//! kindred deletes the file before unlocking, because kubectl cannot create its lock while the
//! file exists. Deleting a locked file races with a process that opened it just before, so
//! after locking we check that the path still names the file we hold and start over if not.
//! A kubectl lock file is not waited for (kubectl holds it for milliseconds).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive lock on `<base>.lock` (a kubeconfig's, or another file's), held until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    /// Unlocked when dropped, which is after `Drop::drop` has deleted the lock file.
    _flock: Flock<File>,
    lock_path: PathBuf,
}

/// `<kubeconfig>.lock`, the name kubectl uses.
pub(super) fn lock_path(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Blocks until this process holds the kubeconfig's lock. The kubeconfig's directory must
    /// exist.
    pub fn acquire(kubeconfig: &Path) -> io::Result<Self> {
        Self::lock(kubeconfig, FlockArg::LockExclusive)
            .map(|held| held.expect("a blocking lock is always taken"))
    }

    /// Takes the lock if nobody holds it, without waiting: `None` while it is held. Lets a
    /// waiter poll, so that it can say who it waits for and stay interruptible.
    pub fn try_acquire(base: &Path) -> io::Result<Option<Self>> {
        Self::lock(base, FlockArg::LockExclusiveNonblock)
    }

    fn lock(base: &Path, how: FlockArg) -> io::Result<Option<Self>> {
        let lock_path = lock_path(base);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)?;
            let Some(file) = lock_exclusive(file, how)? else {
                return Ok(None);
            };
            let held = file.metadata()?;
            match fs::metadata(&lock_path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(FileLock {
                        _flock: file,
                        lock_path,
                    }))
                }
                // The previous holder deleted the file we locked: lock whatever is there now.
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The lock file's path.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.lock_path
    }

    /// Replaces the lock file's content with `text` (who holds it, for waiters to show).
    pub fn write_holder(&self, text: &str) -> io::Result<()> {
        use std::io::{Seek, Write};
        let mut file: &File = &self._flock;
        file.set_len(0)?;
        file.seek(io::SeekFrom::Start(0))?;
        file.write_all(text.as_bytes())
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Deleted while still locked: a process waiting on this file finds it gone once it gets
        // the lock, and starts over with a fresh one.
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// flock(2) as `how` says; `None` when a non-blocking lock is held by someone else.
fn lock_exclusive(mut file: File, how: FlockArg) -> io::Result<Option<Flock<File>>> {
    loop {
        match Flock::lock(file, how) {
            Ok(locked) => return Ok(Some(locked)),
            Err((back, Errno::EINTR)) => file = back,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn second_holder_waits_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        let first = FileLock::acquire(&kubeconfig).unwrap();

        let acquired = Arc::new(AtomicBool::new(false));
        let waiter = std::thread::spawn({
            let (kubeconfig, acquired) = (kubeconfig.clone(), acquired.clone());
            move || {
                let _second = FileLock::acquire(&kubeconfig).unwrap();
                acquired.store(true, Ordering::SeqCst);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!acquired.load(Ordering::SeqCst), "lock was not exclusive");

        drop(first);
        waiter.join().unwrap();
        assert!(acquired.load(Ordering::SeqCst));
    }

    #[test]
    fn lock_file_is_removed_on_release_so_kubectl_can_lock() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        let lock = FileLock::acquire(&kubeconfig).unwrap();
        assert!(dir.path().join("config.lock").exists());
        drop(lock);
        assert!(!dir.path().join("config.lock").exists());
    }

    #[test]
    fn try_acquire_returns_none_while_held_and_the_holder_text_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("network-kindred");
        let held = FileLock::try_acquire(&base).unwrap().expect("free lock");
        held.write_holder("123\nkindred create cluster\n").unwrap();
        assert!(FileLock::try_acquire(&base).unwrap().is_none());
        assert_eq!(
            fs::read_to_string(held.path()).unwrap(),
            "123\nkindred create cluster\n"
        );
        drop(held);
        assert!(FileLock::try_acquire(&base).unwrap().is_some());
    }

    #[test]
    fn leftover_lock_file_from_a_crash_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        fs::write(dir.path().join("config.lock"), "").unwrap();
        drop(FileLock::acquire(&kubeconfig).unwrap());
    }
}
