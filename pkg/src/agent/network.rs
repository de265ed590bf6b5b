//! The pod network agent: one per node (a hostNetwork DaemonSet). From the Node objects it
//! derives, and keeps applying:
//! - this node's CNI config: ptp veths, host-local addresses from the node's PodCIDRs, portmap
//!   for hostPort — no bridge and no overlay, because every node shares one Docker network;
//! - a route to every other node's PodCIDRs via that node's address (tagged with our own route
//!   protocol number, so routes of nodes that went away are found and removed);
//! - masquerading for traffic from pods to anything outside the pod network;
//! - NetworkPolicy enforcement for the node's pods (see `super::policy`, run alongside);
//! - a guard for the service range: traffic to a service address that kube-proxy did not
//!   translate (a port the Service does not have, an address no Service holds) is refused on
//!   the node instead of being routed out of the cluster, since the range exists only inside
//!   it. (Without the guard it leaves through Docker's default route, and on a host whose
//!   network accepts every connection it even succeeds.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, WatchStreamExt};

use super::{env, run, run_with_input, AgentError, Family};

/// Route protocol number marking routes the agent owns: one that neither the kernel nor
/// iproute2's rt_protos assigns to a routing daemon.
const ROUTE_PROTO: &str = "117";
const CNI_FILE: &str = "10-kindred.conflist";
const MASQ_CHAIN: &str = "KINDRED-MASQ";
const SERVICE_GUARD_CHAIN: &str = "KINDRED-SERVICES";

pub struct NetworkAgent {
    node_name: String,
    /// The cluster's pod subnets (comma-separated as in the config), never masqueraded.
    pod_subnets: Vec<String>,
    /// The service subnets to guard; empty when kube-proxy's mode does not allow it, or the
    /// manifest predates the guard.
    service_subnets: Vec<String>,
    cni_dir: PathBuf,
}

impl NetworkAgent {
    pub fn from_env() -> Result<Self, AgentError> {
        Ok(NetworkAgent {
            node_name: env("NODE_NAME")?,
            pod_subnets: split_list(&env("POD_SUBNET")?),
            service_subnets: split_list(&std::env::var("SERVICE_SUBNET").unwrap_or_default()),
            cni_dir: std::env::var("CNI_CONFIG_DIR")
                .unwrap_or_else(|_| "/etc/cni/net.d".into())
                .into(),
        })
    }

    pub async fn run(self) -> Result<(), AgentError> {
        let client = super::client().await?;
        let nodes: Api<Node> = Api::all(client.clone());
        tracing::info!(node = %self.node_name, "pod network agent started");
        let events = Box::pin(watcher(nodes.clone(), watcher::Config::default()).default_backoff());
        let network = super::reconcile_loop(events, super::SETTLE, || self.reconcile(&nodes));
        let policy = super::policy::PolicyAgent::run(client, self.node_name.clone());
        tokio::try_join!(network, policy).map(|_| ())
    }

    async fn reconcile(&self, nodes: &Api<Node>) -> Result<(), AgentError> {
        let list = nodes.list(&ListParams::default()).await?;
        let all: Vec<NodeNet> = list.items.iter().map(NodeNet::from_node).collect();
        let Some(me) = all.iter().find(|n| n.name == self.node_name) else {
            return Err(AgentError::Msg(format!(
                "node {} is not registered yet",
                self.node_name
            )));
        };
        if me.pod_cidrs.is_empty() {
            return Err(AgentError::Msg(format!(
                "node {} has no PodCIDR yet",
                self.node_name
            )));
        }
        self.write_cni_config(&me.pod_cidrs)?;
        let desired = desired_routes(&self.node_name, &all);
        for family in [Family::V4, Family::V6] {
            self.sync_routes(family, &desired).await?;
        }
        for family in [Family::V4, Family::V6] {
            let subnets: Vec<&str> = self
                .pod_subnets
                .iter()
                .map(String::as_str)
                .filter(|s| Family::of(s) == family)
                .collect();
            if !subnets.is_empty() {
                ensure_masquerade(family, &subnets).await?;
            }
            let services: Vec<&str> = self
                .service_subnets
                .iter()
                .map(String::as_str)
                .filter(|s| Family::of(s) == family)
                .collect();
            if !services.is_empty() {
                ensure_service_guard(family, &services).await?;
            }
        }
        Ok(())
    }

    /// Written only when it changes, through a rename so the runtime never reads half a file.
    fn write_cni_config(&self, pod_cidrs: &[String]) -> Result<(), AgentError> {
        let path = self.cni_dir.join(CNI_FILE);
        let mtu = std::fs::read_to_string("/sys/class/net/eth0/mtu")
            .ok()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(1500);
        let content = cni_config(pod_cidrs, mtu);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            return Ok(());
        }
        let tmp = self.cni_dir.join(format!(".{CNI_FILE}.tmp"));
        let write = std::fs::write(&tmp, &content).and_then(|_| std::fs::rename(&tmp, &path));
        write.map_err(|e| AgentError::Msg(format!("writing {}: {e}", path.display())))?;
        tracing::info!("wrote {} for {}", path.display(), pod_cidrs.join(","));
        Ok(())
    }

    async fn sync_routes(
        &self,
        family: Family,
        desired: &BTreeMap<String, String>,
    ) -> Result<(), AgentError> {
        let shown = run(
            "ip",
            &[family.flag(), "route", "show", "proto", ROUTE_PROTO],
        )
        .await?;
        let current = parse_routes(&shown);
        for (dst, via) in desired.iter().filter(|(d, _)| Family::of(d) == family) {
            if current.get(dst) != Some(via) {
                run(
                    "ip",
                    &[
                        family.flag(),
                        "route",
                        "replace",
                        dst,
                        "via",
                        via,
                        "proto",
                        ROUTE_PROTO,
                    ],
                )
                .await?;
                tracing::info!("route {dst} via {via}");
            }
        }
        for dst in current.keys().filter(|d| !desired.contains_key(*d)) {
            run(
                "ip",
                &[family.flag(), "route", "del", dst, "proto", ROUTE_PROTO],
            )
            .await?;
            tracing::info!("removed route {dst} (its node is gone)");
        }
        Ok(())
    }
}

/// What the agent needs of a Node.
#[derive(Debug, Clone, PartialEq)]
struct NodeNet {
    name: String,
    internal_ips: Vec<String>,
    pod_cidrs: Vec<String>,
}

impl NodeNet {
    fn from_node(node: &Node) -> NodeNet {
        let spec = node.spec.clone().unwrap_or_default();
        let mut pod_cidrs = spec.pod_cidrs.unwrap_or_default();
        if pod_cidrs.is_empty() {
            pod_cidrs.extend(spec.pod_cidr);
        }
        let internal_ips = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|addrs| {
                addrs
                    .iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .map(|a| a.address.clone())
                    .collect()
            })
            .unwrap_or_default();
        NodeNet {
            name: node.metadata.name.clone().unwrap_or_default(),
            internal_ips,
            pod_cidrs,
        }
    }
}

/// Every other node's PodCIDR -> that node's InternalIP of the same family.
fn desired_routes(me: &str, nodes: &[NodeNet]) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.name != me) {
        for cidr in &node.pod_cidrs {
            let family = Family::of(cidr);
            if let Some(ip) = node.internal_ips.iter().find(|ip| Family::of(ip) == family) {
                routes.insert(cidr.clone(), ip.clone());
            }
        }
    }
    routes
}

/// `ip route show` lines (`10.244.1.0/24 via 172.18.0.3 dev eth0 proto 187`) -> dst -> gateway.
fn parse_routes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let via = words.iter().position(|w| *w == "via")?;
            Some((words.first()?.to_string(), words.get(via + 1)?.to_string()))
        })
        .collect()
}

/// Our chain holds the whole policy and is rewritten atomically each time (iptables-restore
/// --noflush replaces just the chains it names); POSTROUTING only jumps to it.
async fn ensure_masquerade(family: Family, pod_subnets: &[&str]) -> Result<(), AgentError> {
    let mut rules = format!("*nat\n:{MASQ_CHAIN} - [0:0]\n");
    for subnet in pod_subnets {
        rules.push_str(&format!("-A {MASQ_CHAIN} -d {subnet} -j RETURN\n"));
    }
    for subnet in pod_subnets {
        rules.push_str(&format!("-A {MASQ_CHAIN} -s {subnet} -j MASQUERADE\n"));
    }
    rules.push_str("COMMIT\n");
    restore(family, &rules).await?;
    let jump = ["-t", "nat", "-C", "POSTROUTING", "-j", MASQ_CHAIN];
    if run(family.iptables(), &jump).await.is_err() {
        let add = ["-t", "nat", "-A", "POSTROUTING", "-j", MASQ_CHAIN];
        run(family.iptables(), &add).await?;
        tracing::info!(
            "{} masquerading for {}",
            family.iptables(),
            pod_subnets.join(",")
        );
    }
    Ok(())
}

/// `a, b` -> [a, b].
fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The guard's chain in the filter table. kube-proxy translates service traffic in the nat
/// table (iptables mode) or at dstnat priority (nftables mode), both before the filter table
/// sees a packet, so what still goes to the service range here was not a Service's: TCP gets a
/// reset, the rest an ICMP unreachable, as for a closed port.
fn service_guard_rules(subnets: &[&str]) -> String {
    let mut rules = format!("*filter\n:{SERVICE_GUARD_CHAIN} - [0:0]\n");
    for subnet in subnets {
        rules.push_str(&format!(
            "-A {SERVICE_GUARD_CHAIN} -d {subnet} -p tcp -j REJECT --reject-with tcp-reset\n"
        ));
        rules.push_str(&format!("-A {SERVICE_GUARD_CHAIN} -d {subnet} -j REJECT\n"));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// Pods' traffic passes FORWARD, host-network pods' and the node's own OUTPUT; both jump to
/// the guard after everything else (kube-proxy's own rejects for Services without endpoints
/// come first).
async fn ensure_service_guard(family: Family, subnets: &[&str]) -> Result<(), AgentError> {
    restore(family, &service_guard_rules(subnets)).await?;
    for chain in ["FORWARD", "OUTPUT"] {
        let check = ["-t", "filter", "-C", chain, "-j", SERVICE_GUARD_CHAIN];
        if run(family.iptables(), &check).await.is_err() {
            let add = ["-t", "filter", "-A", chain, "-j", SERVICE_GUARD_CHAIN];
            run(family.iptables(), &add).await?;
            tracing::info!(
                "{} refusing untranslated traffic to {} ({chain})",
                family.iptables(),
                subnets.join(",")
            );
        }
    }
    Ok(())
}

async fn restore(family: Family, rules: &str) -> Result<(), AgentError> {
    run_with_input(family.iptables_restore(), &["--noflush"], rules).await
}

/// ptp gives each pod a veth pair routed through the node; host-local hands out addresses
/// from the node's PodCIDRs; portmap implements hostPort.
fn cni_config(pod_cidrs: &[String], mtu: u32) -> String {
    let ranges: Vec<serde_json::Value> = pod_cidrs
        .iter()
        .map(|c| serde_json::json!([{ "subnet": c }]))
        .collect();
    let routes: Vec<serde_json::Value> = pod_cidrs
        .iter()
        .map(|c| {
            let dst = if Family::of(c) == Family::V6 {
                "::/0"
            } else {
                "0.0.0.0/0"
            };
            serde_json::json!({ "dst": dst })
        })
        .collect();
    let config = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "kindred",
        "plugins": [
            {
                "type": "ptp",
                "mtu": mtu,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": "/run/cni-ipam-state",
                    "ranges": ranges,
                    "routes": routes,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&config).expect("serializable") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ips: &[&str], cidrs: &[&str]) -> NodeNet {
        NodeNet {
            name: name.into(),
            internal_ips: ips.iter().map(|s| s.to_string()).collect(),
            pod_cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn routes_go_to_every_other_node_by_family() {
        let nodes = vec![
            node("a", &["172.18.0.2"], &["10.244.0.0/24"]),
            node(
                "b",
                &["172.18.0.3", "fc00::3"],
                &["10.244.1.0/24", "fd00:10:244:1::/64"],
            ),
            node("c", &["172.18.0.4"], &[]),
        ];
        let routes = desired_routes("a", &nodes);
        assert_eq!(
            routes,
            BTreeMap::from([
                ("10.244.1.0/24".to_string(), "172.18.0.3".to_string()),
                ("fd00:10:244:1::/64".to_string(), "fc00::3".to_string()),
            ])
        );
    }

    #[test]
    fn ip_route_output_parses_to_destinations() {
        let text = "10.244.1.0/24 via 172.18.0.3 dev eth0 proto 187 \n\
                    10.244.2.0/24 via 172.18.0.4 dev eth0 proto 187\n";
        let routes = parse_routes(text);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes["10.244.2.0/24"], "172.18.0.4");
    }

    #[test]
    fn service_guard_refuses_the_service_range() {
        let rules = service_guard_rules(&["10.96.0.0/16"]);
        assert_eq!(
            rules,
            "*filter\n:KINDRED-SERVICES - [0:0]\n\
             -A KINDRED-SERVICES -d 10.96.0.0/16 -p tcp -j REJECT --reject-with tcp-reset\n\
             -A KINDRED-SERVICES -d 10.96.0.0/16 -j REJECT\n\
             COMMIT\n"
        );
        assert_eq!(
            split_list(" 10.96.0.0/16, fd00::/108 ,"),
            vec!["10.96.0.0/16", "fd00::/108"]
        );
        assert!(split_list("").is_empty());
    }

    #[test]
    fn cni_config_covers_every_pod_cidr() {
        let text = cni_config(&["10.244.1.0/24".into(), "fd00::/64".into()], 1450);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ptp = &v["plugins"][0];
        assert_eq!(ptp["type"], "ptp");
        assert_eq!(ptp["mtu"], 1450);
        assert_eq!(ptp["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(ptp["ipam"]["ranges"][1][0]["subnet"], "fd00::/64");
        assert_eq!(ptp["ipam"]["routes"][1]["dst"], "::/0");
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }
}
