//! Which kubeconfig file kindred writes to.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub const KUBECONFIG_ENV: &str = "KUBECONFIG";

/// The kubeconfig to edit: `--kubeconfig` if given, else the first entry of `$KUBECONFIG`,
/// else `~/.kube/config`.
pub fn target_path(explicit: Option<&Path>) -> PathBuf {
    target_path_from(
        explicit,
        std::env::var_os(KUBECONFIG_ENV).as_deref(),
        dirs::home_dir().as_deref(),
    )
}

/// `target_path` with the environment passed in (`kubeconfig_env` is `$KUBECONFIG`), so it can
/// be tested without touching the process environment.
///
/// `$KUBECONFIG` is a search path (':'-separated on Unix); empty entries are skipped, as kubectl
/// skips them. Without a home directory this is `.kube/config` relative to the current
/// directory, which is what kind does with an empty `$HOME`.
pub fn target_path_from(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&OsStr>,
    home: Option<&Path>,
) -> PathBuf {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return path.to_path_buf();
    }
    let from_env = kubeconfig_env
        .into_iter()
        .flat_map(std::env::split_paths)
        .find(|p| !p.as_os_str().is_empty());
    from_env.unwrap_or_else(|| home.unwrap_or(Path::new("")).join(".kube").join("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Option<&'static Path> {
        Some(Path::new("/home/dev"))
    }

    fn env(value: &str) -> Option<&OsStr> {
        Some(OsStr::new(value))
    }

    #[test]
    fn explicit_path_wins_over_kubeconfig_env() {
        let path = target_path_from(Some(Path::new("/tmp/kc")), env("/a:/b"), home());
        assert_eq!(path, Path::new("/tmp/kc"));
    }

    #[test]
    fn kubeconfig_env_with_several_paths_picks_first_non_empty() {
        let path = target_path_from(None, env("::/first/config:/second/config"), home());
        assert_eq!(path, Path::new("/first/config"));
        let path = target_path_from(None, env("/only"), home());
        assert_eq!(path, Path::new("/only"));
    }

    #[test]
    fn unset_or_empty_kubeconfig_env_means_home_kube_config() {
        for kubeconfig in [None, env(""), env(":::")] {
            let path = target_path_from(None, kubeconfig, home());
            assert_eq!(path, Path::new("/home/dev/.kube/config"));
        }
        let path = target_path_from(Some(Path::new("")), None, home());
        assert_eq!(path, Path::new("/home/dev/.kube/config"));
    }

    #[test]
    fn without_home_the_path_is_relative() {
        assert_eq!(
            target_path_from(None, None, None),
            Path::new(".kube/config")
        );
    }
}
