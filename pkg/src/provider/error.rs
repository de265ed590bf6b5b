//! The one error type of every provider operation: what was asked, and the runtime's answer.

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "cannot reach the Docker daemon ({host}): {reason}\n\
         Start it first: run hack/setup-host.sh (installs and starts Docker), or `sudo systemctl start docker`; \
         set DOCKER_HOST if it listens elsewhere"
    )]
    NoDaemon { host: String, reason: String },
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
