//! What kindred asks of and gets from a container runtime: container specs, listings, exec
//! results and byte streams. Runtime-neutral: no provider's API types appear here.

use std::collections::HashMap;

use super::security::NodeSecurity;

/// What a container should look like. `security: None` is an ordinary unprivileged container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub hostname: Option<String>,
    /// Docker's `--dns-search`: `None` keeps the host's search domains, `["."]` sets none.
    pub dns_search: Option<Vec<String>>,
    pub labels: HashMap<String, String>,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `host-path:container-path[:ro]`.
    pub binds: Vec<String>,
    pub tmpfs: Vec<String>,
    /// Paths that get an anonymous volume (kept out of the overlay root, e.g. /var).
    pub volumes: Vec<String>,
    /// Labels for those anonymous volumes, so their owner can find them without the
    /// container (see `cluster::ownership`). Docker only labels volumes given as mounts.
    pub volume_labels: HashMap<String, String>,
    pub network: Option<String>,
    /// A fixed IPv4 address on `network` (see provider::network).
    pub ip: Option<String>,
    /// A fixed IPv6 address on `network`, on a network with an IPv6 subnet.
    pub ip6: Option<String>,
    /// Namespaced kernel settings (`--sysctl`), e.g. IPv6 forwarding for IPv6 nodes.
    pub sysctls: HashMap<String, String>,
    /// Docker restart policy name (`unless-stopped`, ...); none if unset.
    pub restart_policy: Option<String>,
    pub stop_signal: Option<String>,
    pub security: Option<NodeSecurity>,
    /// Container ports published on the host.
    pub ports: Vec<PublishedPort>,
}

/// A container port published on the host; `host_port: None` lets Docker pick a free port.
#[derive(Debug, Clone)]
pub struct PublishedPort {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: String,
    pub host_port: Option<u16>,
}

/// A container as listed by label.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// `running`, `exited`, ...
    pub state: String,
    pub image: String,
    /// IPv4 address per attached network (empty while stopped).
    pub ips: HashMap<String, String>,
    /// The fixed IPv4 address asked for per network, kept while stopped.
    pub fixed_ips: HashMap<String, String>,
}

/// Result of a command run inside a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A file as a stream of 1 MiB byte chunks, for bodies too large to hold in memory.
pub fn file_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
}

/// Container changes (see `Provider::container_changes`): what changed is not said, only
/// that something did.
pub type ChangeStream = futures_util::stream::BoxStream<'static, Result<(), super::ProviderError>>;

/// A stream of byte chunks fed to a command's stdin.
pub type InputStream =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;
