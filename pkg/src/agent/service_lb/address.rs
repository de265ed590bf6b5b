//! The node side of answering for a Service: its address on the node's interface on the
//! `kindred` network (so the node answers ARP for it, and kube-proxy's rules, which match the
//! address, take the traffic from there), and an announcement when a node takes an address over.
//!
//! Every /32 in the pool (and /128 in its IPv6 twin) on that interface is the agent's: the
//! pool is the cluster's alone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use super::pool::{Pool, Pool6};
use crate::agent::{run, AgentError};

/// The interface on the `kindred` network and the gateway (the Docker host's bridge address),
/// from the node's default route: `default via 172.18.0.1 dev eth0 ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub dev: String,
    pub gateway: Ipv4Addr,
    /// The IPv6 gateway, on a network with IPv6.
    pub gateway6: Option<Ipv6Addr>,
}

impl Uplink {
    pub async fn find() -> Result<Uplink, AgentError> {
        let out = run("ip", &["-4", "-o", "route", "show", "default"]).await?;
        let (dev, gateway) = parse_default_route(&out).ok_or_else(|| {
            AgentError::Msg(format!(
                "no IPv4 default route on this node (`ip route show default`: {out:?})"
            ))
        })?;
        // Without IPv6 on the node there is no route, or `ip -6` fails: no IPv6 gateway.
        let out6 = run("ip", &["-6", "-o", "route", "show", "default"])
            .await
            .unwrap_or_default();
        let gateway6 = parse_default_route(&out6).map(|(_, gw)| gw);
        Ok(Uplink {
            dev,
            gateway,
            gateway6,
        })
    }

    /// The pool's addresses (either family) on the interface now.
    pub async fn held(
        &self,
        pool: &Pool,
        pool6: Option<&Pool6>,
    ) -> Result<BTreeSet<IpAddr>, AgentError> {
        let out = run("ip", &["-o", "addr", "show", "dev", &self.dev]).await?;
        Ok(parse_addresses(&out)
            .into_iter()
            .filter(|ip| match ip {
                IpAddr::V4(v4) => pool.contains(*v4),
                IpAddr::V6(v6) => pool6.is_some_and(|p| p.contains(*v6)),
            })
            .collect())
    }

    pub async fn add(&self, ip: IpAddr) -> Result<(), AgentError> {
        let cidr = host_cidr(ip);
        let mut args = vec!["addr", "replace", &cidr, "dev", &self.dev];
        // Duplicate address detection would keep an IPv6 address unusable for a second or
        // more; the pool is the cluster's alone and the Lease makes one node its holder.
        if ip.is_ipv6() {
            args.push("nodad");
        }
        run("ip", &args).await?;
        Ok(())
    }

    pub async fn remove(&self, ip: IpAddr) -> Result<(), AgentError> {
        let cidr = host_cidr(ip);
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
    ///
    /// IPv6 works alike: the node forgets the IPv6 gateway's link-layer address, and the
    /// neighbor solicitation that resolves it again carries `ip` and this node's MAC.
    pub async fn announce(&self, ip: IpAddr) -> Result<(), AgentError> {
        let gateway: IpAddr = match ip {
            IpAddr::V4(_) => self.gateway.into(),
            IpAddr::V6(_) => match self.gateway6 {
                Some(gw) => gw.into(),
                None => return Ok(()),
            },
        };
        // Absent already is fine: the point is that it is absent now.
        let _ = run(
            "ip",
            &["neigh", "del", &gateway.to_string(), "dev", &self.dev],
        )
        .await;
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|e| AgentError::Msg(format!("bind {ip}: {e}")))?;
        // The discard port: nothing answers but perhaps an ICMP port unreachable.
        socket
            .send_to(b"kindred", SocketAddr::new(gateway, 9))
            .map_err(|e| AgentError::Msg(format!("announce {ip} to {gateway}: {e}")))?;
        Ok(())
    }
}

/// `ip` as a one-address prefix (`/32`, `/128`).
fn host_cidr(ip: IpAddr) -> String {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    format!("{ip}/{bits}")
}

/// `default via 172.18.0.1 dev eth0 ...` (either family) -> the device and the gateway.
fn parse_default_route<A: std::str::FromStr>(text: &str) -> Option<(String, A)> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            let at = words.iter().position(|w| *w == key)?;
            words.get(at + 1).copied()
        };
        Some((after("dev")?.to_string(), after("via")?.parse().ok()?))
    })
}

/// `ip -o addr show` lines (`2: eth0    inet 172.18.255.224/32 scope global eth0 ...`, and
/// `inet6 ...`) -> addresses.
fn parse_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
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
            parse_default_route::<Ipv4Addr>(text),
            Some(("eth0".into(), "172.18.0.1".parse().unwrap()))
        );
        let text6 = "default via fc00:6b69:6e64:7265::1 dev eth0 metric 1024 pref medium\n";
        assert_eq!(
            parse_default_route::<Ipv6Addr>(text6),
            Some(("eth0".into(), "fc00:6b69:6e64:7265::1".parse().unwrap()))
        );
        assert_eq!(parse_default_route::<Ipv4Addr>(""), None);
    }

    #[test]
    fn addresses_parse_from_ip_addr_show() {
        let text = "2: eth0    inet 172.18.128.2/16 brd 172.18.255.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet 172.18.255.224/32 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet6 fc00::ffe0/128 scope global nodad \\       valid_lft forever preferred_lft forever\n";
        let pool = Pool::parse("172.18.255.224/27").unwrap();
        let all = parse_addresses(text);
        assert_eq!(all.len(), 3);
        let ours: Vec<_> = all
            .iter()
            .filter(|ip| matches!(ip, IpAddr::V4(v4) if pool.contains(*v4)))
            .collect();
        assert_eq!(ours, vec![&"172.18.255.224".parse::<IpAddr>().unwrap()]);
        assert_eq!(all[2], "fc00::ffe0".parse::<IpAddr>().unwrap());
        assert_eq!(host_cidr(all[2]), "fc00::ffe0/128");
        assert_eq!(host_cidr(all[1]), "172.18.255.224/32");
    }
}
