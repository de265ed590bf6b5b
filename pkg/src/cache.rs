//! Where kindred keeps expensive build results between runs.
//!
//! Everything is keyed by its inputs, so the cache can be shared by any number of builds and
//! deleted at any time (`rm -rf`), at the cost of the next build being cold.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "KINDRED_CACHE_DIR";

/// The cache root: `$KINDRED_CACHE_DIR`, else the user's cache directory (`$XDG_CACHE_HOME` or
/// `~/.cache`) joined with `kindred`, else a directory under the system temp dir.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::cache_dir() {
        Some(dir) => dir.join("kindred"),
        None => std::env::temp_dir().join("kindred-cache"),
    }
}

/// Marks a cache entry as just used, so [`prune_oldest`] keeps it.
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Removes all but the `keep` newest (by modification time) entries of `dir` whose names
/// start with `prefix`, returning what was removed. For results that change with every
/// kindred build (the agent binary, its image, the preload that contains it): without pruning
/// each code change would leave a few hundred MB behind. Errors are ignored: a cache entry
/// that cannot be removed only costs disk space.
pub fn prune_oldest(dir: &Path, prefix: &str, keep: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // Entries being written are dot-prefixed temporaries: never touched here.
            name.starts_with(prefix) && !name.starts_with('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut removed = Vec::new();
    for (_, path) in found.into_iter().skip(keep) {
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_entries_with_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (i, name) in ["agent-a", "agent-b", "agent-c", "etcd-x"]
            .iter()
            .enumerate()
        {
            let p = dir.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("f"), b"x").unwrap();
            let t = old + std::time::Duration::from_secs(i as u64 * 60);
            std::fs::File::open(&p).unwrap().set_modified(t).unwrap();
        }
        let removed = prune_oldest(dir.path(), "agent-", 2);
        assert_eq!(removed, vec![dir.path().join("agent-a")]);
        assert!(dir.path().join("agent-b").exists());
        assert!(dir.path().join("agent-c").exists());
        assert!(
            dir.path().join("etcd-x").exists(),
            "other prefixes are left alone"
        );
        assert!(prune_oldest(&dir.path().join("missing"), "", 0).is_empty());
    }

    #[test]
    fn env_override_wins() {
        // Only this test touches the variable, so there is no race with other tests.
        std::env::set_var(CACHE_DIR_ENV, "/tmp/kindred-cache-test");
        assert_eq!(cache_dir(), PathBuf::from("/tmp/kindred-cache-test"));
        std::env::remove_var(CACHE_DIR_ENV);
        assert!(cache_dir().ends_with("kindred") || cache_dir().ends_with("kindred-cache"));
    }
}
