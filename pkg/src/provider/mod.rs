//! The container runtime kindred drives. Docker's API (via bollard) is the one implementation;
//! Podman serves the same API on its own socket (set DOCKER_HOST).

mod docker;
mod lock;
mod network;
mod security;

pub use docker::{
    file_stream, ContainerInfo, ContainerSpec, Docker, ExecOutput, InputStream, ProviderError,
    PublishedPort,
};
pub use lock::lock_dir;
pub use network::{block_addresses, NetworkAddressing, LB_POOL_LABEL};
pub use security::{host_bounding_caps, NodeSecurity, UnknownNodeSecurity};
