//! From pods, namespaces and NetworkPolicies to one nftables script for one node: pure, so
//! every rule the agent programs can be checked without a kernel.
//!
//! Layout of table `inet kindred_policy` (all of it replaced in one transaction):
//! - base chains `egress_forward` (hook forward), `egress_input` (hook input: pods talking to
//!   their own node) and `ingress_forward`, each first accepting replies (conntrack), then
//!   dispatching by address through a verdict map to the chain of the isolated local pod;
//! - `pod_N_egress` / `pod_N_ingress`: a jump to each policy that selects the pod, then a
//!   reject, so a connection no policy allows fails at once instead of timing out;
//! - `policy_N_egress` / `policy_N_ingress`: one `accept` rule per peer and port the policy
//!   allows. An accept ends only its own base chain, so egress and ingress (separate base
//!   chains, egress first) are both checked for traffic between two pods of one node.
//!
//! Addresses in the node's PodCIDRs that belong to no pod the agent knows yet (a pod that has
//! just started, before its address reaches the API) are dropped, not rejected: the agent
//! fails closed, so a policy is never bypassed while it is being programmed, and TCP's SYN
//! retry gets through once the pod is known.
//!
//! The node itself (kubelet's probes, hostPort from the node) reaches its pods through
//! `output`, which no chain here hooks: policies never cut a node off its own pods.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};

use crate::agent::Family;

/// The table the agent owns (nft identifiers take no hyphens).
pub const TABLE: &str = "kindred_policy";

/// What the agent needs of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
    /// Named container ports: (name, protocol, number).
    pub ports: Vec<(String, String, i32)>,
}

impl PodView {
    /// None for a pod that holds no address any more (finished, or not started).
    pub fn from_pod(pod: &Pod) -> Option<PodView> {
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                status
                    .pod_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        if ips.is_empty() {
            return None;
        }
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let name = p.name.clone()?;
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((name, protocol, p.container_port))
            })
            .collect();
        Some(PodView {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ips,
            host_network: spec.host_network.unwrap_or(false),
            ports,
        })
    }
}

/// A namespace's name and labels.
pub fn namespace_labels(ns: &Namespace) -> (String, BTreeMap<String, String>) {
    (
        ns.metadata.name.clone().unwrap_or_default(),
        ns.metadata.labels.clone().unwrap_or_default(),
    )
}

/// Everything one node's rules derive from.
pub struct Inputs<'a> {
    pub node: &'a str,
    /// The node's PodCIDRs: addresses there that no known pod holds are dropped.
    pub pod_cidrs: &'a [String],
    pub pods: &'a [PodView],
    pub namespaces: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub policies: &'a [NetworkPolicy],
}

/// A policy part the agent could not turn into rules; reported as an Event on the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub namespace: String,
    pub policy: String,
    pub message: String,
}

/// The nftables script for one node, and what could not be expressed.
#[derive(Debug, Default)]
pub struct Ruleset {
    pub script: String,
    pub problems: Vec<Problem>,
    /// Local pods isolated for ingress and for egress (for the log).
    pub isolated: (usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
    /// The side of the packet the peer is on.
    fn peer_side(self) -> &'static str {
        match self {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        }
    }
}

/// Where the peer of a rule may be.
enum Peer {
    Any,
    Pods(Vec<IpAddr>),
    Block { cidr: String, except: Vec<String> },
}

/// Which ports of the local (ingress) or remote (egress) end a rule allows.
enum Port {
    Any,
    Protocol(&'static str),
    Range(&'static str, i32, i32),
    /// Resolved per pod: (address, protocol, number) of each pod carrying the name.
    Named(Vec<(IpAddr, &'static str, i32)>),
}

/// Builds the script (empty when the cluster has no NetworkPolicy: then the table is removed
/// and nothing is filtered).
pub fn ruleset(inputs: &Inputs) -> Ruleset {
    let mut out = Ruleset::default();
    if inputs.policies.is_empty() {
        out.script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        return out;
    }
    let mut policies: Vec<&NetworkPolicy> = inputs.policies.iter().collect();
    policies.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));

    let local: Vec<&PodView> = inputs
        .pods
        .iter()
        .filter(|p| p.node == inputs.node && !p.host_network)
        .collect();
    // Per local pod (index into `local`) and direction: the policy chains that apply.
    let mut applies: BTreeMap<(usize, Direction), Vec<String>> = BTreeMap::new();
    let mut chains = String::new();

    for (k, policy) in policies.iter().enumerate() {
        let namespace = policy.metadata.namespace.clone().unwrap_or_default();
        let name = policy.metadata.name.clone().unwrap_or_default();
        let problem = |message: String| Problem {
            namespace: namespace.clone(),
            policy: name.clone(),
            message,
        };
        let spec = policy.spec.clone().unwrap_or_default();
        let selector = match selector(spec.pod_selector.clone()) {
            Ok(s) => s,
            Err(e) => {
                // Which pods it isolates is unknown: they stay as they were.
                out.problems
                    .push(problem(format!("spec.podSelector cannot be used: {e}")));
                continue;
            }
        };
        let selected: Vec<usize> = (0..local.len())
            .filter(|&i| local[i].namespace == namespace && selector.matches(&local[i].labels))
            .collect();
        if selected.is_empty() {
            continue;
        }
        for direction in policy_types(&spec) {
            let chain = format!("policy_{k}_{}", direction.name());
            let targets: Vec<&PodView> = selected.iter().map(|&i| local[i]).collect();
            let mut body = String::new();
            let rules = rules_of(&spec, direction);
            for (r, (peers, ports)) in rules.iter().enumerate() {
                let field = |f: &str| format!("spec.{}[{r}].{f}", direction.name());
                let peers = match peers {
                    None => vec![Peer::Any],
                    Some(list) if list.is_empty() => vec![Peer::Any],
                    Some(list) => list
                        .iter()
                        .enumerate()
                        .filter_map(|(j, peer)| {
                            let at = field(&format!(
                                "{}[{j}]",
                                if direction == Direction::Ingress {
                                    "from"
                                } else {
                                    "to"
                                }
                            ));
                            match resolve_peer(peer, &namespace, inputs) {
                                Ok(p) => Some(p),
                                Err(e) => {
                                    out.problems.push(problem(format!("{at}: {e}")));
                                    None
                                }
                            }
                        })
                        .collect(),
                };
                let ports = match ports {
                    None => vec![Port::Any],
                    Some(list) if list.is_empty() => vec![Port::Any],
                    Some(list) => list
                        .iter()
                        .enumerate()
                        .filter_map(|(j, port)| {
                            let candidates: Vec<&PodView> = match direction {
                                Direction::Ingress => targets.clone(),
                                Direction::Egress => {
                                    inputs.pods.iter().filter(|p| !p.host_network).collect()
                                }
                            };
                            match resolve_port(port, &candidates) {
                                Ok(p) => Some(p),
                                Err(e) => {
                                    out.problems.push(problem(format!(
                                        "{}: {e}",
                                        field(&format!("ports[{j}]"))
                                    )));
                                    None
                                }
                            }
                        })
                        .collect(),
                };
                for peer in &peers {
                    for port in &ports {
                        for rule in accept_rules(direction, peer, port) {
                            let _ = writeln!(body, "    {}", format!("{rule} accept").trim());
                        }
                    }
                }
            }
            let _ = writeln!(
                chains,
                "  # {namespace}/{name} ({})\n  chain {chain} {{\n{body}  }}",
                direction.name()
            );
            for &i in &selected {
                applies
                    .entry((i, direction))
                    .or_default()
                    .push(chain.clone());
            }
        }
    }

    // The chain of each isolated local pod, and the dispatch to it.
    let mut dispatch: BTreeMap<Direction, Vec<(IpAddr, String)>> = BTreeMap::new();
    for ((i, direction), policy_chains) in &applies {
        let chain = format!("pod_{i}_{}", direction.name());
        let mut body = String::new();
        for p in policy_chains {
            let _ = writeln!(body, "    jump {p}");
        }
        body.push_str("    meta l4proto tcp reject with tcp reset\n");
        body.push_str("    reject with icmpx admin-prohibited\n");
        let pod = local[*i];
        let _ = writeln!(
            chains,
            "  # {}/{}\n  chain {chain} {{\n{body}  }}",
            pod.namespace, pod.name
        );
        for ip in &pod.ips {
            dispatch
                .entry(*direction)
                .or_default()
                .push((*ip, chain.clone()));
        }
    }
    out.isolated = (
        applies
            .keys()
            .filter(|(_, d)| *d == Direction::Ingress)
            .count(),
        applies
            .keys()
            .filter(|(_, d)| *d == Direction::Egress)
            .count(),
    );

    let known: Vec<IpAddr> = local.iter().flat_map(|p| p.ips.iter().copied()).collect();
    let base = |name: &str, hook: &str, priority: &str, direction: Direction| {
        let side = match direction {
            Direction::Egress => "saddr",
            Direction::Ingress => "daddr",
        };
        let mut body = format!(
            "    type filter hook {hook} priority {priority}; policy accept;\n    \
             ct state established,related accept\n"
        );
        let entries = dispatch.get(&direction).cloned().unwrap_or_default();
        for family in [Family::V4, Family::V6] {
            let map: Vec<String> = entries
                .iter()
                .filter(|(ip, _)| Family::of_ip(ip) == family)
                .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                .collect();
            if !map.is_empty() {
                let _ = writeln!(
                    body,
                    "    {} {side} vmap {{ {} }}",
                    family.nft(),
                    map.join(", ")
                );
            }
        }
        for cidr in inputs.pod_cidrs {
            let family = Family::of(cidr);
            let Some(cidr) = network(cidr) else { continue };
            let mine: Vec<String> = known
                .iter()
                .filter(|ip| Family::of_ip(ip) == family)
                .map(|ip| ip.to_string())
                .collect();
            let kw = family.nft();
            let unknown = if mine.is_empty() {
                String::new()
            } else {
                format!(" {kw} {side} != {{ {} }}", mine.join(", "))
            };
            let _ = writeln!(body, "    {kw} {side} {cidr}{unknown} drop");
        }
        format!("  chain {name} {{\n{body}  }}\n")
    };

    let mut script =
        format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    script.push_str(&base(
        "egress_forward",
        "forward",
        "filter - 5",
        Direction::Egress,
    ));
    script.push_str(&base(
        "egress_input",
        "input",
        "filter - 5",
        Direction::Egress,
    ));
    script.push_str(&base(
        "ingress_forward",
        "forward",
        "filter - 4",
        Direction::Ingress,
    ));
    script.push_str(&chains);
    script.push_str("}\n");
    out.script = script;
    out
}

fn selector(s: Option<LabelSelector>) -> Result<Selector, String> {
    Selector::try_from(s.unwrap_or_default()).map_err(|e| e.to_string())
}

/// `policyTypes`, or its default: Ingress, plus Egress when the policy has egress rules.
fn policy_types(spec: &NetworkPolicySpec) -> Vec<Direction> {
    match &spec.policy_types {
        Some(types) if !types.is_empty() => {
            let mut out = Vec::new();
            if types.iter().any(|t| t == "Ingress") {
                out.push(Direction::Ingress);
            }
            if types.iter().any(|t| t == "Egress") {
                out.push(Direction::Egress);
            }
            out
        }
        _ => {
            let mut out = vec![Direction::Ingress];
            if spec.egress.is_some() {
                out.push(Direction::Egress);
            }
            out
        }
    }
}

type RuleParts<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// The (peers, ports) of each rule in one direction.
fn rules_of(spec: &NetworkPolicySpec, direction: Direction) -> Vec<RuleParts<'_>> {
    match direction {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()))
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()))
            .collect(),
    }
}

/// A peer as addresses: the pods it selects (podSelector in the policy's namespace,
/// namespaceSelector across namespaces, both: the pods matching in the namespaces matching), or
/// an ipBlock.
fn resolve_peer(
    peer: &NetworkPolicyPeer,
    namespace: &str,
    inputs: &Inputs,
) -> Result<Peer, String> {
    if let Some(IPBlock { cidr, except }) = &peer.ip_block {
        let net = network(cidr).ok_or_else(|| format!("ipBlock.cidr {cidr:?} is no CIDR"))?;
        let mut excepts = Vec::new();
        for e in except.iter().flatten() {
            excepts.push(network(e).ok_or_else(|| format!("ipBlock.except {e:?} is no CIDR"))?);
        }
        return Ok(Peer::Block {
            cidr: net,
            except: excepts,
        });
    }
    let pods = selector(peer.pod_selector.clone()).map_err(|e| format!("podSelector: {e}"))?;
    let namespaces = match &peer.namespace_selector {
        Some(s) => Some(selector(Some(s.clone())).map_err(|e| format!("namespaceSelector: {e}"))?),
        None => None,
    };
    let empty = BTreeMap::new();
    let ips = inputs
        .pods
        .iter()
        .filter(|p| !p.host_network)
        .filter(|p| match &namespaces {
            None => p.namespace == namespace,
            Some(ns) => ns.matches(inputs.namespaces.get(&p.namespace).unwrap_or(&empty)),
        })
        .filter(|p| pods.matches(&p.labels))
        .flat_map(|p| p.ips.iter().copied())
        .collect();
    Ok(Peer::Pods(ips))
}

fn protocol(name: Option<&str>) -> Result<&'static str, String> {
    match name.unwrap_or("TCP") {
        "TCP" => Ok("tcp"),
        "UDP" => Ok("udp"),
        "SCTP" => Ok("sctp"),
        other => Err(format!("protocol {other:?} is not TCP, UDP or SCTP")),
    }
}

/// A port as numbers; a named port becomes the number each candidate pod gives that name.
fn resolve_port(port: &NetworkPolicyPort, candidates: &[&PodView]) -> Result<Port, String> {
    let proto = protocol(port.protocol.as_deref())?;
    match &port.port {
        None => Ok(Port::Protocol(proto)),
        Some(IntOrString::Int(n)) => {
            let end = port.end_port.unwrap_or(*n);
            if end < *n {
                return Err(format!("endPort {end} is below port {n}"));
            }
            Ok(Port::Range(proto, *n, end))
        }
        Some(IntOrString::String(name)) => Ok(Port::Named(
            candidates
                .iter()
                .flat_map(|pod| {
                    pod.ports
                        .iter()
                        .filter(|(n, p, _)| n == name && protocol(Some(p)).ok() == Some(proto))
                        .flat_map(move |(_, _, number)| {
                            pod.ips.iter().map(move |ip| (*ip, proto, *number))
                        })
                })
                .collect(),
        )),
    }
}

/// The nft match expressions of one (peer, port) pair, one per address family where the pair
/// is family-specific; none when it can match nothing (no pod selected, no pod with the named
/// port).
fn accept_rules(direction: Direction, peer: &Peer, port: &Port) -> Vec<String> {
    let side = direction.peer_side();
    let port_part = |family: Option<Family>| -> Option<String> {
        match port {
            Port::Any => Some(String::new()),
            Port::Protocol(p) => Some(format!(" meta l4proto {p}")),
            Port::Range(p, a, b) if a == b => Some(format!(" meta l4proto {p} th dport {a}")),
            Port::Range(p, a, b) => Some(format!(" meta l4proto {p} th dport {a}-{b}")),
            Port::Named(pairs) => {
                let family = family?;
                // Always on the destination: the selected pod (ingress) or the peer (egress).
                let set: BTreeSet<String> = pairs
                    .iter()
                    .filter(|(ip, _, _)| Family::of_ip(ip) == family)
                    .map(|(ip, p, n)| format!("{ip} . {p} . {n}"))
                    .collect();
                if set.is_empty() {
                    return None;
                }
                Some(format!(
                    " {} daddr . meta l4proto . th dport {{ {} }}",
                    family.nft(),
                    set.into_iter().collect::<Vec<_>>().join(", ")
                ))
            }
        }
    };
    let peer_part = |family: Family| -> Option<String> {
        let kw = family.nft();
        match peer {
            Peer::Any => Some(String::new()),
            Peer::Pods(ips) => {
                let set: BTreeSet<String> = ips
                    .iter()
                    .filter(|ip| Family::of_ip(ip) == family)
                    .map(|ip| ip.to_string())
                    .collect();
                if set.is_empty() {
                    return None;
                }
                let list: Vec<String> = set.into_iter().collect();
                Some(format!(" {kw} {side} {{ {} }}", list.join(", ")))
            }
            Peer::Block { cidr, except } => {
                if Family::of(cidr) != family {
                    return None;
                }
                let except: Vec<&String> =
                    except.iter().filter(|e| Family::of(e) == family).collect();
                let mut m = format!(" {kw} {side} {cidr}");
                if !except.is_empty() {
                    let list: Vec<&str> = except.iter().map(|s| s.as_str()).collect();
                    let _ = write!(m, " {kw} {side} != {{ {} }}", list.join(", "));
                }
                Some(m)
            }
        }
    };
    let family_free = matches!(peer, Peer::Any) && !matches!(port, Port::Named(_));
    if family_free {
        // Both families; an empty match (any peer, any port) accepts everything.
        return vec![port_part(None).unwrap_or_default().trim_start().to_string()];
    }
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        if let (Some(a), Some(p)) = (peer_part(family), port_part(Some(family))) {
            out.push(format!("{a}{p}").trim_start().to_string());
        }
    }
    out
}

/// The network of `addr/len` with host bits cleared (nft refuses them set); None if it is no
/// CIDR.
pub fn network(cidr: &str) -> Option<String> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some(format!(
                "{}/{len}",
                std::net::Ipv4Addr::from(u32::from(a) & mask)
            ))
        }
        IpAddr::V6(a) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some(format!(
                "{}/{len}",
                std::net::Ipv6Addr::from(u128::from(a) & mask)
            ))
        }
        _ => None,
    }
}
