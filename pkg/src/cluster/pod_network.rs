//! The pod network, set up once at create time: every node gets a CNI config for its own
//! PodCIDR (ptp veths + host-local addresses + portmap), a route to every other node's PodCIDR
//! via that node's address, and masquerading for traffic leaving the pod network.
//!
//! This is the interim, static form of kindred's pod network: it does not follow nodes added
//! or addresses changed later. The in-cluster agent (a DaemonSet) will take over this job.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use super::plan::ClusterPlan;
use super::ClusterError;
use crate::provider::Docker;
use crate::ui::Step;

const CNI_CONFIG: &str = "/etc/cni/net.d/10-kindred.conflist";

pub async fn install(
    docker: &Docker,
    plan: &ClusterPlan,
    ips: &HashMap<String, String>,
    step: &Step,
) -> Result<(), ClusterError> {
    let cidrs = pod_cidrs(docker, plan, step).await?;
    let pod_subnet = plan
        .config
        .networking
        .pod_subnet
        .split(',')
        .next()
        .unwrap_or_default()
        .to_string();
    try_join_all(plan.nodes.iter().map(|node| {
        let mut script = String::from("set -e\n");
        let mtu = "$(cat /sys/class/net/eth0/mtu)";
        script.push_str(&format!(
            "cat > {CNI_CONFIG} <<EOF\n{}\nEOF\n",
            cni_config(&cidrs[&node.name], mtu)
        ));
        for other in plan.nodes.iter().filter(|o| o.name != node.name) {
            script.push_str(&format!("ip route replace {} via {}\n", cidrs[&other.name], ips[&other.name]));
        }
        // Pods reach the outside (and the Docker network) from the node's address.
        script.push_str(&format!(
            "iptables -t nat -C POSTROUTING -s {pod_subnet} ! -d {pod_subnet} -j MASQUERADE 2>/dev/null || \
             iptables -t nat -A POSTROUTING -s {pod_subnet} ! -d {pod_subnet} -j MASQUERADE\n"
        ));
        let name = node.name.clone();
        async move {
            step.detail(format!("[{name}] pod network:\n{script}"));
            let out = docker.exec(&name, &["bash", "-c", &script]).await?;
            if out.code != 0 {
                return Err(ClusterError::Step {
                    step: format!("configuring the pod network on {name}"),
                    reason: format!("{}{}", out.stdout, out.stderr),
                });
            }
            Ok(())
        }
    }))
    .await?;
    Ok(())
}

/// Each node's PodCIDR, as the controller manager allocates it when the node registers.
async fn pod_cidrs(
    docker: &Docker,
    plan: &ClusterPlan,
    step: &Step,
) -> Result<HashMap<String, String>, ClusterError> {
    let cp = &plan.first_control_plane().name;
    let deadline = Instant::now() + Duration::from_secs(60);
    let query =
        r#"get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.spec.podCIDR}{"\n"}{end}'"#;
    loop {
        let out = super::node_kubectl(docker, cp, query).await?;
        let cidrs: HashMap<String, String> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(_, c)| !c.is_empty())
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        if plan.nodes.iter().all(|n| cidrs.contains_key(&n.name)) {
            return Ok(cidrs);
        }
        step.progress(format!(
            "{}/{} nodes have a PodCIDR",
            cidrs.len(),
            plan.nodes.len()
        ));
        if Instant::now() > deadline {
            return Err(ClusterError::Step {
                step: "waiting for PodCIDRs".into(),
                reason: format!(
                    "after 60s the controller manager has allocated only:\n{}",
                    out.stdout
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// ptp gives each pod a veth pair routed through the node (no bridge to manage); host-local
/// hands out addresses from the node's PodCIDR; portmap implements hostPort.
fn cni_config(pod_cidr: &str, mtu: &str) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "kindred",
  "plugins": [
    {{
      "type": "ptp",
      "mtu": {mtu},
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "ranges": [[{{ "subnet": "{pod_cidr}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}]
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }} }}
  ]
}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_config_is_json_for_the_node_cidr() {
        let text = cni_config("10.244.1.0/24", "1500");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["plugins"][0]["type"], "ptp");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.1.0/24"
        );
        assert_eq!(v["plugins"][0]["mtu"], 1500);
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }
}
