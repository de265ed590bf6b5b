//! The shared Docker network and the fixed addresses of node containers.
//!
//! Nodes keep their IPv4 address for life, so a cluster survives `docker restart`, a daemon
//! restart or a host reboot (whatever order containers start in): kubelet's node IP, etcd's
//! peer URLs and the API server certificate all name that address. Docker only honours a
//! fixed address on a network with a subnet the user configured, and could hand a stopped
//! node's address to another container, so kindred creates the network with an explicit
//! subnet whose lower half is Docker's dynamic pool and takes fixed addresses from the upper
//! half only.
//!
//! Each cluster also gets a block of the upper half for its LoadBalancer Services (see
//! `agent::service_lb`), taken from the top down while nodes take addresses from the bottom up.
//! The block is recorded in a label on the cluster's node containers, so every kindred process
//! sees which blocks are taken: node addresses avoid them, new blocks avoid them, and a block is
//! free again when its cluster's containers are gone.
//!
//! Made for an IPv6 or dual-stack cluster, the network also has an IPv6 subnet (a /64 of
//! unique local addresses), split the same way; IPv4 clusters can share it. A node's fixed
//! IPv6 address is derived from its IPv4 one (the same offset into the upper half), so it
//! needs no bookkeeping of its own and is as unique and as stable as the IPv4 address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ProviderError;
use crate::config::Cidr;

/// Label on a cluster's node containers naming its LoadBalancer address block.
pub const LB_POOL_LABEL: &str = "io.kindred.lb-pool";
/// A cluster's LoadBalancer block: a /27, 32 addresses.
pub const LB_POOL_PREFIX: u8 = 27;

/// The bridge driver's MTU option.
pub(super) const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// Subnets tried for a new network, in order: Docker's usual private ranges first.
fn candidate_subnets() -> impl Iterator<Item = Cidr> {
    let b172 = (18..=31).map(|b| format!("172.{b}.0.0/16"));
    let b192 = (0..16).map(|c| format!("192.168.{}.0/20", c * 16));
    b172.chain(b192)
        .map(|s| s.parse().expect("candidate subnets are valid"))
}

/// IPv6 subnets tried for a new network, in order: /64s of the unique local range, the first
/// spelling "kindre" in ASCII (6b69 6e64 7265), the next ones counting up from it.
fn candidate_subnets_v6() -> impl Iterator<Item = Cidr> {
    (0..16u32)
        .map(|i| format!("fc00:6b69:6e64:{:x}::/64", 0x7265 + i))
        .map(|s| s.parse().expect("candidate subnets are valid"))
}

/// How a network hands out addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddressing {
    pub subnet: Cidr,
    /// The dynamic pool; `None` on a network kindred did not create with fixed addresses.
    pub ip_range: Option<Cidr>,
    /// The IPv6 subnet, when the network has one whose lower half is Docker's dynamic pool
    /// (so that the upper half is free for derived node addresses).
    pub subnet_v6: Option<Cidr>,
}

impl NetworkAddressing {
    /// Subnet split in two: the lower half for Docker, the upper half for kindred's nodes.
    pub(super) fn for_subnet(subnet: Cidr) -> NetworkAddressing {
        NetworkAddressing {
            subnet,
            ip_range: Some(lower_half(&subnet)),
            subnet_v6: None,
        }
    }

    /// A node's fixed IPv6 address: the offset of its IPv4 address into the IPv4 subnet,
    /// added to the start of the IPv6 subnet's upper half. `None` without an IPv6 subnet.
    pub fn ipv6_for(&self, ipv4: Ipv4Addr) -> Option<Ipv6Addr> {
        let (IpAddr::V4(net4), IpAddr::V6(net6)) =
            (self.subnet.network(), self.subnet_v6?.network())
        else {
            return None;
        };
        let offset = u32::from(ipv4).checked_sub(u32::from(net4))?;
        let half = 1u128 << (127 - u32::from(self.subnet_v6?.prefix()));
        Some(Ipv6Addr::from(u128::from(net6) + half + u128::from(offset)))
    }

    /// The IPv6 twin of an IPv4 block of the subnet (a LoadBalancer pool): the block of as
    /// many IPv6 addresses whose n-th is [`NetworkAddressing::ipv6_for`] of the block's n-th.
    /// `None` without an IPv6 subnet.
    pub fn ipv6_block_for(&self, block: &Cidr) -> Option<Cidr> {
        let IpAddr::V4(first) = block.network() else {
            return None;
        };
        let start = self.ipv6_for(first)?;
        format!("{start}/{}", 128 - (32 - u32::from(block.prefix())))
            .parse()
            .ok()
    }

    /// Fixed addresses are safe only when Docker's dynamic pool excludes them.
    pub fn supports_fixed_addresses(&self) -> bool {
        self.ip_range
            .is_some_and(|r| r.prefix() > self.subnet.prefix())
    }

    /// The `count` lowest addresses of the upper half not in `used`.
    pub fn free_addresses(
        &self,
        used: &BTreeSet<Ipv4Addr>,
        count: usize,
    ) -> Result<Vec<Ipv4Addr>, ProviderError> {
        let std::net::IpAddr::V4(net) = self.subnet.network() else {
            return Err(ProviderError::Other(
                "the kindred network is not IPv4".into(),
            ));
        };
        let size = 1u32 << (32 - self.subnet.prefix());
        // From the second address of the upper half: an address ending in .0 confuses people.
        let start = u32::from(net) + size / 2 + 1;
        // The last address is the broadcast address.
        let free: Vec<Ipv4Addr> = (start..u32::from(net) + size - 1)
            .map(Ipv4Addr::from)
            .filter(|ip| !used.contains(ip))
            .take(count)
            .collect();
        if free.len() < count {
            return Err(ProviderError::Other(format!(
                "the kindred network {} has no {count} free node addresses left; delete unused clusters",
                self.subnet
            )));
        }
        Ok(free)
    }
}

impl NetworkAddressing {
    /// The highest /27 of the upper half that holds no address in `used` (which includes the
    /// other clusters' blocks, see [`Docker::used_addresses`]), nor the network's broadcast
    /// address, nor the first addresses of the upper half where nodes start.
    pub fn free_lb_pool(&self, used: &BTreeSet<Ipv4Addr>) -> Result<Cidr, ProviderError> {
        let std::net::IpAddr::V4(net) = self.subnet.network() else {
            return Err(ProviderError::Other(
                "the kindred network is not IPv4".into(),
            ));
        };
        let size = 1u64 << (32 - self.subnet.prefix());
        let block = 1u64 << (32 - LB_POOL_PREFIX);
        let net = u64::from(u32::from(net));
        let (upper, end) = (net + size / 2, net + size);
        let mut start = end.saturating_sub(block);
        while start > upper && start >= block {
            // Not the top block: it holds the broadcast address.
            let below_broadcast = start + block < end;
            let mut addresses = (start..start + block).map(|n| Ipv4Addr::from(n as u32));
            if below_broadcast && !addresses.any(|ip| used.contains(&ip)) {
                return Ok(format!("{}/{LB_POOL_PREFIX}", Ipv4Addr::from(start as u32))
                    .parse()
                    .expect("a valid block"));
            }
            start -= block;
        }
        Err(ProviderError::Other(format!(
            "the kindred network {} has no free block of {block} addresses for LoadBalancer \
             Services left; delete unused clusters",
            self.subnet
        )))
    }
}

/// The lower half of a subnet (Docker's dynamic pool).
pub(super) fn lower_half(subnet: &Cidr) -> Cidr {
    format!("{}/{}", subnet.network(), subnet.prefix() + 1)
        .parse()
        .expect("half of a valid subnet")
}

/// Every address of an IPv4 block.
pub fn block_addresses(block: &Cidr) -> Vec<Ipv4Addr> {
    let std::net::IpAddr::V4(net) = block.network() else {
        return Vec::new();
    };
    let start = u64::from(u32::from(net));
    let size = 1u64 << (32 - block.prefix());
    (start..start + size)
        .map(|n| Ipv4Addr::from(n as u32))
        .collect()
}

/// Picks the first candidate subnet overlapping neither another Docker network nor a route
/// of this host.
pub(super) fn pick_subnet(taken: &[Cidr]) -> Option<Cidr> {
    candidate_subnets().find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// Picks the first candidate IPv6 subnet overlapping no other network or route.
pub(super) fn pick_subnet_v6(taken: &[Cidr]) -> Option<Cidr> {
    candidate_subnets_v6().find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// IPv6 destinations of this host's routes (default route and link-local excluded), from
/// /proc/net/ipv6_route.
pub(super) fn host_routes_v6() -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let addr = Ipv6Addr::from(dest);
            let link_local = (addr.segments()[0] & 0xffc0) == 0xfe80;
            let multicast = addr.segments()[0] & 0xff00 == 0xff00;
            (prefix != 0 && !link_local && !multicast)
                .then(|| format!("{addr}/{prefix}").parse().ok())?
        })
        .collect()
}

/// IPv4 destinations of this host's routes (default route excluded), from /proc/net/route.
pub(super) fn host_routes() -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Addresses are little-endian hex.
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            (mask != 0).then(|| {
                format!("{}/{}", Ipv4Addr::from(dest), mask.count_ones())
                    .parse()
                    .ok()
            })?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_avoids_networks_and_routes() {
        assert_eq!(pick_subnet(&[]), Some(cidr("172.18.0.0/16")));
        let taken = [
            cidr("172.17.0.0/16"),
            cidr("172.18.0.0/16"),
            cidr("172.19.5.0/24"),
        ];
        assert_eq!(pick_subnet(&taken), Some(cidr("172.20.0.0/16")));
        assert_eq!(
            pick_subnet(&[cidr("172.16.0.0/12")]),
            Some(cidr("192.168.0.0/20"))
        );
    }

    #[test]
    fn fixed_addresses_come_from_the_upper_half() {
        let a = NetworkAddressing::for_subnet(cidr("172.20.0.0/16"));
        assert_eq!(a.ip_range, Some(cidr("172.20.0.0/17")));
        assert!(a.supports_fixed_addresses());
        let used = BTreeSet::from(["172.20.128.2".parse().unwrap()]);
        let ips = a.free_addresses(&used, 3).unwrap();
        assert_eq!(
            ips,
            ["172.20.128.1", "172.20.128.3", "172.20.128.4"]
                .map(|s| s.parse::<Ipv4Addr>().unwrap())
        );
    }

    #[test]
    fn a_network_without_a_dynamic_pool_takes_no_fixed_addresses() {
        let a = NetworkAddressing {
            subnet: cidr("172.25.0.0/16"),
            ip_range: None,
            subnet_v6: None,
        };
        assert!(!a.supports_fixed_addresses());
    }

    #[test]
    fn load_balancer_blocks_come_from_the_top_and_avoid_what_is_used() {
        let a = NetworkAddressing::for_subnet(cidr("172.20.0.0/16"));
        let mut used = BTreeSet::from(["172.20.128.1".parse().unwrap()]);
        // The top block holds the broadcast address: the one below it is first.
        let first = a.free_lb_pool(&used).unwrap();
        assert_eq!(first, cidr("172.20.255.192/27"));
        used.extend(block_addresses(&first));
        assert_eq!(block_addresses(&first).len(), 32);
        // A second cluster gets the next block down; a node address inside a block skips it.
        used.insert("172.20.255.170".parse().unwrap());
        assert_eq!(a.free_lb_pool(&used).unwrap(), cidr("172.20.255.128/27"));
        // Node addresses avoid the blocks: they are in `used`.
        let nodes = a.free_addresses(&used, 2).unwrap();
        assert!(nodes.iter().all(|ip| !first.contains((*ip).into())));
    }

    #[test]
    fn a_network_too_small_for_a_block_says_so() {
        let a = NetworkAddressing::for_subnet(cidr("192.168.0.0/26"));
        let err = a.free_lb_pool(&BTreeSet::new()).unwrap_err().to_string();
        assert!(err.contains("no free block of 32 addresses"), "{err}");
        // A /20 (the smallest candidate subnet) has room for many clusters.
        let a = NetworkAddressing::for_subnet(cidr("192.168.16.0/20"));
        assert_eq!(
            a.free_lb_pool(&BTreeSet::new()).unwrap(),
            cidr("192.168.31.192/27")
        );
    }

    #[test]
    fn a_full_range_is_an_error() {
        let a = NetworkAddressing::for_subnet(cidr("192.168.0.0/29"));
        // Upper half of a /29 after its first address: .5 .6 (.7 is broadcast).
        assert_eq!(a.free_addresses(&BTreeSet::new(), 2).unwrap().len(), 2);
        assert!(a.free_addresses(&BTreeSet::new(), 3).is_err());
    }

    #[test]
    fn ipv6_addresses_mirror_ipv4_offsets_in_the_upper_half() {
        let mut a = NetworkAddressing::for_subnet(cidr("172.20.0.0/16"));
        let node: Ipv4Addr = "172.20.128.3".parse().unwrap();
        assert_eq!(a.ipv6_for(node), None, "no IPv6 subnet, no IPv6 address");
        a.subnet_v6 = Some(cidr("fc00:6b69:6e64:7265::/64"));
        assert_eq!(
            a.ipv6_for(node),
            Some("fc00:6b69:6e64:7265:8000::8003".parse().unwrap())
        );
        // Distinct IPv4 addresses give distinct IPv6 ones, all above Docker's pool.
        let pool = lower_half(&cidr("fc00:6b69:6e64:7265::/64"));
        assert_eq!(pool, cidr("fc00:6b69:6e64:7265::/65"));
        let other = a.ipv6_for("172.20.255.254".parse().unwrap()).unwrap();
        assert_eq!(
            other,
            "fc00:6b69:6e64:7265:8000::fffe"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert!(!pool.contains(other.into()));
        // An address outside the IPv4 subnet has no counterpart.
        assert_eq!(a.ipv6_for("10.0.0.1".parse().unwrap()), None);
        // A LoadBalancer block's twin: as many addresses, starting at its first's twin.
        assert_eq!(
            a.ipv6_block_for(&cidr("172.20.255.224/27")),
            Some(cidr("fc00:6b69:6e64:7265:8000::ffe0/123"))
        );
        a.subnet_v6 = None;
        assert_eq!(a.ipv6_block_for(&cidr("172.20.255.224/27")), None);
    }

    #[test]
    fn ipv6_subnet_avoids_networks_and_routes() {
        assert_eq!(pick_subnet_v6(&[]), Some(cidr("fc00:6b69:6e64:7265::/64")));
        let taken = [cidr("fc00:6b69:6e64:7265::/64"), cidr("fc00::/120")];
        assert_eq!(
            pick_subnet_v6(&taken),
            Some(cidr("fc00:6b69:6e64:7266::/64"))
        );
        assert_eq!(pick_subnet_v6(&[cidr("fc00::/7")]), None);
    }
}
