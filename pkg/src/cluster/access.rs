//! How to reach a cluster's API server: from the host through the published port, or from
//! inside the Docker network through the control plane's name (an HA cluster's load balancer
//! in both cases).

use super::{ClusterError, ADMIN_CONF, CLUSTER_LABEL, LOAD_BALANCER_ROLE, ROLE_LABEL};
use crate::kubeadm::API_SERVER_BIND_PORT;
use crate::kubeconfig::{self, Entry};
use crate::provider::Provider;

/// The first control-plane container of a cluster (the one that ran `kubeadm init`).
pub async fn control_plane(docker: &dyn Provider, cluster: &str) -> Result<String, ClusterError> {
    let mut cps = docker
        .list_by_labels(&[
            format!("{CLUSTER_LABEL}={cluster}"),
            format!("{ROLE_LABEL}=control-plane"),
        ])
        .await?;
    // Sorted by name: `<cluster>-control-plane` precedes `...-control-plane2`.
    cps.sort_by(|a, b| a.name.len().cmp(&b.name.len()).then(a.name.cmp(&b.name)));
    if let Some(cp) = cps.into_iter().next() {
        return Ok(cp.name);
    }
    let known = super::clusters(docker).await?;
    if known.iter().any(|k| k == cluster) {
        return Err(ClusterError::NoControlPlane {
            cluster: cluster.to_string(),
        });
    }
    Err(ClusterError::NoSuchCluster {
        name: cluster.to_string(),
        known,
    })
}

/// The kubeconfig entry of a cluster, with the API server as seen from the host, or from
/// containers on the kindred network with `internal`.
pub async fn kubeconfig_entry(
    docker: &dyn Provider,
    cluster: &str,
    internal: bool,
) -> Result<Entry, ClusterError> {
    let cp = control_plane(docker, cluster).await?;
    // HA clusters are reached through their load balancer.
    let lb = docker
        .list_by_labels(&[
            format!("{CLUSTER_LABEL}={cluster}"),
            format!("{ROLE_LABEL}={LOAD_BALANCER_ROLE}"),
        ])
        .await?
        .into_iter()
        .next()
        .map(|c| c.name);
    let front = lb.as_deref().unwrap_or(&cp);
    let server = if internal {
        format!("https://{front}:{API_SERVER_BIND_PORT}")
    } else {
        let published = docker
            .published_address(front, &format!("{API_SERVER_BIND_PORT}/tcp"))
            .await?;
        format!("https://{}", client_address(published))
    };
    let admin = docker.read_container_file(&cp, ADMIN_CONF).await?;
    Ok(kubeconfig::from_admin_conf(
        &String::from_utf8_lossy(&admin),
        cluster,
        &server,
    )?)
}

/// Where a client on this host reaches a published port: a port published on every address
/// is reached on loopback, of the same family.
fn client_address(published: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match published.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, published.port())
}

/// Names of the cluster's nodes that take ordinary pods: not cordoned, and without a
/// `NoSchedule` or `NoExecute` taint (a multi-node cluster's control planes), as the API server
/// sees them. A Ready node still carrying the node lifecycle controller's `not-ready` or
/// `unreachable` taint counts: the controller lifts it seconds after Ready (a cluster just
/// created, or a node that missed a heartbeat under load), as the e2e framework's own wait
/// for schedulable nodes assumes.
pub async fn schedulable_nodes(
    docker: &dyn Provider,
    cluster: &str,
) -> Result<Vec<String>, ClusterError> {
    let cp = control_plane(docker, cluster).await?;
    let out = super::node::Node::new(docker, &cp)
        .kubectl_output("get nodes -o json")
        .await?;
    if out.code != 0 {
        return Err(ClusterError::ListNodes {
            cluster: cluster.to_string(),
            stderr: out.stderr,
        });
    }
    parse_schedulable(&out.stdout).map_err(|reason| ClusterError::NodeList {
        cluster: cluster.to_string(),
        reason,
    })
}

/// The schedulable node names in a `kubectl get nodes -o json` list.
pub(crate) fn parse_schedulable(json: &str) -> Result<Vec<String>, String> {
    let list: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = list["items"]
        .as_array()
        .ok_or("no items in the node list")?;
    let mut names = Vec::new();
    for node in items {
        let cordoned = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
        let ready = node["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let lifecycle = |t: &serde_json::Value| {
            matches!(
                t["key"].as_str(),
                Some("node.kubernetes.io/not-ready") | Some("node.kubernetes.io/unreachable")
            )
        };
        let tainted = node["spec"]["taints"].as_array().is_some_and(|taints| {
            taints.iter().any(|t| {
                matches!(t["effect"].as_str(), Some("NoSchedule") | Some("NoExecute"))
                    && !(ready && lifecycle(t))
            })
        });
        if !cordoned && !tainted {
            if let Some(name) = node["metadata"]["name"].as_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_servers_use_the_published_address() {
        let url = |a: &str| format!("https://{}", client_address(a.parse().unwrap()));
        assert_eq!(url("127.0.0.1:40000"), "https://127.0.0.1:40000");
        assert_eq!(url("[::1]:40000"), "https://[::1]:40000");
        assert_eq!(url("0.0.0.0:40000"), "https://127.0.0.1:40000");
        assert_eq!(url("[::]:40000"), "https://[::1]:40000");
        assert_eq!(url("192.168.1.5:6443"), "https://192.168.1.5:6443");
    }

    #[test]
    fn control_planes_and_cordoned_nodes_are_not_schedulable() {
        let json = r#"{"items":[
          {"metadata":{"name":"c-control-plane"},"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}},
          {"metadata":{"name":"c-worker2"},"spec":{}},
          {"metadata":{"name":"c-worker"},"spec":{"taints":[{"key":"x","effect":"PreferNoSchedule"}]}},
          {"metadata":{"name":"c-worker3"},"spec":{"unschedulable":true}}
        ]}"#;
        assert_eq!(
            parse_schedulable(json).unwrap(),
            vec!["c-worker".to_string(), "c-worker2".to_string()]
        );
        assert!(parse_schedulable("{}").is_err());
    }

    #[test]
    fn a_ready_node_awaiting_its_not_ready_taint_removal_counts() {
        let json = r#"{"items":[
          {"metadata":{"name":"c-worker"},"spec":{"taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"}]},
           "status":{"conditions":[{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"c-worker2"},"spec":{"taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoExecute"}]},
           "status":{"conditions":[{"type":"Ready","status":"False"}]}},
          {"metadata":{"name":"c-worker3"},"spec":{"taints":[{"key":"node.kubernetes.io/unreachable","effect":"NoExecute"}]},
           "status":{"conditions":[{"type":"Ready","status":"Unknown"}]}}
        ]}"#;
        assert_eq!(
            parse_schedulable(json).unwrap(),
            vec!["c-worker".to_string()]
        );
    }

    #[tokio::test]
    async fn a_cluster_whose_control_plane_is_not_there_yet_is_named_as_such() {
        use crate::cluster::{NODE_LIFECYCLE_ROLE, ROLE_LABEL};
        let fake = crate::provider::fake::FakeProvider::default();
        // What a create shows for a moment: the lifecycle agent, no node yet.
        fake.add_container(
            "c-node-lifecycle",
            &[(CLUSTER_LABEL, "c"), (ROLE_LABEL, NODE_LIFECYCLE_ROLE)],
        );
        let err = control_plane(&fake, "c").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("cluster c has no control-plane node (yet"),
            "{err}"
        );
        let err = control_plane(&fake, "x").await.unwrap_err();
        assert!(
            err.to_string().contains("no cluster named x (clusters: c)"),
            "{err}"
        );
        fake.add_container(
            "c-control-plane",
            &[(CLUSTER_LABEL, "c"), (ROLE_LABEL, "control-plane")],
        );
        assert_eq!(control_plane(&fake, "c").await.unwrap(), "c-control-plane");
    }
}
