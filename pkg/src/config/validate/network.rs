//! `networking`: API server address and port, pod and service subnets.

use std::net::IpAddr;

use super::Problems;
use crate::config::cidr::Cidr;
use crate::config::types::{IpFamily, Networking};

/// Example ranges for messages: (IPv4, IPv6).
const POD_EXAMPLES: (&str, &str) = ("10.244.0.0/16", "fd00:10:244::/56");
const SERVICE_EXAMPLES: (&str, &str) = ("10.96.0.0/16", "fd00:10:96::/112");

pub(super) fn check_networking(net: &Networking, problems: &mut Problems) {
    if !(0..=65535).contains(&net.api_server_port) {
        problems.add(
            "networking.apiServerPort",
            format!(
                "{} is out of range 0-65535 (0 picks a free port)",
                net.api_server_port
            ),
        );
    }
    if !net.api_server_address.is_empty() && net.api_server_address.parse::<IpAddr>().is_err() {
        problems.add(
            "networking.apiServerAddress",
            format!(
                "\"{}\" is not an IP address; use e.g. 127.0.0.1 (or ::1 for IPv6)",
                net.api_server_address
            ),
        );
    }

    let family = net.ip_family;
    let pods = check_subnets(
        "networking.podSubnet",
        &net.pod_subnet,
        family,
        POD_EXAMPLES,
        problems,
    );
    let services = check_subnets(
        "networking.serviceSubnet",
        &net.service_subnet,
        family,
        SERVICE_EXAMPLES,
        problems,
    );
    // Overlap makes service and pod addresses ambiguous to kube-proxy and the CNI.
    for service in &services {
        for pod in pods.iter().filter(|pod| pod.overlaps(service)) {
            problems.add(
                "networking.serviceSubnet",
                format!(
                    "{service} overlaps podSubnet {pod}; pick ranges that do not overlap \
                     (the defaults are {} and {})",
                    POD_EXAMPLES.0, SERVICE_EXAMPLES.0
                ),
            );
        }
    }

    if let Some(domains) = &net.dns_search {
        if domains.iter().any(|d| d.trim().is_empty()) {
            problems.add("networking.dnsSearch", "has an empty entry");
        }
    }
}

/// Checks one subnet field against the IP family; returns its ranges when they are usable.
/// An empty value is unset (`with_defaults` fills it) and gives no ranges.
fn check_subnets(
    field: &str,
    value: &str,
    family: IpFamily,
    (v4_example, v6_example): (&str, &str),
    problems: &mut Problems,
) -> Vec<Cidr> {
    if value.is_empty() {
        return Vec::new();
    }
    let cidrs = match Cidr::parse_list(value) {
        Ok(cidrs) => cidrs,
        Err(message) => {
            problems.add(field, message);
            return Vec::new();
        }
    };
    let ipv4 = cidrs.iter().filter(|c| c.is_ipv4()).count();
    let ipv6 = cidrs.len() - ipv4;
    let (fits, expected) = match family {
        IpFamily::Ipv4 => (
            (ipv4, ipv6) == (1, 0),
            format!("one IPv4 range, e.g. {v4_example}"),
        ),
        IpFamily::Ipv6 => (
            (ipv4, ipv6) == (0, 1),
            format!("one IPv6 range, e.g. {v6_example}"),
        ),
        IpFamily::Dual => (
            (ipv4, ipv6) == (1, 1),
            format!("one IPv4 and one IPv6 range, comma-separated, e.g. {v4_example},{v6_example}"),
        ),
    };
    if !fits {
        let hint = match family {
            IpFamily::Dual => "",
            _ => " (or set networking.ipFamily to match)",
        };
        problems.add(
            field,
            format!("\"{value}\" does not fit ipFamily {family}: expected {expected}{hint}"),
        );
        return Vec::new();
    }
    cidrs
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{problems_of, HEADER};

    fn networking(lines: &str) -> Vec<String> {
        problems_of(&format!("{HEADER}networking:\n{lines}"))
    }

    #[test]
    fn valid_networking_passes() {
        let cases = [
            "  podSubnet: 192.168.0.0/16\n  serviceSubnet: 10.96.0.0/12\n",
            "  ipFamily: ipv6\n  podSubnet: fd00:1::/56\n  serviceSubnet: fd00:2::/112\n",
            "  ipFamily: dual\n  podSubnet: fd00:1::/56,10.1.0.0/16\n",
            "  apiServerAddress: 0.0.0.0\n  apiServerPort: 6443\n",
            "  apiServerPort: 65535\n  dnsSearch: [example.test]\n",
        ];
        for case in cases {
            assert_eq!(networking(case), Vec::<String>::new(), "{case}");
        }
    }

    #[test]
    fn overlapping_subnets_are_reported() {
        let problems = networking("  podSubnet: 10.96.0.0/12\n  serviceSubnet: 10.100.0.0/16\n");
        assert_eq!(
            problems,
            [
                "networking.serviceSubnet: 10.100.0.0/16 overlaps podSubnet 10.96.0.0/12; pick \
              ranges that do not overlap (the defaults are 10.244.0.0/16 and 10.96.0.0/16)"
            ]
        );
        let dual = networking(
            "  ipFamily: dual
  podSubnet: 10.244.0.0/16,fd00::/8
  serviceSubnet: 10.96.0.0/16,fd00:10:96::/112
",
        );
        assert_eq!(dual.len(), 1, "{dual:?}");
        assert!(dual[0].contains("fd00:10:96::/112 overlaps podSubnet fd00::/8"));
    }

    #[test]
    fn bad_cidrs_are_reported() {
        let problems = networking("  podSubnet: 10.244.0.0\n  serviceSubnet: 10.96.0.0/33\n");
        assert_eq!(
            problems,
            [
                "networking.podSubnet: \"10.244.0.0\" is not a CIDR (an address and prefix \
                 length, e.g. 10.244.0.0/16)",
                "networking.serviceSubnet: \"10.96.0.0/33\" has prefix length 33, more than \
                 the 32 bits of the address",
            ]
        );
    }

    #[test]
    fn subnets_must_match_the_ip_family() {
        let v6_in_v4 = networking("  podSubnet: fd00::/56\n");
        assert_eq!(v6_in_v4.len(), 1);
        assert!(v6_in_v4[0].starts_with(
            "networking.podSubnet: \"fd00::/56\" does not fit ipFamily ipv4: expected one IPv4 \
             range, e.g. 10.244.0.0/16"
        ));
        let two_in_v4 = networking("  serviceSubnet: 10.96.0.0/16,fd00::/112\n");
        assert!(
            two_in_v4[0].contains("does not fit ipFamily ipv4"),
            "{two_in_v4:?}"
        );

        let v4_in_v6 = networking("  ipFamily: ipv6\n  serviceSubnet: 10.96.0.0/16\n");
        assert!(v4_in_v6[0].contains("expected one IPv6 range, e.g. fd00:10:96::/112"));

        let single_in_dual = networking("  ipFamily: dual\n  podSubnet: 10.244.0.0/16\n");
        assert_eq!(
            single_in_dual,
            [
                "networking.podSubnet: \"10.244.0.0/16\" does not fit ipFamily dual: expected one \
              IPv4 and one IPv6 range, comma-separated, e.g. 10.244.0.0/16,fd00:10:244::/56"
            ]
        );
        let two_v4_in_dual =
            networking("  ipFamily: dual\n  podSubnet: 10.244.0.0/16,10.245.0.0/16\n");
        assert_eq!(two_v4_in_dual.len(), 1);
    }

    #[test]
    fn api_server_port_and_address_are_checked() {
        assert_eq!(
            networking("  apiServerPort: -1\n"),
            ["networking.apiServerPort: -1 is out of range 0-65535 (0 picks a free port)"]
        );
        assert_eq!(
            networking("  apiServerPort: 65536\n"),
            ["networking.apiServerPort: 65536 is out of range 0-65535 (0 picks a free port)"]
        );
        assert_eq!(
            networking("  apiServerAddress: localhost\n"),
            [
                "networking.apiServerAddress: \"localhost\" is not an IP address; use e.g. \
              127.0.0.1 (or ::1 for IPv6)"
            ]
        );
    }

    #[test]
    fn empty_dns_search_entries_are_reported() {
        assert_eq!(
            networking("  dnsSearch: [\"\"]\n"),
            ["networking.dnsSearch: has an empty entry"]
        );
    }
}
