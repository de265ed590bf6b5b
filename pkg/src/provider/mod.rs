//! The container runtime kindred drives, as one interface: [`Provider`]. Cluster code speaks
//! only this trait and the runtime-neutral types in `types.rs`; [`Docker`] (Docker's Engine API
//! through bollard) implements it. Podman serves the same API on its own socket (set
//! DOCKER_HOST). Unit tests drive cluster code with a fake provider instead of a daemon.

mod docker;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod lock;
mod network;
mod security;
mod thaw;
mod types;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use async_trait::async_trait;

pub use docker::Docker;
pub use error::ProviderError;
pub use lock::lock_dir;
pub(crate) use lock::{lock_network, try_lock_network};
pub use network::{block_addresses, NetworkAddressing, LB_POOL_LABEL};
pub use security::{host_bounding_caps, NodeSecurity, UnknownNodeSecurity};
pub use types::{
    file_stream, ChangeStream, ContainerInfo, ContainerSpec, ExecOutput, InputStream, PublishedPort,
};

/// What kindred needs from a container runtime to run clusters: containers with fixed
/// addresses on one bridge network, commands and files inside them, labelled volumes, images.
/// Names are container names; "missing" is not an error for removals.
#[async_trait]
pub trait Provider: Send + Sync {
    // The host and the runtime.
    /// The runtime's API socket as a path on the daemon's host, which a container can be given
    /// as a bind mount; `None` when it is reached otherwise (TCP, SSH).
    fn api_socket(&self) -> Option<String>;
    /// The daemon's cgroup version, `"1"` or `"2"`.
    async fn cgroup_version(&self) -> Result<String, ProviderError>;

    /// `docker info`, as Docker returns it.
    async fn info_json(&self) -> Result<serde_json::Value, ProviderError>;

    /// Podman's version when the daemon is Podman serving Docker's API (its version reply
    /// names a "Podman Engine" component), else `None`.
    async fn podman_version(&self) -> Result<Option<String>, ProviderError>;

    /// True when the daemon keeps images in containerd (Docker's "containerd image store",
    /// the default from Docker 29): image IDs are then manifest digests, not config digests.
    async fn uses_containerd_image_store(&self) -> Result<bool, ProviderError>;

    // Images.
    async fn image_exists(&self, name: &str) -> Result<bool, ProviderError>;

    /// The image's ID (`sha256:<config digest>` with Docker's classic image store), or `None`
    /// if Docker has no image by that name.
    async fn image_id(&self, name: &str) -> Result<Option<String>, ProviderError>;

    /// The image's labels (empty if it has none).
    async fn image_labels(&self, name: &str) -> Result<HashMap<String, String>, ProviderError>;

    /// Reads one file out of an image without starting it: create a stopped container, copy the
    /// file out through the archive API, remove the container.
    async fn read_image_file(&self, image: &str, path: &str) -> Result<Vec<u8>, ProviderError>;

    /// Loads a `docker save`-format archive (what `docker load` reads), streaming it from disk.
    async fn load_archive(&self, path: &Path) -> Result<(), ProviderError>;

    /// `docker save` of several images as one tar stream (shared layers once).
    fn export_images(&self, names: &[String]) -> InputStream;

    async fn remove_image(&self, name: &str) -> Result<(), ProviderError>;

    // Containers.
    /// Creates and starts a container. For node containers (`security: Some(Privileged)`) a
    /// daemon that cannot grant --privileged makes kindred retry with the restricted profile;
    /// the profile actually used is returned.
    async fn run(&self, spec: &ContainerSpec) -> Result<Option<NodeSecurity>, ProviderError>;

    /// Starts an existing container; a running one is not an error.
    async fn start_container(&self, name: &str) -> Result<(), ProviderError>;

    /// Stops a container: its stop signal, then SIGKILL after `timeout_secs`. A stopped
    /// container is not an error.
    async fn stop_container(&self, name: &str, timeout_secs: i32) -> Result<(), ProviderError>;

    /// Waits for a container to exit and returns its exit code.
    async fn wait(&self, name: &str) -> Result<i64, ProviderError>;

    /// Removes a container and its anonymous volumes; a missing container is not an error.
    async fn remove_container(&self, name: &str) -> Result<(), ProviderError>;

    /// One item per change (created, started, stopped, removed, ...) to a container carrying
    /// every given label, from now on; an error item when the runtime stops answering, after
    /// which the stream ends.
    fn container_changes(&self, labels: &[String]) -> ChangeStream;

    /// Containers (running or not) carrying every given label (`key` or `key=value`).
    async fn list_by_labels(&self, labels: &[String]) -> Result<Vec<ContainerInfo>, ProviderError>;

    /// The names of all containers, running or not, kindred's or not.
    async fn container_names(&self) -> Result<Vec<String>, ProviderError>;

    /// `docker inspect` of a container, as Docker returns it.
    async fn inspect_container_json(&self, name: &str) -> Result<serde_json::Value, ProviderError>;

    /// The container's IPv4 address on `network`.
    async fn container_ip(&self, name: &str, network: &str) -> Result<String, ProviderError>;

    /// The container's global IPv6 address on `network`, if it has one.
    async fn container_ipv6(
        &self,
        name: &str,
        network: &str,
    ) -> Result<Option<String>, ProviderError>;

    /// The host address and port Docker bound for a container port (`6443/tcp`).
    async fn published_address(
        &self,
        name: &str,
        container_port: &str,
    ) -> Result<std::net::SocketAddr, ProviderError>;

    /// The container's own stdout and stderr (for a node: the entrypoint and systemd's output).
    async fn logs(&self, name: &str) -> Result<String, ProviderError>;

    // Commands and files inside a container.
    /// Runs a command in a running container and collects its output and exit code.
    async fn exec(&self, container: &str, cmd: &[&str]) -> Result<ExecOutput, ProviderError>;

    /// Runs a command with `input` streamed to its stdin, closed at the end (e.g.
    /// `ctr images import -`). An error in `input` still closes stdin, so the command sees a
    /// truncated stream and fails rather than waiting forever; that error is returned.
    async fn exec_with_input(
        &self,
        container: &str,
        cmd: &[&str],
        input: InputStream,
    ) -> Result<ExecOutput, ProviderError>;

    /// Runs a command and writes its stdout to `path` as it comes (a whole journal may not fit
    /// comfortably in memory); the returned output carries stderr only.
    async fn exec_to_file(
        &self,
        container: &str,
        cmd: &[&str],
        path: &Path,
    ) -> Result<ExecOutput, ProviderError>;

    /// Copies a single file out of a (running or stopped) container.
    async fn read_container_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Vec<u8>, ProviderError>;

    /// A path of a (running or stopped) container as a tar stream.
    fn copy_out(&self, container: &str, path: &str) -> InputStream;

    /// One container (running or not) by name, or `None` if there is none.
    async fn container(&self, name: &str) -> Result<Option<ContainerInfo>, ProviderError>;

    // Volumes.
    /// Creates a named volume with labels unless it exists (then it is left as it is).
    async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), ProviderError>;

    /// Names of the volumes (named or anonymous) carrying the label `key=value`.
    async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>, ProviderError>;

    /// A named volume's labels, or `None` if there is no such volume.
    async fn volume_labels(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, ProviderError>;

    /// Removes a named volume; a missing one is not an error.
    async fn remove_volume(&self, name: &str) -> Result<(), ProviderError>;

    // Networks.
    /// Creates the bridge network `name` unless it exists, with a subnet that supports fixed
    /// node addresses and, with `require_ipv6`, an IPv6 subnet too; returns how it hands out
    /// addresses. With `require_ipv6` an unused network without IPv6 is replaced (one in use
    /// is returned as it is: the caller decides). Callers hold [`lock_network`].
    async fn ensure_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        require_ipv6: bool,
    ) -> Result<NetworkAddressing, ProviderError>;

    /// The IPv4 subnet and dynamic pool of network `name`, if it exists.
    async fn network_addressing(
        &self,
        name: &str,
    ) -> Result<Option<NetworkAddressing>, ProviderError>;

    /// Every IPv4 address on network `name` that a container holds or will take when it
    /// starts (fixed addresses of stopped containers included), and every address of the
    /// LoadBalancer blocks recorded on its containers.
    async fn used_addresses(&self, name: &str) -> Result<BTreeSet<Ipv4Addr>, ProviderError>;

    /// The names of the containers attached to the network `name` with ID `id`, running or
    /// not. Both are asked for: a container created but never started knows its network by
    /// name only, one that ran by ID too.
    async fn containers_on_network(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Vec<String>, ProviderError>;

    /// Removes the network (every network of that name) once no container is attached.
    async fn remove_network_if_unused(&self, name: &str) -> Result<bool, ProviderError>;

    /// The subnets (IPv4 and IPv6) of network `name`.
    async fn network_subnets(&self, name: &str) -> Result<Vec<String>, ProviderError>;

    /// Whether the runtime can create an IPv6 network here: creates and removes a throwaway
    /// one; the error is the runtime's reason.
    async fn probe_ipv6_network(&self) -> Result<(), ProviderError>;

    // Built on the above.

    /// Like [`exec`](Self::exec) but a non-zero exit is an error carrying the output.
    async fn exec_ok(&self, container: &str, cmd: &[&str]) -> Result<String, ProviderError> {
        let out = self.exec(container, cmd).await?;
        if out.code != 0 {
            return Err(ProviderError::Other(format!(
                "`{}` in {container} exited with {}:\n{}{}",
                cmd.join(" "),
                out.code,
                out.stdout,
                out.stderr
            )));
        }
        Ok(out.stdout)
    }
}
