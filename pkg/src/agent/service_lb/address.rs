//! The node side of answering for a Service: its address on the node's interface on the
//! `kindred` network (so the node answers ARP for it, and kube-proxy's rules, which match the
//! address, take the traffic from there), and an announcement when a node takes an address over.
//!
//! Every /32 in the pool on that interface is the agent's: the pool is the cluster's alone.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use super::pool::Pool;
use crate::agent::{run, AgentError};

/// The interface on the `kindred` network and the gateway (the Docker host's bridge address),
/// from the node's default route: `default via 172.18.0.1 dev eth0 ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub dev: String,
    pub gateway: Ipv4Addr,
}

impl Uplink {
    pub async fn find() -> Result<Uplink, AgentError> {
        let out = run("ip", &["-4", "-o", "route", "show", "default"]).await?;
        parse_default_route(&out).ok_or_else(|| {
            AgentError::Msg(format!(
                "no IPv4 default route on this node (`ip route show default`: {out:?})"
            ))
        })
    }

    /// The pool's addresses on the interface now.
    pub async fn held(&self, pool: &Pool) -> Result<BTreeSet<Ipv4Addr>, AgentError> {
        let out = run("ip", &["-4", "-o", "addr", "show", "dev", &self.dev]).await?;
        Ok(parse_addresses(&out)
            .into_iter()
            .filter(|ip| pool.contains(*ip))
            .collect())
    }

    pub async fn add(&self, ip: Ipv4Addr) -> Result<(), AgentError> {
        let cidr = format!("{ip}/32");
        run("ip", &["addr", "replace", &cidr, "dev", &self.dev]).await?;
        Ok(())
    }

    pub async fn remove(&self, ip: Ipv4Addr) -> Result<(), AgentError> {
        let cidr = format!("{ip}/32");
        run("ip", &["addr", "del", &cidr, "dev", &self.dev]).await?;
        Ok(())
    }

    /// Tells the gateway (the Docker host, the one that reaches LoadBalancer addresses across
    /// the bridge) that `ip` is now here, so traffic follows a takeover at once instead of
    /// after its ARP entry for the old node goes stale. The node forgets the gateway's MAC and
    /// sends a datagram from `ip` to it: resolving the gateway again is an ARP request whose
    /// sender is `ip` and this node's MAC, broadcast on the bridge, and Linux updates its entry
    /// for a sender that asks for one of its own addresses. (A hand-made gratuitous ARP would
    /// need a raw packet socket, which safe Rust cannot address.)
    pub async fn announce(&self, ip: Ipv4Addr) -> Result<(), AgentError> {
        let gateway = self.gateway.to_string();
        // Absent already is fine: the point is that it is absent now.
        let _ = run("ip", &["neigh", "del", &gateway, "dev", &self.dev]).await;
        let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))
            .map_err(|e| AgentError::Msg(format!("bind {ip}: {e}")))?;
        // The discard port: nothing answers but perhaps an ICMP port unreachable.
        socket
            .send_to(b"kindred", SocketAddrV4::new(self.gateway, 9))
            .map_err(|e| AgentError::Msg(format!("announce {ip} to {gateway}: {e}")))?;
        Ok(())
    }
}

fn parse_default_route(text: &str) -> Option<Uplink> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            let at = words.iter().position(|w| *w == key)?;
            words.get(at + 1).copied()
        };
        Some(Uplink {
            gateway: after("via")?.parse().ok()?,
            dev: after("dev")?.to_string(),
        })
    })
}

/// `ip -o addr show` lines (`2: eth0    inet 172.18.255.224/32 scope global eth0 ...`) -> addresses.
fn parse_addresses(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "inet")?;
            words.get(at + 1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uplink_comes_from_the_default_route() {
        let text = "default via 172.18.0.1 dev eth0 \n";
        assert_eq!(
            parse_default_route(text),
            Some(Uplink {
                dev: "eth0".into(),
                gateway: "172.18.0.1".parse().unwrap()
            })
        );
        assert_eq!(parse_default_route(""), None);
    }

    #[test]
    fn addresses_parse_from_ip_addr_show() {
        let text = "2: eth0    inet 172.18.128.2/16 brd 172.18.255.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet 172.18.255.224/32 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        let pool = Pool::parse("172.18.255.224/27").unwrap();
        let all = parse_addresses(text);
        assert_eq!(all.len(), 2);
        let ours: Vec<_> = all.into_iter().filter(|ip| pool.contains(*ip)).collect();
        assert_eq!(ours, vec!["172.18.255.224".parse::<Ipv4Addr>().unwrap()]);
    }
}
