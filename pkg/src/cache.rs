//! Where kindred keeps expensive build results between runs.
//!
//! Everything is keyed by its inputs, so the cache can be shared by any number of builds and
//! deleted at any time (`rm -rf`), at the cost of the next build being cold.

use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_override_wins() {
        // Only this test touches the variable, so there is no race with other tests.
        std::env::set_var(CACHE_DIR_ENV, "/tmp/kindred-cache-test");
        assert_eq!(cache_dir(), PathBuf::from("/tmp/kindred-cache-test"));
        std::env::remove_var(CACHE_DIR_ENV);
        assert!(cache_dir().ends_with("kindred") || cache_dir().ends_with("kindred-cache"));
    }
}
