//! What can go wrong in the cluster layer, worded for the user: each variant says what failed,
//! keeps the cause it came from (`#[source]`), and names the fix where there is one.

use super::capacity::{CONTROL_PLANE_MIB, WORKER_MIB};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Kubeadm(#[from] crate::kubeadm::KubeadmError),
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::KubeconfigError),
    #[error(
        "the name {name} is taken: a cluster named {name} already exists; delete it with \
         `kindred delete cluster --name {name}` or pick another --name"
    )]
    NameTaken { name: String },
    #[error(
        "the name {cluster} is taken: a container named {container} already exists and is not \
         a node of a kindred cluster; remove or rename it, or pick another --name"
    )]
    ContainerNameTaken { container: String, cluster: String },
    #[error(
        "{nodes} nodes need about {needed_mib} MiB of memory ({CONTROL_PLANE_MIB} MiB per control \
         plane, {WORKER_MIB} MiB per worker), more than the {total_mib} MiB the Docker host has; \
         use fewer nodes, or a host with more memory"
    )]
    NotEnoughMemory {
        nodes: usize,
        needed_mib: u64,
        total_mib: u64,
    },
    #[error(transparent)]
    Cleanup(#[from] super::ownership::CleanupError),
    /// The cluster config (from `file`, else flags and defaults) fails validation.
    #[error("{}{source}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    InvalidConfig {
        file: Option<String>,
        #[source]
        source: crate::config::ConfigError,
    },
    /// SIGINT or SIGTERM stopped a create (what it made is removed unless --retain).
    #[error("interrupted by {signal}")]
    Interrupted { signal: &'static str },
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
    #[error(transparent)]
    NodeSecurity(#[from] crate::provider::UnknownNodeSecurity),

    // Checked before a create makes anything.
    #[error("node image {image} is not in Docker; {}", missing_image_fix(image))]
    NodeImageMissing { image: String },
    #[error(
        "node image {image} runs Kubernetes {version}, whose kubelet refuses cgroup v1, and this \
         Docker host runs containers on cgroup v1. Use a node image of Kubernetes 1.34 or older \
         (`kindred build node-image --kube-version {}`), or a host with cgroup v2 (most Linux \
         distributions since 2021, Docker Desktop)",
        crate::defaults::KUBERNETES_VERSION
    )]
    NeedsCgroupV2 { image: String, version: String },
    #[error(
        "the container runtime is Podman {version} on a cgroup v1 host: Podman's \
         Docker-compatible API does not give containers a cgroup namespace of their own there \
         (it ignores HostConfig.CgroupnsMode), and a node's systemd cannot run without one. Use \
         Docker on this host, or Podman on a cgroup v2 host (most Linux distributions since 2021)"
    )]
    PodmanOnCgroupV1 { version: String },
    #[error(
        "networking.kubeProxyMode ipvs needs the kernel's IPVS, and this host's kernel lacks \
         {missing}; {fix}, or use kubeProxyMode iptables or nftables"
    )]
    NoIpvs { missing: String, fix: &'static str },
    #[error(
        "networking.apiServerPort {port}: {address} is not free on this host ({source}); \
         pick another port, or 0 for a free one"
    )]
    ApiServerPortTaken {
        port: i32,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a free port on {address}: {source}")]
    NoFreePort {
        address: String,
        #[source]
        source: std::io::Error,
    },

    // The steps of a create, on the nodes.
    /// A shell command on a node exited non-zero; `output` holds its last lines. kubeadm's
    /// failures add kubelet's last log lines, since kubeadm often only says it timed out.
    #[error(
        "`{command}` on {node} failed: exit code {code}; last output:\n  {}{}",
        output.replace('\n', "\n  "),
        kubelet_log_text(node, kubelet_log.as_deref())
    )]
    NodeCommand {
        node: String,
        command: String,
        code: i64,
        output: String,
        kubelet_log: Option<String>,
    },
    #[error("writing {path} on {node} failed: exit code {code}: {stderr}")]
    NodeWriteFile {
        node: String,
        path: String,
        code: i64,
        stderr: String,
    },
    #[error(
        "booting {node} failed: systemd is still `{state}` after {waited_secs}s; failed units:\n\
         {failed_units}\nOn a slow host, set {}=2 (or more) to wait longer.",
        crate::patience::SCALE_ENV
    )]
    NodeBoot {
        node: String,
        state: String,
        waited_secs: u64,
        failed_units: String,
    },
    #[error("{what} on {node} failed: {source}")]
    ContainerdConfig {
        node: String,
        /// e.g. `patching containerd's config`.
        what: &'static str,
        #[source]
        source: crate::containerd::PatchError,
    },
    #[error(
        "restarting containerd on {node} with the patched config failed: containerd did not \
         come back{}; check containerdConfigPatches and containerdConfigPatchesJSON6902. Its \
         last log lines:\n  {}",
        restart_error.as_deref().map(|e| format!(" (`systemctl restart containerd`: {e})"))
            .unwrap_or_else(|| format!(" within {waited_secs}s")),
        log.trim_end().replace('\n', "\n  ")
    )]
    ContainerdRestart {
        node: String,
        /// What `systemctl restart` said when it failed (else containerd did not answer).
        restart_error: Option<String>,
        waited_secs: u64,
        log: String,
    },
    #[error("the node image {image} has no {path}; rebuild it with `kindred build node-image`")]
    AddonMissing { image: String, path: String },
    #[error(
        "reading {path} of the node image failed: it is not valid YAML ({source}); rebuild the \
         image with `kindred build node-image`"
    )]
    AddonInvalid {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error(
        "waiting for nodes to be Ready failed: {ready} of {total} nodes Ready after \
         {waited_secs}s:\n{nodes}\nWait longer with --wait, or see why in the nodes' logs: \
         `kindred export logs --name {cluster}`"
    )]
    NodesNotReady {
        cluster: String,
        ready: usize,
        total: usize,
        waited_secs: u64,
        /// `name=<Ready status>` per node, as kubectl printed them.
        nodes: String,
    },
    #[error("the cluster config does not fit this host (nothing was created):\n  {}", problems.join("\n  "))]
    DoesNotFitHost { problems: Vec<String> },
    #[error("networking.ipFamily {family} needs IPv6, and this host has it turned off: {lack}")]
    HostWithoutIpv6 { family: String, lack: String },
    #[error(
        "networking.ipFamily {family} needs IPv6 container networks, and Docker cannot create one \
         here ({reason}); enable IPv6 in Docker: add \"ipv6\": true and \"fixed-cidr-v6\": \
         \"fd00:dead:beef::/48\" to /etc/docker/daemon.json, restart dockerd, and try again"
    )]
    DockerWithoutIpv6 { family: String, reason: String },
    #[error(
        "node {node} has no IPv6 address on the Docker network `kindred`, which networking.\
         ipFamily {family} needs; check that the network has an IPv6 subnet (`docker network \
         inspect kindred`)"
    )]
    NodeWithoutIpv6 { node: String, family: String },
    #[error(
        "networking.ipFamily {family} needs IPv6 on the Docker network `kindred` ({subnet}), \
         which was made IPv4-only (by an IPv4 cluster, or an older kindred) and is still used \
         by {users}; kindred recreates it with IPv6 once nothing uses it: delete {them}, then \
         create this cluster again"
    )]
    NetworkWithoutIpv6 {
        family: String,
        subnet: String,
        /// What holds the network, e.g. "clusters a, b and the local registry kindred-registry".
        users: String,
        /// How to remove them, e.g. "the clusters (`kindred delete cluster --name NAME`)".
        them: String,
    },

    // The local registry a create asks for (cluster::registry).
    #[error(
        "registry port {port}: 127.0.0.1:{port} is already in use on this host ({source}); stop \
         what uses it, or pick another port with `--registry-port` or `registry.port` (nothing \
         was created)"
    )]
    RegistryPortTaken {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the registry image {image} is not in Docker; build it with `kindred build \
         registry-image` (nothing was created)"
    )]
    RegistryImageMissing { image: String },
    #[error(
        "a container named {container} exists and was not made by kindred; remove or rename it \
         to use kindred's registry (nothing was created)"
    )]
    RegistryNotOurs { container: String },
    #[error(
        "the local registry {container} already runs on 127.0.0.1:{on}{}; every cluster shares \
         it, so ask for port {on} (`--registry-port {on}` or `registry.port: {on}`), or delete \
         it first to move it to port {port} (nothing was created)",
        registry_users_text(used_by)
    )]
    RegistryOnOtherPort {
        container: String,
        /// Its port, or `an unknown port`.
        on: String,
        port: u16,
        used_by: Vec<String>,
    },
    #[error(
        "starting the registry {container} failed: http://127.0.0.1:{port}/v2/ did not answer \
         within 30s ({last}); its last log lines:\n  {}",
        log_tail.replace('\n', "\n  ")
    )]
    RegistryNotAnswering {
        container: String,
        port: u16,
        last: String,
        log_tail: String,
    },
    #[error(
        "image {} not found in the local Docker; `docker pull` or `docker build` it first \
         (kindred loads images from Docker, it does not pull them)",
        images.join(", ")
    )]
    ImagesNotInDocker { images: Vec<String> },

    // Commands on an existing cluster.
    /// The cluster has no nodes (`known`: the clusters there are, for the message).
    #[error(
        "no cluster named {name} ({}); pass --name or create it with `kindred create cluster --name {name}`",
        if known.is_empty() { "there are no clusters".to_string() } else { format!("clusters: {}", known.join(", ")) }
    )]
    NoSuchCluster { name: String, known: Vec<String> },
    #[error("cluster {cluster} has no node named {}; its nodes are: {}", unknown.join(", "), nodes.join(", "))]
    NoSuchNode {
        cluster: String,
        unknown: Vec<String>,
        nodes: Vec<String>,
    },
    #[error(
        "only workers can be added to a running cluster: a new control plane needs the \
         certificates kubeadm shares only during create, a new etcd member and an HA load \
         balancer; create the cluster with the control planes you need instead"
    )]
    ControlPlaneNotAddable,
    #[error(
        "{node} is the API load balancer of {cluster}, not a Kubernetes node; it comes and goes \
         with the cluster (`kindred stop/start/delete cluster --name {cluster}`)"
    )]
    NotAKubernetesNode { node: String, cluster: String },
    #[error(
        "{node} is a {role} node of {cluster} and is not removed by `delete node`: only workers \
         are (a control plane holds an etcd member and the API, and the last one is the \
         cluster); delete the whole cluster with `kindred delete cluster --name {cluster}`"
    )]
    NodeNotDeletable {
        node: String,
        cluster: String,
        role: String,
    },
    /// Containers of the cluster exist but none is a control plane: read while `create` is
    /// still making them (the host-side agents come first), or what a broken create left.
    #[error(
        "cluster {cluster} has no control-plane node (yet: while `kindred create cluster` runs it \
         appears shortly); otherwise delete it with `kindred delete cluster --name {cluster}`"
    )]
    NoControlPlane { cluster: String },
    #[error("listing the nodes of {cluster} failed: {stderr}")]
    ListNodes { cluster: String, stderr: String },
    #[error("reading the node list of {cluster} failed: {reason}")]
    NodeList { cluster: String, reason: String },
    #[error(
        "waiting for the cluster to recover failed: after {waited_secs}s: {ready} of {total} nodes \
         Ready since the start; system pods not ready: {}\n{output}",
        unready.join(", ")
    )]
    NotRecovered {
        waited_secs: u64,
        ready: usize,
        total: usize,
        unready: Vec<String>,
        output: String,
    },
    #[error(
        "the node image of {cluster} has no /usr/bin/kubectl ({source}); install kubectl \
         {version} on the host instead"
    )]
    NoKubectlInImage {
        cluster: String,
        version: String,
        #[source]
        source: Box<crate::provider::ProviderError>,
    },
    /// A local file or directory kindred writes (kubectl cache, logs directory).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// e.g. `write`, `create`.
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot render the node list: {0}")]
    Render(String),
    /// An image archive that cannot be read (the reason names the file).
    #[error("{0}")]
    BadArchive(String),
    #[error("reading the archive stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the container {container} was not made by kindred; kindred leaves it alone")]
    RegistryNotOursToDelete { container: String },
    #[error(
        "the registry is used by the clusters {0}; delete them first (`kindred delete clusters \
         {0}`), and the registry goes with the last one unless it is kept",
        .clusters.join(" ")
    )]
    RegistryInUse { clusters: Vec<String> },
}

fn registry_users_text(used_by: &[String]) -> String {
    if used_by.is_empty() {
        " (no cluster uses it now; `kindred delete registry` removes it)".to_string()
    } else {
        format!(" for the clusters {}", used_by.join(", "))
    }
}

/// How to get a missing node image: kindred's own are built by version.
fn missing_image_fix(image: &str) -> String {
    if image.starts_with(crate::defaults::NODE_IMAGE_REPO) {
        let version = image.rsplit(':').next().unwrap_or_default();
        format!("build it with `kindred build node-image --kube-version {version}`")
    } else {
        "build it with `kindred build node-image --image <name>` or load it into Docker".to_string()
    }
}

fn kubelet_log_text(node: &str, log: Option<&str>) -> String {
    match log {
        Some(log) => format!(
            "\nlast kubelet log lines on {node} (all of it: `docker exec {node} journalctl -u kubelet`):\n  {}",
            log.trim_end().replace('\n', "\n  ")
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_node_command_shows_its_output_and_kubelets_log() {
        let mut err = ClusterError::NodeCommand {
            node: "n".into(),
            command: "kubeadm init".into(),
            code: 1,
            output: "a\nb".into(),
            kubelet_log: None,
        };
        assert_eq!(
            err.to_string(),
            "`kubeadm init` on n failed: exit code 1; last output:\n  a\n  b"
        );
        if let ClusterError::NodeCommand { kubelet_log, .. } = &mut err {
            *kubelet_log = Some("x\ny\n".into());
        }
        assert!(err.to_string().ends_with(
            "  b\nlast kubelet log lines on n (all of it: `docker exec n journalctl -u kubelet`):\n  x\n  y"
        ));
    }

    #[test]
    fn a_missing_image_says_how_to_build_it() {
        let own = ClusterError::NodeImageMissing {
            image: format!("{}:v1.2.3", crate::defaults::NODE_IMAGE_REPO),
        };
        assert!(own.to_string().ends_with("--kube-version v1.2.3`"), "{own}");
        let other = ClusterError::NodeImageMissing {
            image: "example/x:1".into(),
        };
        assert!(other.to_string().contains("load it into Docker"), "{other}");
    }

    #[test]
    fn causes_are_kept() {
        use std::error::Error;
        let err = ClusterError::NoFreePort {
            address: "127.0.0.1".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(err.source().unwrap().to_string(), "boom");
    }
}
