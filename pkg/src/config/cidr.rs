//! IP ranges in CIDR notation (`10.244.0.0/16`, `fd00:10:244::/56`), just enough to check
//! subnets: parse, tell the family, test for overlap.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: its address with the host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address (host bits cleared, as Go's `net.ParseCIDR` does, so
    /// `10.244.1.0/16` means `10.244.0.0/16`).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.is_ipv4() && masked(addr, self.prefix) == bits(self.network)
    }

    /// Whether the two ranges share any address. Ranges of different families never do.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.is_ipv4() != other.is_ipv4() {
            return false;
        }
        // Two aligned ranges overlap exactly when the shorter prefix contains the other's start.
        let prefix = self.prefix.min(other.prefix);
        masked(self.network, prefix) == masked(other.network, prefix)
    }

    /// Parses a comma-separated list, as in dual-stack `podSubnet` values.
    pub fn parse_list(list: &str) -> Result<Vec<Cidr>, String> {
        list.split(',').map(str::parse).collect()
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let invalid =
            || format!("\"{s}\" is not a CIDR (an address and prefix length, e.g. 10.244.0.0/16)");
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        // Digits only: u8's parser would also take "+16".
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > width(addr) {
            return Err(format!(
                "\"{s}\" has prefix length {prefix}, more than the {} bits of the address",
                width(addr)
            ));
        }
        let network = match addr {
            IpAddr::V4(_) => IpAddr::from((masked(addr, prefix) as u32).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(masked(addr, prefix).to_be_bytes()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn width(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

/// The address with everything after the first `prefix` bits cleared.
fn masked(addr: IpAddr, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let host_bits = width(addr) - prefix;
    (bits(addr) >> host_bits) << host_bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_both_families_and_clears_host_bits() {
        let v4 = cidr("10.244.1.7/16");
        assert!(v4.is_ipv4());
        assert_eq!(v4.to_string(), "10.244.0.0/16");
        let v6 = cidr("fd00:10:244::1/56");
        assert!(!v6.is_ipv4());
        assert_eq!(v6.to_string(), "fd00:10:244::/56");
        assert_eq!(cidr("0.0.0.0/0").prefix(), 0);
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("10.1.2.3/32").to_string(), "10.1.2.3/32");
    }

    #[test]
    fn rejects_malformed_ranges() {
        for bad in [
            "10.244.0.0",
            "10.244.0.0/",
            "10.244.0.0/33",
            "fd00::/129",
            "10.244.0/16",
            "010.244.0.0/16",
            "10.244.0.0/+16",
            " 10.244.0.0/16",
            "",
            "banana/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} should not parse");
        }
        let msg = "10.0.0.0/40".parse::<Cidr>().unwrap_err();
        assert!(msg.contains("prefix length 40"), "{msg}");
    }

    #[test]
    fn detects_overlap() {
        assert!(cidr("10.96.0.0/12").overlaps(&cidr("10.100.0.0/16")));
        assert!(cidr("10.100.0.0/16").overlaps(&cidr("10.96.0.0/12")));
        assert!(cidr("10.0.0.0/8").overlaps(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.244.0.0/16").overlaps(&cidr("10.96.0.0/16")));
        assert!(!cidr("10.244.0.0/16").overlaps(&cidr("fd00::/8")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("192.168.0.0/24")));
        assert!(cidr("fd00:10::/32").overlaps(&cidr("fd00:10:96::/112")));
        assert!(!cidr("fd00:10:244::/56").overlaps(&cidr("fd00:10:96::/112")));
    }

    #[test]
    fn contains_addresses_of_its_family_only() {
        let net = cidr("10.96.0.0/16");
        assert!(net.contains("10.96.0.1".parse().unwrap()));
        assert!(!net.contains("10.97.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
    }

    #[test]
    fn parses_lists() {
        let both = Cidr::parse_list("10.244.0.0/16,fd00:10:244::/56").unwrap();
        assert_eq!(both.len(), 2);
        assert!(Cidr::parse_list("10.244.0.0/16, fd00:10:244::/56").is_err());
    }
}
