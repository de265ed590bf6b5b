//! The one error type of every provider operation: what was asked, and the runtime's answer.

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "cannot reach the Docker daemon ({host}): {reason}\n\
         Start it first: run hack/setup-host.sh (installs and starts Docker), or `sudo systemctl start docker`; \
         set DOCKER_HOST if it listens elsewhere"
    )]
    NoDaemon { host: String, reason: String },
    /// The daemon stopped answering in the middle of a command (restarted, upgraded, killed).
    #[error(
        "lost the connection to the Docker daemon while trying to {action}: {reason}\n\
         Is it restarting? Run the command again once `docker info` answers"
    )]
    Unreachable { action: String, reason: String },
    #[error("Docker refused to {action}: {source}")]
    Api {
        action: String,
        source: bollard::errors::Error,
    },
    /// Another container has the name: whoever made it got there first.
    #[error("a container named {name} exists already")]
    NameInUse { name: String },
    #[error("failed to read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot use the lock file {path}: {source}; kindred keeps its locks in \
         $XDG_RUNTIME_DIR/kindred, else in <cache dir>/locks: make that directory writable, or \
         point XDG_RUNTIME_DIR or KINDRED_CACHE_DIR at one that is"
    )]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl ProviderError {
    /// The error of a Docker API call: [`ProviderError::Unreachable`] when the daemon could
    /// not be reached at all, else [`ProviderError::Api`]. `action` is cut to its first line
    /// (a node command can be a whole script).
    pub fn from_api(action: &str, source: bollard::errors::Error) -> Self {
        let mut action = action.lines().next().unwrap_or_default().to_string();
        if action.chars().count() > 100 {
            action = action.chars().take(100).collect::<String>() + "…";
        }
        match unreachable_reason(&source) {
            Some(reason) => ProviderError::Unreachable { action, reason },
            None => ProviderError::Api { action, source },
        }
    }
}

/// Why the daemon could not be reached, if that is what `e` says: somewhere in its chain of
/// causes, a refused or dropped connection or a missing socket.
fn unreachable_reason(e: &bollard::errors::Error) -> Option<String> {
    use std::io::ErrorKind::*;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match e {
        bollard::errors::Error::SocketNotFoundError(path) => {
            return Some(format!("no socket at {path}"))
        }
        // Transparent: its `source()` skips the io::Error itself.
        bollard::errors::Error::IOError { err } => Some(err),
        e => Some(e),
    };
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | NotFound | BrokenPipe
            ) {
                return Some(io.to_string());
            }
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_says_the_daemon_is_gone_and_keeps_the_message_short() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ProviderError::from_api(
            "run `bash -c cat <<EOF\nlong script\nEOF`",
            bollard::errors::Error::from(refused),
        );
        let text = e.to_string();
        assert!(matches!(e, ProviderError::Unreachable { .. }), "{text}");
        assert!(text.starts_with("lost the connection to the Docker daemon while trying to run `bash -c cat <<EOF: refused"), "{text}");
        assert!(!text.contains("long script"), "{text}");
        let other = std::io::Error::other("disk on fire");
        let e = ProviderError::from_api(&"x".repeat(300), bollard::errors::Error::from(other));
        assert!(matches!(e, ProviderError::Api { .. }));
        assert!(e
            .to_string()
            .starts_with(&format!("Docker refused to {}…:", "x".repeat(100))));
    }

    /// What a real client gets from a socket nobody listens on (a daemon that went away).
    #[tokio::test]
    async fn a_socket_without_a_daemon_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let client = bollard::Docker::connect_with_unix(
            path.to_str().unwrap(),
            5,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        let e = client.list_containers(None).await.unwrap_err();
        let e = ProviderError::from_api("list containers", e);
        assert!(matches!(e, ProviderError::Unreachable { .. }), "{e}");
    }
}
