//! `extraPortMappings`: port ranges, listen addresses, and host ports claimed twice.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Problems;
use crate::config::types::{Cluster, PortMapping, PortProtocol};

pub(super) fn check_port_mapping(at: &str, mapping: &PortMapping, problems: &mut Problems) {
    match mapping.container_port {
        0 => problems.add(
            format!("{at}.containerPort"),
            "is missing; give the port inside the node to publish (1-65535)",
        ),
        1..=65535 => {}
        port => problems.add(
            format!("{at}.containerPort"),
            format!("{port} is out of range 1-65535"),
        ),
    }
    if !(0..=65535).contains(&mapping.host_port) {
        problems.add(
            format!("{at}.hostPort"),
            format!(
                "{} is out of range 0-65535 (0 picks a free port)",
                mapping.host_port
            ),
        );
    }
    if !mapping.listen_address.is_empty() && mapping.listen_address.parse::<IpAddr>().is_err() {
        problems.add(
            format!("{at}.listenAddress"),
            format!(
                "\"{}\" is not an IP address; use e.g. 0.0.0.0 (every IPv4 address) or 127.0.0.1",
                mapping.listen_address
            ),
        );
    }
}

/// A host address and port that something in the config publishes.
struct Binding {
    field: String,
    protocol: PortProtocol,
    address: SocketAddr,
}

impl Binding {
    /// Docker cannot bind the same port twice, nor a specific address next to the wildcard
    /// address of the same family.
    fn clashes_with(&self, other: &Binding) -> bool {
        let (a, b) = (self.address.ip(), other.address.ip());
        self.protocol == other.protocol
            && self.address.port() == other.address.port()
            && (a == b
                || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified())))
    }
}

/// Reports host ports claimed twice, across all nodes and the API server. Random ports (0)
/// and values already reported as invalid are skipped.
pub(super) fn check_host_ports(cluster: &Cluster, problems: &mut Problems) {
    let mut taken: Vec<Binding> = Vec::new();
    if let Some(port) = cluster.registry().and_then(|r| r.port).and_then(fixed_port) {
        taken.push(Binding {
            field: "registry.port".to_string(),
            protocol: PortProtocol::Tcp,
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        });
    }
    let net = &cluster.networking;
    if let (Some(port), Ok(ip)) = (
        fixed_port(net.api_server_port),
        net.api_server_address.parse::<IpAddr>(),
    ) {
        let binding = Binding {
            field: "networking.apiServerPort".to_string(),
            protocol: PortProtocol::Tcp,
            address: SocketAddr::new(ip, port),
        };
        if let Some(earlier) = taken.iter().find(|t| t.clashes_with(&binding)) {
            problems.add(
                &binding.field,
                format!(
                    "{} is already published by {}; each host port can be used once \
                     (use another port, or 0 for a free one)",
                    binding.address, earlier.field
                ),
            );
        }
        taken.push(binding);
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        for (j, mapping) in node.extra_port_mappings.iter().enumerate() {
            let Some(port) = fixed_port(mapping.host_port) else {
                continue;
            };
            let ip = if mapping.listen_address.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                match mapping.listen_address.parse() {
                    Ok(ip) => ip,
                    Err(_) => continue,
                }
            };
            let binding = Binding {
                field: format!("nodes[{i}].extraPortMappings[{j}]"),
                protocol: mapping.protocol,
                address: SocketAddr::new(ip, port),
            };
            if let Some(earlier) = taken.iter().find(|t| t.clashes_with(&binding)) {
                problems.add(
                    format!("{}.hostPort", binding.field),
                    format!(
                        "{}/{} is already published by {}; each host port can be used once \
                         (use another hostPort, or 0 for a free one)",
                        binding.address, binding.protocol, earlier.field
                    ),
                );
            }
            taken.push(binding);
        }
    }
}

/// A port that must be free on the host: 1-65535 (0 is random, others are invalid).
fn fixed_port(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{problems_of, HEADER};

    #[test]
    fn out_of_range_ports_are_reported() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- role: control-plane
- role: worker
- role: worker
  extraPortMappings:
  - containerPort: 80
    hostPort: 70000
  - containerPort: 0
    hostPort: -1
  - containerPort: 65536
    listenAddress: localhost
"
        ));
        assert_eq!(
            problems,
            [
                "nodes[2].extraPortMappings[0].hostPort: 70000 is out of range 0-65535 (0 picks \
                 a free port)",
                "nodes[2].extraPortMappings[1].containerPort: is missing; give the port inside \
                 the node to publish (1-65535)",
                "nodes[2].extraPortMappings[1].hostPort: -1 is out of range 0-65535 (0 picks a \
                 free port)",
                "nodes[2].extraPortMappings[2].containerPort: 65536 is out of range 1-65535",
                "nodes[2].extraPortMappings[2].listenAddress: \"localhost\" is not an IP \
                 address; use e.g. 0.0.0.0 (every IPv4 address) or 127.0.0.1",
            ]
        );
    }

    #[test]
    fn duplicate_host_ports_are_reported() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- role: control-plane
  extraPortMappings:
  - {{containerPort: 80, hostPort: 80}}
  - {{containerPort: 443, hostPort: 443}}
- role: worker
  extraPortMappings:
  - {{containerPort: 80, hostPort: 80}}
  - {{containerPort: 443, hostPort: 443, listenAddress: 127.0.0.1}}
"
        ));
        assert_eq!(
            problems,
            [
                "nodes[1].extraPortMappings[0].hostPort: 0.0.0.0:80/TCP is already published by \
                 nodes[0].extraPortMappings[0]; each host port can be used once (use another \
                 hostPort, or 0 for a free one)",
                "nodes[1].extraPortMappings[1].hostPort: 127.0.0.1:443/TCP is already published \
                 by nodes[0].extraPortMappings[1]; each host port can be used once (use another \
                 hostPort, or 0 for a free one)",
            ]
        );
    }

    #[test]
    fn same_port_is_fine_on_other_protocols_addresses_and_families() {
        let problems = problems_of(&format!(
            "{HEADER}nodes:
- extraPortMappings:
  - {{containerPort: 53, hostPort: 53, protocol: UDP}}
  - {{containerPort: 53, hostPort: 53, protocol: TCP}}
  - {{containerPort: 80, hostPort: 8080, listenAddress: 127.0.0.1}}
  - {{containerPort: 81, hostPort: 8080, listenAddress: 127.0.0.2}}
  - {{containerPort: 82, hostPort: 8080, listenAddress: '::'}}
  - {{containerPort: 90, hostPort: 0}}
  - {{containerPort: 91, hostPort: 0}}
"
        ));
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn api_server_port_counts_as_taken() {
        let problems = problems_of(&format!(
            "{HEADER}networking:
  apiServerPort: 6443
nodes:
- extraPortMappings:
  - {{containerPort: 6443, hostPort: 6443}}
"
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(
            "nodes[0].extraPortMappings[0].hostPort: 0.0.0.0:6443/TCP is already published by \
             networking.apiServerPort"
        ));
    }
}
