//! What a node container gets from the cluster config beyond kindred's own settings:
//! `extraMounts` (bind mounts), `extraPortMappings` (published ports), `networking.dnsSearch`
//! (Docker's DNS search option), and the proxy settings of kindred's environment.
//!
//! [`NodeOptions::prepare`] checks all of it against the host before anything is created: a
//! missing host path, a host port in use, a mount propagation the host cannot provide, an IP
//! family the host lacks. Host ports given as 0 are chosen here, once, so that a node keeps the
//! same host ports when its container restarts.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use super::plan::ClusterPlan;
use super::{ClusterError, CLUSTER_LABEL, NETWORK};
use crate::config::{IpFamily, Mount, MountPropagation, PortMapping, PortProtocol};
use crate::provider::{ContainerSpec, Provider, PublishedPort};

/// Proxy variables forwarded from kindred's environment, in their conventional spelling; the
/// lowercase spelling is read too and both are set in the nodes.
pub const PROXY_VARIABLES: [&str; 3] = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"];

/// Everything [`NodeOptions::prepare`] decided, per node container.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    nodes: HashMap<String, NodeExtras>,
    /// `networking.dnsSearch` as Docker takes it: `["."]` for an empty list (no search domains).
    dns_search: Option<Vec<String>>,
    /// The proxy variables, NO_PROXY already extended with the cluster's own names and ranges
    /// (the cluster network's subnets are added by [`NodeOptions::proxy_env`]); empty when
    /// kindred's environment sets no proxy.
    proxy: Vec<(String, String)>,
    /// What the user may want to know (printed with `-v`), e.g. that SELinux relabelling has no
    /// effect on this host.
    pub notes: Vec<String>,
}

/// One node's binds and published ports.
#[derive(Debug, Clone, Default)]
pub struct NodeExtras {
    /// Docker bind strings, `host:container[:options]`.
    pub binds: Vec<String>,
    pub ports: Vec<PublishedPort>,
}

impl NodeOptions {
    /// Checks the node options against this host and fixes the host ports. `env` reads
    /// kindred's environment (for the proxy variables).
    pub async fn prepare(
        docker: &dyn Provider,
        plan: &ClusterPlan,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NodeOptions, ClusterError> {
        check_ip_family(docker, plan.config.networking.ip_family).await?;
        let mut options = NodeOptions::from_plan(plan, env, &MountTable::read())?;
        if plan
            .nodes
            .iter()
            .any(|n| n.config.extra_mounts.iter().any(|m| m.selinux_relabel))
            && !Path::new("/sys/fs/selinux/enforce").exists()
        {
            options.notes.push(
                "SELinux is not enabled on this host: selinuxRelabel (Docker's `:Z`) has no effect"
                    .to_string(),
            );
        }
        Ok(options)
    }

    /// Everything but the Docker probe: mounts, ports, DNS search, proxy variables.
    fn from_plan(
        plan: &ClusterPlan,
        env: &dyn Fn(&str) -> Option<String>,
        mounts: &MountTable,
    ) -> Result<NodeOptions, ClusterError> {
        let mut problems = Vec::new();
        // Sockets that hold the ports chosen so far, so that no port is chosen twice.
        let mut held = Vec::new();
        let mut nodes = HashMap::new();
        for (i, node) in plan.nodes.iter().enumerate() {
            let mut extras = NodeExtras::default();
            for (j, mount) in node.config.extra_mounts.iter().enumerate() {
                let at = format!("node {} (nodes[{i}].extraMounts[{j}])", node.name);
                match check_mount(mount, mounts) {
                    Ok(()) => extras.binds.push(bind(mount)),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            for (j, mapping) in node.config.extra_port_mappings.iter().enumerate() {
                let at = format!("node {} (nodes[{i}].extraPortMappings[{j}])", node.name);
                match host_port(mapping, &mut held) {
                    Ok(port) => extras.ports.push(PublishedPort {
                        container_port: mapping.container_port as u16,
                        protocol: mapping.protocol.docker_name().to_string(),
                        host_ip: mapping.listen_address.clone(),
                        host_port: port,
                    }),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            nodes.insert(node.name.clone(), extras);
        }
        if !problems.is_empty() {
            return Err(ClusterError::DoesNotFitHost { problems });
        }
        let dns_search = plan.config.networking.dns_search.as_ref().map(|domains| {
            if domains.is_empty() {
                // Docker's spelling of "no search domains" (an empty list means the host's).
                vec![".".to_string()]
            } else {
                domains.clone()
            }
        });
        Ok(NodeOptions {
            nodes,
            dns_search,
            proxy: proxy_variables(plan, env),
            notes: Vec::new(),
        })
    }

    /// The binds and ports chosen for a node.
    pub fn node(&self, name: &str) -> Option<&NodeExtras> {
        self.nodes.get(name)
    }

    /// Adds the node's mounts, ports, DNS search domains and proxy variables to its container
    /// spec. `network_subnets` are the cluster network's, for NO_PROXY.
    pub fn apply(&self, spec: &mut ContainerSpec, network_subnets: &[String]) {
        if let Some(extras) = self.nodes.get(&spec.name) {
            spec.binds.extend(extras.binds.iter().cloned());
            spec.ports.extend(extras.ports.iter().cloned());
        }
        spec.dns_search.clone_from(&self.dns_search);
        spec.env.extend(
            self.proxy_env(network_subnets)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
    }

    /// The proxy variables for the nodes (both spellings of each), NO_PROXY also listing the
    /// cluster network's subnets; empty when no proxy is set.
    pub fn proxy_env(&self, network_subnets: &[String]) -> Vec<(String, String)> {
        self.proxy
            .iter()
            .map(|(name, value)| {
                if name.eq_ignore_ascii_case("NO_PROXY") {
                    (name.clone(), join_unique(value, network_subnets))
                } else {
                    (name.clone(), value.clone())
                }
            })
            .collect()
    }
}

/// `host:container[:ro,rslave,Z]`, as Docker's `Binds` takes it.
fn bind(mount: &Mount) -> String {
    let mut options = Vec::new();
    if mount.read_only {
        options.push("ro");
    }
    if mount.propagation != MountPropagation::None {
        options.push(mount.propagation.docker_name());
    }
    if mount.selinux_relabel {
        // A private label, as kind asks for; Docker skips it where SELinux is off.
        options.push("Z");
    }
    let mut bind = format!("{}:{}", mount.host_path, mount.container_path);
    if !options.is_empty() {
        bind.push(':');
        bind.push_str(&options.join(","));
    }
    bind
}

/// The host path must exist (Docker would quietly create an empty directory in its place),
/// and the mount holding it must be able to propagate as asked.
fn check_mount(mount: &Mount, mounts: &MountTable) -> Result<(), String> {
    let path = Path::new(&mount.host_path);
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "hostPath {} does not exist on this host; create it first, or fix the path \
                 (relative paths count from the config file's directory, or from the current \
                 directory for a config read from stdin)",
                mount.host_path
            ))
        }
        Err(e) => return Err(format!("hostPath {} cannot be used: {e}", mount.host_path)),
    };
    let needs = match mount.propagation {
        MountPropagation::None => return Ok(()),
        MountPropagation::HostToContainer => "shared or a slave",
        MountPropagation::Bidirectional => "shared",
    };
    let Some(holder) = mounts.holder(&real) else {
        return Ok(());
    };
    let fits = match mount.propagation {
        MountPropagation::Bidirectional => holder.shared,
        _ => holder.shared || holder.slave,
    };
    if fits {
        return Ok(());
    }
    Err(format!(
        "propagation {} needs the host mount holding {} ({}) to be {needs}, and it is \
         private; make it shared first, e.g. `mount --make-rshared {}`, or use propagation None",
        mount.propagation, mount.host_path, holder.mount_point, holder.mount_point
    ))
}

/// The host port to publish: a fixed one is checked to be free; 0 picks a free one now.
/// `held` keeps the picked ports' sockets open until every port is chosen.
fn host_port(mapping: &PortMapping, held: &mut Vec<HeldPort>) -> Result<Option<u16>, String> {
    let Ok(ip) = mapping.listen_address.parse::<IpAddr>() else {
        // validate() reports it; Docker would too.
        return Ok(u16::try_from(mapping.host_port).ok().filter(|p| *p != 0));
    };
    let port = u16::try_from(mapping.host_port).unwrap_or(0);
    let protocol = mapping.protocol;
    let address = SocketAddr::new(ip, port);
    let shown = format!("{address}/{protocol}");
    match HeldPort::bind(protocol, address) {
        Ok(socket) => {
            let chosen = socket.port();
            held.push(socket);
            Ok(Some(chosen))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "host port {shown} is already in use on this host; stop what uses it, pick \
             another hostPort, or use hostPort 0 for a free one"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(format!(
            "listenAddress {ip} is not an address of this host ({e})"
        )),
        // e.g. a privileged port for an unprivileged user: the Docker daemon may still bind it.
        Err(_) if port != 0 => Ok(Some(port)),
        Err(e) => Err(format!("cannot find a free host port on {ip}: {e}")),
    }
}

/// A socket holding a host port while ports are being chosen.
enum HeldPort {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl HeldPort {
    /// SCTP ports are checked (and picked) through TCP: std has no SCTP sockets, and a port
    /// that is free for TCP is almost always free for SCTP.
    fn bind(protocol: PortProtocol, address: SocketAddr) -> std::io::Result<HeldPort> {
        match protocol {
            PortProtocol::Udp => UdpSocket::bind(address).map(HeldPort::Udp),
            PortProtocol::Tcp | PortProtocol::Sctp => TcpListener::bind(address).map(HeldPort::Tcp),
        }
    }

    fn port(&self) -> u16 {
        match self {
            HeldPort::Tcp(s) => s.local_addr().map(|a| a.port()).unwrap_or(0),
            HeldPort::Udp(s) => s.local_addr().map(|a| a.port()).unwrap_or(0),
        }
    }
}

/// HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either spelling) from kindred's environment, each
/// in both spellings. When any is set, NO_PROXY also lists what must never go through a proxy:
/// the pod and service subnets, the node names, loopback, and the cluster's DNS suffixes.
fn proxy_variables(
    plan: &ClusterPlan,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let read = |name: &str| {
        env(name)
            .filter(|v| !v.is_empty())
            .or_else(|| env(&name.to_lowercase()).filter(|v| !v.is_empty()))
    };
    let values: Vec<(&str, Option<String>)> = PROXY_VARIABLES
        .iter()
        .map(|name| (*name, read(name)))
        .collect();
    if values.iter().all(|(_, v)| v.is_none()) {
        return Vec::new();
    }
    let net = &plan.config.networking;
    let mut no_proxy: Vec<String> = Vec::new();
    for subnets in [&net.pod_subnet, &net.service_subnet] {
        no_proxy.extend(subnets.split(',').map(|s| s.trim().to_string()));
    }
    no_proxy.extend(plan.nodes.iter().map(|n| n.name.clone()));
    if plan.config.registry().is_some() {
        // Nodes pull from the local registry by its container name.
        no_proxy.push(crate::registry::CONTAINER.to_string());
    }
    no_proxy.extend(
        [
            "localhost",
            "127.0.0.1",
            "::1",
            ".svc",
            ".svc.cluster",
            ".svc.cluster.local",
            ".cluster.local",
        ]
        .map(String::from),
    );
    let mut out = Vec::new();
    for (name, value) in values {
        let value = if name == "NO_PROXY" {
            join_unique(value.as_deref().unwrap_or_default(), &no_proxy)
        } else {
            match value {
                Some(value) => value,
                None => continue,
            }
        };
        out.push((name.to_string(), value.clone()));
        out.push((name.to_lowercase(), value));
    }
    out
}

/// `list` (comma-separated) followed by the `extra` entries it does not have yet.
fn join_unique(list: &str, extra: &[String]) -> String {
    let mut seen = BTreeSet::new();
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .chain(extra.iter().map(|s| s.trim()))
        .filter(|e| !e.is_empty() && seen.insert(e.to_string()))
        .collect();
    entries.join(",")
}

/// Fails early, saying what is missing, when ipFamily asks for IPv6 and the host or Docker
/// cannot give containers IPv6 addresses, or the `kindred` network was made without IPv6 and
/// other clusters still use it (kindred replaces it once unused).
async fn check_ip_family(docker: &dyn Provider, family: IpFamily) -> Result<(), ClusterError> {
    if family == IpFamily::Ipv4 {
        return Ok(());
    }
    if let Some(lack) = host_ipv6_lack() {
        return Err(ClusterError::HostWithoutIpv6 {
            family: family.to_string(),
            lack,
        });
    }
    if let Err(reason) = docker.probe_ipv6_network().await {
        return Err(ClusterError::DockerWithoutIpv6 {
            family: family.to_string(),
            reason: reason.to_string(),
        });
    }
    let Some(network) = docker.network_addressing(NETWORK).await? else {
        return Ok(());
    };
    if network.subnet_v6.is_some() {
        return Ok(());
    }
    let users = docker.list_by_labels(&[CLUSTER_LABEL.to_string()]).await?;
    let clusters: Vec<String> = users
        .iter()
        .filter_map(|c| c.labels.get(CLUSTER_LABEL).cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A kept local registry holds the network too.
    let registry = docker
        .container(crate::registry::CONTAINER)
        .await?
        .is_some();
    let mut users = Vec::new();
    let mut them = Vec::new();
    if !clusters.is_empty() {
        users.push(format!("clusters {}", clusters.join(", ")));
        them.push("those clusters (`kindred delete cluster --name NAME`)".to_string());
    }
    if registry {
        users.push(format!("the local registry {}", crate::registry::CONTAINER));
        them.push("the registry (`kindred delete registry`)".to_string());
    }
    if users.is_empty() {
        return Ok(());
    }
    Err(ClusterError::NetworkWithoutIpv6 {
        family: family.to_string(),
        subnet: network.subnet.to_string(),
        users: users.join(" and "),
        them: them.join(" and "),
    })
}

/// Why the kernel gives this host no IPv6, if it does not.
fn host_ipv6_lack() -> Option<String> {
    if !Path::new("/proc/net/if_inet6").exists() {
        return Some(
            "the kernel has no IPv6 (booted with ipv6.disable=1, or built without it); remove \
             ipv6.disable=1 from the kernel command line and reboot"
                .to_string(),
        );
    }
    for setting in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv6/conf/{setting}/disable_ipv6");
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
            return Some(format!(
                "net.ipv6.conf.{setting}.disable_ipv6 is 1; turn it on with `sysctl -w \
                 net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0` (and \
                 in /etc/sysctl.d to keep it)"
            ));
        }
    }
    None
}

/// The host's mounts (`/proc/self/mountinfo`), for mount propagation checks.
#[derive(Debug, Default)]
struct MountTable(Vec<HostMount>);

#[derive(Debug, Clone, PartialEq)]
struct HostMount {
    mount_point: String,
    shared: bool,
    slave: bool,
}

impl MountTable {
    fn read() -> MountTable {
        MountTable::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    /// mountinfo lines: `id parent dev root mount-point options [optional fields...] - ...`.
    fn parse(text: &str) -> MountTable {
        MountTable(
            text.lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    let mount_point = unescape_octal(fields.get(4)?);
                    let optional = fields.iter().skip(6).take_while(|f| **f != "-");
                    let (mut shared, mut slave) = (false, false);
                    for field in optional {
                        shared |= field.starts_with("shared:");
                        slave |= field.starts_with("master:");
                    }
                    Some(HostMount {
                        mount_point,
                        shared,
                        slave,
                    })
                })
                .collect(),
        )
    }

    /// The innermost (last mounted) mount holding `path`.
    fn holder(&self, path: &Path) -> Option<&HostMount> {
        self.0
            .iter()
            .filter(|m| path.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.len())
    }
}

/// mountinfo writes space, tab, newline and backslash as `\040` etc.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "node_options_tests.rs"]
mod tests;
