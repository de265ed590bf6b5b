//! What kindred runs inside a cluster, from the `kindred` binary itself (`kindred agent ...`)
//! packed into an image that every node image preloads:
//! - `network`: a DaemonSet that gives each node its CNI config and routes to the other nodes'
//!   pod ranges, and masquerades traffic leaving the pod network;
//!   and enforces NetworkPolicies on the node's pods (see `policy`);
//! - `storage`: a DaemonSet that provisions host-path PersistentVolumes for the default
//!   StorageClass on the node the pod was scheduled to;
//! - `service_lb`: a DaemonSet that gives LoadBalancer Services addresses from the cluster's
//!   pool on the `kindred` network and makes one node answer for each;
//! - `loadbalancer`: not in the cluster but in front of it: the TCP load balancer container
//!   before the API servers of a cluster with several control planes;
//! - `node_lifecycle`: not in the cluster but beside it: deletes the Nodes whose containers are
//!   gone and taints those whose containers are stopped, as a cloud would.
//!
//! The DaemonSets reconcile from the API server continuously, so they follow nodes added,
//! removed or readdressed after create.

pub mod loadbalancer;
pub mod manifests;
pub mod network;
pub mod node_lifecycle;
pub mod policy;
pub mod service_lb;
pub mod storage;

use std::time::Duration;

use futures_util::{Stream, StreamExt};

/// The image both agents run from (preloaded, never pulled).
pub const IMAGE: &str = concat!("localhost/kindred/agent:v", env!("CARGO_PKG_VERSION"));

/// Node image label listing the agents its kindred binary runs in containers of their own
/// (beside the cluster, not in it), so a create can tell an image that predates one.
pub const HOST_AGENTS_LABEL: &str = "io.kindred.host-agents";
/// This binary's agents of that kind, as the label lists them.
pub const HOST_AGENTS: &str = "loadbalancer,node-lifecycle";

/// How often the agents reconcile when nothing changes, to repair drift (a route deleted by
/// hand, a node restarted with its tables empty).
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("environment variable {0} must be set (the DaemonSet manifest sets it)")]
    MissingEnv(&'static str),
    #[error("cannot reach the API server: {0}")]
    Client(String),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Msg(String),
}

fn env(name: &'static str) -> Result<String, AgentError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(AgentError::MissingEnv(name))
}

/// A client for the API server: the in-cluster service account, but talking to the address
/// the manifest gives (kindred's `KINDRED_API_SERVER` URL in older images, else the
/// `CONTROL_PLANE_ENDPOINT` that both kindred and kind add), so the agents need neither
/// kube-proxy nor cluster DNS to start. Without either, the in-cluster service address.
async fn client() -> Result<kube::Client, AgentError> {
    let mut config =
        kube::Config::incluster_env().map_err(|e| AgentError::Client(e.to_string()))?;
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let url = var("KINDRED_API_SERVER")
        .or_else(|| var(manifests::CONTROL_PLANE_ENDPOINT).map(|endpoint| endpoint_url(&endpoint)));
    if let Some(url) = url {
        config.cluster_url = url
            .parse()
            .map_err(|e| AgentError::Client(format!("API server address {url}: {e}")))?;
    }
    kube::Client::try_from(config).map_err(|e| AgentError::Client(e.to_string()))
}

/// `host:port` (how kind and kindred pass the endpoint) as an https URL; a URL stays as is.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

/// How long a burst of watch events (the initial listing, a node's status update) may take to
/// settle before the pass that handles all of it.
const SETTLE: Duration = Duration::from_millis(200);

/// Calls `reconcile` at start, after every batch of watch events (gathered for `settle`), and
/// every [`RESYNC`], until SIGTERM or SIGINT. Errors are logged and retried: an agent that
/// exits would only be restarted with backoff.
async fn reconcile_loop<S, F, Fut>(
    events: S,
    settle: Duration,
    mut reconcile: F,
) -> Result<(), AgentError>
where
    S: Stream + Unpin,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AgentError>>,
{
    use tokio::signal::unix::{signal, SignalKind};
    let mut events = events;
    let mut tick = tokio::time::interval(RESYNC);
    // As PID 1 of its container the agent gets no default signal handling: without these it
    // would ignore SIGTERM and hold up every pod deletion and node shutdown for the grace period.
    let mut term = signal(SignalKind::terminate()).map_err(|e| AgentError::Msg(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| AgentError::Msg(e.to_string()))?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            event = events.next() => {
                if event.is_none() {
                    return Err(AgentError::Msg("the watch stream ended".into()));
                }
                // Coalesce a burst into one pass.
                tokio::time::sleep(settle).await;
                while let Some(Some(_)) = futures_util::FutureExt::now_or_never(events.next()) {}
            }
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile().await {
            tracing::warn!("reconcile failed (retrying): {e}");
        }
    }
}

/// An address family, told from an address or a CIDR in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of_ip(ip: &std::net::IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    /// The nft keyword matching this family's header (`ip saddr`, `ip6 saddr`).
    fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn of(addr: &str) -> Family {
        if addr.contains(':') {
            Family::V6
        } else {
            Family::V4
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
    fn iptables_restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }
    fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Runs a command from the agent image (ip, iptables); a failure carries its stderr.
async fn run(program: &str, args: &[&str]) -> Result<String, AgentError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| AgentError::Msg(format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(AgentError::Msg(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command that reads its input from stdin (iptables-restore, nft -f -); a failure
/// carries its stderr and the input.
async fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), AgentError> {
    use tokio::io::AsyncWriteExt;
    let fail = |e: std::io::Error| AgentError::Msg(format!("{program}: {e}"));
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).await.map_err(fail)?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(fail)?;
    if !out.status.success() {
        return Err(AgentError::Msg(format!(
            "`{program} {}` failed: {}\ninput:\n{input}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
