//! The cluster's LoadBalancer address pool and the table of who holds which address.
//!
//! kindred gives every cluster its own block of the `kindred` network (chosen at create time,
//! see `provider::network`), so two clusters never hand out the same address. Inside a cluster
//! the table lives in a ConfigMap that every agent reads and writes with optimistic concurrency
//! (the resourceVersion): two agents allocating at once cannot both win an address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Cidr;

/// A block of IPv4 addresses: every address of it is usable (kindred picks blocks that hold
/// neither the network's own address nor its broadcast address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    first: u32,
    size: u32,
    cidr: Cidr,
}

impl Pool {
    pub fn parse(text: &str) -> Result<Pool, String> {
        let cidr: Cidr = text.trim().parse()?;
        let std::net::IpAddr::V4(net) = cidr.network() else {
            return Err(format!("the LoadBalancer pool {cidr} is not IPv4"));
        };
        Ok(Pool {
            first: u32::from(net),
            size: 1u32 << (32 - cidr.prefix()),
            cidr,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n >= self.first && n - self.first < self.size
    }

    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (self.first..self.first + self.size).map(Ipv4Addr::from)
    }

    pub fn len(&self) -> usize {
        self.size as usize
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cidr.fmt(f)
    }
}

/// The IPv6 twin of the pool (clusters with IPv6): a block of as many IPv6 addresses, the n-th
/// paired with the pool's n-th IPv4 address (kindred derives it from the IPv4 block as it
/// derives node addresses, see `NetworkAddressing::ipv6_for`). The table keeps IPv4 slots only;
/// a Service's IPv6 address is its slot's twin, so both families share one allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    first: u128,
    size: u128,
    cidr: Cidr,
}

impl Pool6 {
    /// Parses the block and checks it pairs with `v4` (the same number of addresses).
    pub fn parse(text: &str, v4: &Pool) -> Result<Pool6, String> {
        let cidr: Cidr = text.trim().parse()?;
        let IpAddr::V6(net) = cidr.network() else {
            return Err(format!("the IPv6 LoadBalancer pool {cidr} is not IPv6"));
        };
        let size = 1u128 << (128 - u32::from(cidr.prefix()));
        if size != u128::from(v4.size) {
            return Err(format!(
                "the IPv6 LoadBalancer pool {cidr} does not pair with {v4} (sizes differ)"
            ));
        }
        Ok(Pool6 {
            first: u128::from(net),
            size,
            cidr,
        })
    }

    /// The IPv6 address paired with the pool's `ip`.
    pub fn twin(&self, v4: &Pool, ip: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.first + u128::from(u32::from(ip) - v4.first))
    }

    /// The pool's IPv4 address paired with `ip`, if `ip` is in this block.
    pub fn slot(&self, v4: &Pool, ip: Ipv6Addr) -> Option<Ipv4Addr> {
        let offset = u128::from(ip).checked_sub(self.first)?;
        (offset < self.size).then(|| Ipv4Addr::from(v4.first + offset as u32))
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip)
            .checked_sub(self.first)
            .is_some_and(|o| o < self.size)
    }
}

impl std::fmt::Display for Pool6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cidr.fmt(f)
    }
}

/// The addresses a Service holding `slot` shows, in the order of its `spec.ipFamilies` (none
/// listed: IPv4): the slot for IPv4, its twin for IPv6 when the cluster has an IPv6 pool.
pub fn addresses_for(
    families: &[String],
    v4: &Pool,
    v6: Option<&Pool6>,
    slot: Ipv4Addr,
) -> Vec<IpAddr> {
    if families.is_empty() {
        return vec![IpAddr::V4(slot)];
    }
    families
        .iter()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpAddr::V4(slot)),
            "IPv6" => v6.map(|p| IpAddr::V6(p.twin(v4, slot))),
            _ => None,
        })
        .collect()
}

/// Who holds an address: the Service by namespace, name and uid (a Service deleted and made
/// again under the same name is another holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Holder {
    /// `namespace/name/uid`, as stored in the table.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.name, self.uid)
    }

    pub fn decode(text: &str) -> Option<Holder> {
        let mut parts = text.splitn(3, '/');
        let holder = Holder {
            namespace: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
            uid: parts.next()?.to_string(),
        };
        (!holder.uid.is_empty()).then_some(holder)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Address -> holder, as the ConfigMap's data stores it (keys are addresses).
pub type Table = BTreeMap<Ipv4Addr, Holder>;

/// Reads the ConfigMap's data; entries that do not parse are dropped (and so freed on the next
/// write): the table is kindred's own, nothing else writes it.
pub fn decode_table(data: &BTreeMap<String, String>) -> Table {
    data.iter()
        .filter_map(|(ip, holder)| Some((ip.parse().ok()?, Holder::decode(holder)?)))
        .collect()
}

pub fn encode_table(table: &Table) -> BTreeMap<String, String> {
    table
        .iter()
        .map(|(ip, holder)| (ip.to_string(), holder.encode()))
        .collect()
}

/// Why a Service gets no address; the message names the reason and the way out, and becomes
/// the Event on the Service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("spec.loadBalancerIP {0:?} is not an IPv4 address")]
    Invalid(String),
    #[error(
        "spec.loadBalancerIP {ip} is outside this cluster's LoadBalancer pool {pool}; \
         ask for an address in the pool or leave loadBalancerIP empty"
    )]
    OutsidePool { ip: Ipv4Addr, pool: String },
    #[error(
        "spec.loadBalancerIP {ip} is already held by Service {holder}; ask for another \
         address or leave loadBalancerIP empty"
    )]
    Taken { ip: Ipv4Addr, holder: String },
    #[error(
        "the LoadBalancer pool {pool} is exhausted (all {size} addresses are held); delete a \
         LoadBalancer Service or change one's type to free an address"
    )]
    Exhausted { pool: String, size: usize },
    #[error(
        "the Service is IPv6-only (spec.ipFamilies {families:?}) and this cluster's \
         LoadBalancer pool is IPv4 only (a cluster with IPv6 made by an older kindred): set \
         ipFamilyPolicy: PreferDualStack, reach the Service through a NodePort, or recreate \
         the cluster"
    )]
    Ipv6Only { families: Vec<String> },
}

impl AllocError {
    /// The Event's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::Invalid(_) => "InvalidLoadBalancerIP",
            AllocError::OutsidePool { .. } => "LoadBalancerIPOutsidePool",
            AllocError::Taken { .. } => "LoadBalancerIPTaken",
            AllocError::Exhausted { .. } => "PoolExhausted",
            AllocError::Ipv6Only { .. } => "IPFamilyNotSupported",
        }
    }
}

/// Refuses an IPv6-only Service when the cluster has no IPv6 pool: an IPv4 address in its
/// status would be one kube-proxy never programs.
pub fn check_families(families: &[String], has_v6: bool) -> Result<(), AllocError> {
    if has_v6 || families.is_empty() || families.iter().any(|f| f == "IPv4") {
        return Ok(());
    }
    Err(AllocError::Ipv6Only {
        families: families.to_vec(),
    })
}

/// The address `holder` should have: the one it asks for (`spec.loadBalancerIP`), else the one
/// it already holds in the table, else the one its status shows (the table was lost, e.g.
/// deleted by hand), else the lowest free one. The caller records the result in the table,
/// freeing any other address the holder had there.
pub fn choose(
    pool: &Pool,
    table: &Table,
    holder: &Holder,
    requested: Option<&str>,
    in_status: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, AllocError> {
    let taken_by_other = |ip: Ipv4Addr| table.get(&ip).filter(|h| h.uid != holder.uid);
    if let Some(text) = requested.map(str::trim).filter(|t| !t.is_empty()) {
        let ip: Ipv4Addr = text
            .parse()
            .map_err(|_| AllocError::Invalid(text.to_string()))?;
        if !pool.contains(ip) {
            return Err(AllocError::OutsidePool {
                ip,
                pool: pool.to_string(),
            });
        }
        if let Some(other) = taken_by_other(ip) {
            return Err(AllocError::Taken {
                ip,
                holder: other.to_string(),
            });
        }
        return Ok(ip);
    }
    if let Some((ip, _)) = table
        .iter()
        .find(|(ip, h)| h.uid == holder.uid && pool.contains(**ip))
    {
        return Ok(*ip);
    }
    if let Some(ip) = in_status.filter(|ip| pool.contains(*ip) && taken_by_other(*ip).is_none()) {
        return Ok(ip);
    }
    pool.addresses()
        .find(|ip| !table.contains_key(ip))
        .ok_or(AllocError::Exhausted {
            pool: pool.to_string(),
            size: pool.len(),
        })
}

/// Records `ip` for `holder` and drops any other address it held. Returns whether the table
/// changed (so an unchanged table is not written).
pub fn assign(table: &mut Table, holder: &Holder, ip: Ipv4Addr) -> bool {
    let before = table.clone();
    table.retain(|_, h| h.uid != holder.uid);
    table.insert(ip, holder.clone());
    *table != before
}

/// Frees every address `uid` holds. Returns whether the table changed.
pub fn release(table: &mut Table, uid: &str) -> bool {
    let before = table.len();
    table.retain(|_, h| h.uid != uid);
    table.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(name: &str) -> Holder {
        Holder {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_lowest_free_address_goes_first_and_a_holder_keeps_its_own() {
        let pool = Pool::parse("172.18.255.224/30").unwrap();
        assert_eq!(pool.len(), 4);
        let mut table = Table::new();
        let a = choose(&pool, &table, &holder("a"), None, None).unwrap();
        assert_eq!(a, ip("172.18.255.224"));
        assert!(assign(&mut table, &holder("a"), a));
        let b = choose(&pool, &table, &holder("b"), None, None).unwrap();
        assert_eq!(b, ip("172.18.255.225"));
        assert!(assign(&mut table, &holder("b"), b));
        // Asking again changes nothing.
        assert_eq!(choose(&pool, &table, &holder("a"), None, None), Ok(a));
        assert!(!assign(&mut table, &holder("a"), a));
        // Freed addresses are handed out again.
        assert!(release(&mut table, "uid-a"));
        assert!(!release(&mut table, "uid-a"));
        assert_eq!(choose(&pool, &table, &holder("c"), None, None), Ok(a));
    }

    #[test]
    fn an_exhausted_pool_says_so() {
        let pool = Pool::parse("10.0.0.8/31").unwrap();
        let mut table = Table::new();
        for name in ["a", "b"] {
            let got = choose(&pool, &table, &holder(name), None, None).unwrap();
            assign(&mut table, &holder(name), got);
        }
        let err = choose(&pool, &table, &holder("c"), None, None).unwrap_err();
        assert_eq!(err.reason(), "PoolExhausted");
        assert!(
            err.to_string().contains("10.0.0.8/31 is exhausted (all 2"),
            "{err}"
        );
        // A holder already in the table still gets its address.
        assert_eq!(
            choose(&pool, &table, &holder("b"), None, None),
            Ok(ip("10.0.0.9"))
        );
    }

    #[test]
    fn a_requested_address_must_be_in_the_pool_and_free() {
        let pool = Pool::parse("172.18.255.224/27").unwrap();
        let mut table = Table::new();
        let want = Some("172.18.255.230");
        assert_eq!(
            choose(&pool, &table, &holder("a"), want, None),
            Ok(ip("172.18.255.230"))
        );
        assign(&mut table, &holder("a"), ip("172.18.255.230"));
        let err = choose(&pool, &table, &holder("b"), want, None).unwrap_err();
        assert_eq!(err.reason(), "LoadBalancerIPTaken");
        assert!(
            err.to_string().contains("held by Service default/a"),
            "{err}"
        );
        let err = choose(&pool, &table, &holder("b"), Some("10.1.2.3"), None).unwrap_err();
        assert_eq!(
            err,
            AllocError::OutsidePool {
                ip: ip("10.1.2.3"),
                pool: "172.18.255.224/27".into()
            }
        );
        let err = choose(&pool, &table, &holder("b"), Some("nope"), None).unwrap_err();
        assert_eq!(err.reason(), "InvalidLoadBalancerIP");
        // Changing the requested address moves the holder.
        let moved = choose(&pool, &table, &holder("a"), Some("172.18.255.231"), None).unwrap();
        assert!(assign(&mut table, &holder("a"), moved));
        assert_eq!(table.len(), 1);
        assert_eq!(table.keys().next(), Some(&ip("172.18.255.231")));
    }

    #[test]
    fn the_status_address_is_kept_when_the_table_was_lost() {
        let pool = Pool::parse("172.18.255.224/27").unwrap();
        let table = Table::new();
        let kept = Some(ip("172.18.255.240"));
        assert_eq!(
            choose(&pool, &table, &holder("a"), None, kept),
            Ok(ip("172.18.255.240"))
        );
        // Not when it left the pool or another holder has it meanwhile.
        let outside = Some(ip("172.18.0.5"));
        assert_eq!(
            choose(&pool, &table, &holder("a"), None, outside),
            Ok(ip("172.18.255.224"))
        );
        let mut table = Table::new();
        assign(&mut table, &holder("b"), ip("172.18.255.240"));
        assert_eq!(
            choose(&pool, &table, &holder("a"), None, kept),
            Ok(ip("172.18.255.224"))
        );
    }

    #[test]
    fn the_table_round_trips_through_configmap_data() {
        let mut table = Table::new();
        assign(&mut table, &holder("a"), ip("172.18.255.224"));
        let data = encode_table(&table);
        assert_eq!(data["172.18.255.224"], "default/a/uid-a");
        assert_eq!(decode_table(&data), table);
        let mut junk = data.clone();
        junk.insert("not-an-ip".into(), "x/y/z".into());
        junk.insert("172.18.255.225".into(), "no-uid".into());
        assert_eq!(decode_table(&junk), table);
    }

    #[test]
    fn pools_are_ipv4_blocks() {
        assert!(Pool::parse("fd00::/120").is_err());
        let pool = Pool::parse("192.168.15.224/27").unwrap();
        assert!(pool.contains(ip("192.168.15.255")));
        assert!(!pool.contains(ip("192.168.15.223")));
        assert_eq!(pool.addresses().count(), 32);
    }

    #[test]
    fn ipv6_only_services_are_refused_without_an_ipv6_pool() {
        assert_eq!(check_families(&[], false), Ok(()));
        assert_eq!(
            check_families(&["IPv6".into(), "IPv4".into()], false),
            Ok(())
        );
        let err = check_families(&["IPv6".into()], false).unwrap_err();
        assert_eq!(err.reason(), "IPFamilyNotSupported");
        assert!(err.to_string().contains("PreferDualStack"), "{err}");
        assert_eq!(check_families(&["IPv6".into()], true), Ok(()));
    }

    #[test]
    fn the_ipv6_pool_pairs_address_by_address_with_the_ipv4_one() {
        let v4 = Pool::parse("172.18.255.224/27").unwrap();
        let v6 = Pool6::parse("fc00:6b69:6e64:7265:8000::ffe0/123", &v4).unwrap();
        assert_eq!(
            v6.twin(&v4, ip("172.18.255.224")),
            "fc00:6b69:6e64:7265:8000::ffe0"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        let last: Ipv6Addr = "fc00:6b69:6e64:7265:8000::ffff".parse().unwrap();
        assert_eq!(v6.twin(&v4, ip("172.18.255.255")), last);
        assert_eq!(v6.slot(&v4, last), Some(ip("172.18.255.255")));
        assert!(v6.contains(last));
        let outside: Ipv6Addr = "fc00:6b69:6e64:7265:8000::1:0".parse().unwrap();
        assert_eq!(v6.slot(&v4, outside), None);
        assert!(!v6.contains(outside));
        // A block of another size pairs with nothing; IPv4 is not an IPv6 pool.
        assert!(Pool6::parse("fc00::/120", &v4).is_err());
        assert!(Pool6::parse("10.0.0.0/27", &v4).is_err());
    }

    #[test]
    fn a_service_shows_one_address_per_family_in_its_order() {
        let v4 = Pool::parse("172.18.255.224/27").unwrap();
        let v6 = Pool6::parse("fc00::ffe0/123", &v4).unwrap();
        let slot = ip("172.18.255.225");
        let fam = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let six: IpAddr = "fc00::ffe1".parse().unwrap();
        assert_eq!(
            addresses_for(&[], &v4, Some(&v6), slot),
            vec![IpAddr::V4(slot)]
        );
        assert_eq!(
            addresses_for(&fam(&["IPv6"]), &v4, Some(&v6), slot),
            vec![six]
        );
        assert_eq!(
            addresses_for(&fam(&["IPv6", "IPv4"]), &v4, Some(&v6), slot),
            vec![six, IpAddr::V4(slot)]
        );
        // Without an IPv6 pool a dual-stack Service gets its IPv4 address only.
        assert_eq!(
            addresses_for(&fam(&["IPv4", "IPv6"]), &v4, None, slot),
            vec![IpAddr::V4(slot)]
        );
    }
}
