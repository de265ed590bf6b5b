//! `get clusters` / `get nodes`: read back from the labels on node containers, plus what a
//! script wants to know about each node (address, Kubernetes version), in text, JSON or YAML.

use futures_util::future::join_all;

use super::{ClusterError, CLUSTER_LABEL, NETWORK, NODE_LIFECYCLE_ROLE, ROLE_LABEL};
use crate::provider::Provider;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub name: String,
    pub cluster: String,
    pub role: String,
    /// The container's state: `running`, `exited`, ...
    #[serde(rename = "status")]
    pub state: String,
    /// Address on the kindred network; empty while the container is stopped.
    pub ip: String,
    pub image: String,
}

/// A node with its Kubernetes version (read from the node, so slower than [`nodes`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDetails {
    #[serde(flatten)]
    pub summary: NodeSummary,
    /// From the node image's `/kind/version`; empty if it cannot be read.
    pub kubernetes_version: String,
}

/// How `get nodes` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFormat {
    /// One name per line (kind's output).
    Names,
    Wide,
    Json,
    Yaml,
}

/// Names of every cluster with at least one node container, sorted.
pub async fn clusters(docker: &dyn Provider) -> Result<Vec<String>, ClusterError> {
    let mut names: Vec<String> = docker
        .list_by_labels(&[CLUSTER_LABEL.to_string()])
        .await?
        .into_iter()
        .filter_map(|c| c.labels.get(CLUSTER_LABEL).cloned())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Node containers of one cluster, or of all clusters with `None`: the Kubernetes nodes and an
/// HA cluster's load balancer, as kind lists them (not the node lifecycle agent, which kind has
/// no counterpart of: scripts run node commands in each name listed).
pub async fn nodes(
    docker: &dyn Provider,
    cluster: Option<&str>,
) -> Result<Vec<NodeSummary>, ClusterError> {
    let filter = match cluster {
        Some(name) => format!("{CLUSTER_LABEL}={name}"),
        None => CLUSTER_LABEL.to_string(),
    };
    Ok(docker
        .list_by_labels(&[filter])
        .await?
        .into_iter()
        .filter(|c| c.labels.get(ROLE_LABEL).map(String::as_str) != Some(NODE_LIFECYCLE_ROLE))
        .map(|c| NodeSummary {
            cluster: c.labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
            role: c.labels.get(ROLE_LABEL).cloned().unwrap_or_default(),
            ip: c.ips.get(NETWORK).cloned().unwrap_or_default(),
            name: c.name,
            state: c.state,
            image: c.image,
        })
        .collect())
}

/// The cluster's node lifecycle agent container (none in clusters made without it).
pub(super) async fn node_lifecycle_agents(
    docker: &dyn Provider,
    name: &str,
) -> Result<Vec<String>, ClusterError> {
    Ok(docker
        .list_by_labels(&[
            format!("{CLUSTER_LABEL}={name}"),
            format!("{ROLE_LABEL}={NODE_LIFECYCLE_ROLE}"),
        ])
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect())
}

/// [`nodes`] with each node's Kubernetes version, read concurrently. The file is copied out
/// rather than exec'd, so stopped nodes have a version too.
pub async fn node_details(
    docker: &dyn Provider,
    cluster: Option<&str>,
) -> Result<Vec<NodeDetails>, ClusterError> {
    let nodes = nodes(docker, cluster).await?;
    Ok(join_all(nodes.into_iter().map(|n| async move {
        let version = docker
            .read_container_file(&n.name, "/kind/version")
            .await
            .map(|v| String::from_utf8_lossy(&v).trim().to_string())
            .unwrap_or_default();
        NodeDetails {
            summary: n,
            kubernetes_version: version,
        }
    }))
    .await)
}

/// The nodes a command works on: all of the cluster's, or those named (which must exist).
/// `clusters` lists the existing clusters, for the error when there is no such cluster.
pub fn select_nodes(
    cluster: &str,
    all: &[NodeSummary],
    wanted: &[String],
    clusters: &[String],
) -> Result<Vec<String>, ClusterError> {
    if all.is_empty() {
        return Err(ClusterError::NoSuchCluster {
            name: cluster.to_string(),
            known: clusters.to_vec(),
        });
    }
    let names: Vec<String> = all.iter().map(|n| n.name.clone()).collect();
    if wanted.is_empty() {
        return Ok(names);
    }
    let unknown: Vec<&String> = wanted.iter().filter(|w| !names.contains(w)).collect();
    if !unknown.is_empty() {
        return Err(ClusterError::NoSuchNode {
            cluster: cluster.to_string(),
            unknown: unknown.into_iter().cloned().collect(),
            nodes: names,
        });
    }
    let mut selected: Vec<String> = names.into_iter().filter(|n| wanted.contains(n)).collect();
    selected.dedup();
    Ok(selected)
}

/// Renders nodes for `get nodes -o ...` (not [`NodeFormat::Names`], which needs no details).
pub fn render_nodes(nodes: &[NodeDetails], format: NodeFormat) -> Result<String, ClusterError> {
    let fail = ClusterError::Render;
    match format {
        NodeFormat::Names => Ok(nodes
            .iter()
            .map(|n| format!("{}\n", n.summary.name))
            .collect()),
        NodeFormat::Json => serde_json::to_string_pretty(nodes)
            .map(|s| s + "\n")
            .map_err(|e| fail(e.to_string())),
        NodeFormat::Yaml => serde_yaml::to_string(nodes).map_err(|e| fail(e.to_string())),
        NodeFormat::Wide => {
            let header = [
                "NAME", "CLUSTER", "ROLE", "STATUS", "IP", "IMAGE", "VERSION",
            ];
            let rows: Vec<[&str; 7]> = nodes
                .iter()
                .map(|n| {
                    let s = &n.summary;
                    [
                        s.name.as_str(),
                        s.cluster.as_str(),
                        s.role.as_str(),
                        s.state.as_str(),
                        or_none(&s.ip),
                        s.image.as_str(),
                        or_none(&n.kubernetes_version),
                    ]
                })
                .collect();
            Ok(table(header, &rows))
        }
    }
}

fn or_none(v: &str) -> &str {
    if v.is_empty() {
        "<none>"
    } else {
        v
    }
}

/// Left-aligned columns separated by three spaces, like kubectl's tables.
fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> Vec<NodeDetails> {
        vec![
            NodeDetails {
                summary: NodeSummary {
                    name: "dev-control-plane".into(),
                    cluster: "dev".into(),
                    role: "control-plane".into(),
                    state: "running".into(),
                    ip: "172.18.0.2".into(),
                    image: "kindred/node:v1.34.12".into(),
                },
                kubernetes_version: "v1.34.12".into(),
            },
            NodeDetails {
                summary: NodeSummary {
                    name: "dev-worker".into(),
                    cluster: "dev".into(),
                    role: "worker".into(),
                    state: "exited".into(),
                    ip: String::new(),
                    image: "kindred/node:v1.34.12".into(),
                },
                kubernetes_version: String::new(),
            },
        ]
    }

    fn node(name: &str) -> NodeSummary {
        NodeSummary {
            name: name.into(),
            cluster: "c".into(),
            role: "worker".into(),
            state: "running".into(),
            image: "i".into(),
            ip: String::new(),
        }
    }

    #[test]
    fn nodes_are_selected_by_name() {
        let all = [node("c-control-plane"), node("c-worker")];
        let clusters = ["c".to_string()];
        assert_eq!(
            select_nodes("c", &all, &[], &clusters).unwrap(),
            vec!["c-control-plane", "c-worker"]
        );
        assert_eq!(
            select_nodes("c", &all, &["c-worker".into()], &clusters).unwrap(),
            vec!["c-worker"]
        );
        let err = select_nodes("c", &all, &["c-worker9".into()], &clusters).unwrap_err();
        assert!(
            err.to_string()
                .contains("no node named c-worker9; its nodes are: c-control-plane, c-worker"),
            "{err}"
        );
        let err = select_nodes("x", &[], &[], &clusters).unwrap_err();
        assert!(
            err.to_string().contains("no cluster named x (clusters: c)"),
            "{err}"
        );
        let err = select_nodes("x", &[], &[], &[]).unwrap_err();
        assert!(err.to_string().contains("there are no clusters"), "{err}");
    }

    #[test]
    fn json_and_yaml_carry_every_field() {
        let json = render_nodes(&details(), NodeFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["name"], "dev-control-plane");
        assert_eq!(v[0]["role"], "control-plane");
        assert_eq!(v[0]["status"], "running");
        assert_eq!(v[0]["ip"], "172.18.0.2");
        assert_eq!(v[0]["image"], "kindred/node:v1.34.12");
        assert_eq!(v[0]["kubernetesVersion"], "v1.34.12");
        assert_eq!(v[1]["status"], "exited");
        let yaml = render_nodes(&details(), NodeFormat::Yaml).unwrap();
        let y: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(y[1]["name"].as_str(), Some("dev-worker"));
        assert_eq!(y[1]["cluster"].as_str(), Some("dev"));
    }

    #[test]
    fn wide_is_an_aligned_table() {
        let wide = render_nodes(&details(), NodeFormat::Wide).unwrap();
        let lines: Vec<&str> = wide.lines().collect();
        assert_eq!(lines.len(), 3, "{wide}");
        assert!(
            lines[0].starts_with("NAME                CLUSTER   ROLE"),
            "{wide}"
        );
        let ip_col = lines[0].find("IP").unwrap();
        assert_eq!(&lines[1][ip_col..ip_col + 10], "172.18.0.2");
        assert_eq!(&lines[2][ip_col..ip_col + 6], "<none>");
        assert!(lines[1].ends_with("v1.34.12"));
        assert!(lines[2].ends_with("<none>"));
        assert_eq!(
            render_nodes(&details(), NodeFormat::Names).unwrap(),
            "dev-control-plane\ndev-worker\n"
        );
    }
}
