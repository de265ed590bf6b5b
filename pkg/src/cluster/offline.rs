//! Keeping image pulls on the nodes for a while: every registry is pointed at a closed port on
//! the node's loopback (containerd's `_default` hosts.toml), so a pull fails at once and
//! nothing leaves the machine — no DNS lookup, no connection. `kindred test conformance` does
//! this for its run, because a few conformance specs deliberately use images that do not exist
//! (`webserver:404`, `foo:non-existent`) and would otherwise ask Docker Hub and gcr.io for them.
//!
//! containerd only reads hosts.toml files when its CRI registry `config_path` is set; when a
//! node has none, a drop-in sets `/etc/containerd/certs.d` and containerd is restarted once
//! (running containers are not affected). Create the cluster with that `config_path` (kind's
//! usual registry patch) to avoid the restart.

use futures_util::future::try_join_all;

use super::node_setup::{restart_containerd, write_file};
use super::{ClusterError, LOAD_BALANCER_ROLE};
use crate::provider::Provider;

/// First line of the hosts.toml kindred writes, to recognise (and only ever remove) its own.
pub const HOSTS_MARKER: &str = "# Written by kindred: registries are unreachable from this node";
/// The drop-in that sets `config_path` when a node has none.
const DROP_IN: &str = "/etc/containerd/conf.d/90-kindred-registry-hosts.toml";
const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The hosts.toml for `_default`: upstream and mirror both a closed loopback port.
pub fn blocking_hosts_toml() -> String {
    format!(
        "{HOSTS_MARKER} (kindred test conformance); delete this file to pull again.\n\
         server = \"http://127.0.0.1:1\"\n\n\
         [host.\"http://127.0.0.1:1\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// The first directory of the CRI registry `config_path` in `containerd config dump`
/// (a version 3 config), or None when it is empty or missing.
pub fn registry_config_path(dump: &str) -> Option<String> {
    let mut in_registry = false;
    for line in dump.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_registry = t == "[plugins.'io.containerd.cri.v1.images'.registry]"
                || t == "[plugins.\"io.containerd.cri.v1.images\".registry]";
            continue;
        }
        if in_registry {
            if let Some(v) = t.strip_prefix("config_path") {
                let v = v.trim_start().strip_prefix('=')?.trim();
                let v = v.trim_matches(|c| c == '\'' || c == '"');
                return v.split(':').find(|p| !p.is_empty()).map(str::to_string);
            }
        }
    }
    None
}

/// What was blocked, to undo it.
#[derive(Debug, Clone, Default)]
pub struct BlockedPulls {
    /// (node, hosts.toml path) written by kindred.
    pub files: Vec<(String, String)>,
    /// Nodes whose `_default` hosts.toml is the user's own: left alone, not blocked.
    pub skipped: Vec<String>,
    /// Nodes where containerd was restarted to read hosts.toml files at all.
    pub restarted: Vec<String>,
}

/// Blocks registry pulls on every node of `cluster`.
pub async fn block_registry_pulls(
    docker: &dyn Provider,
    cluster: &str,
) -> Result<BlockedPulls, ClusterError> {
    let mut nodes = super::nodes(docker, Some(cluster)).await?;
    nodes.retain(|n| n.role != LOAD_BALANCER_ROLE);
    let results = try_join_all(nodes.iter().map(|n| block_node(docker, &n.name))).await?;
    let mut blocked = BlockedPulls::default();
    for (node, outcome) in nodes.iter().zip(results) {
        match outcome {
            NodeOutcome::Blocked { path, restarted } => {
                blocked.files.push((node.name.clone(), path));
                if restarted {
                    blocked.restarted.push(node.name.clone());
                }
            }
            NodeOutcome::UsersOwn => blocked.skipped.push(node.name.clone()),
        }
    }
    Ok(blocked)
}

enum NodeOutcome {
    Blocked { path: String, restarted: bool },
    UsersOwn,
}

async fn block_node(docker: &dyn Provider, node: &str) -> Result<NodeOutcome, ClusterError> {
    let dump = docker
        .exec_ok(node, &["containerd", "config", "dump"])
        .await?;
    let (dir, restarted) = match registry_config_path(&dump) {
        Some(dir) => (dir, false),
        None => {
            write_file(
                docker,
                node,
                DROP_IN,
                &format!(
                    "# Written by kindred: containerd reads registry hosts.toml files from here.\n\
                     version = 3\n\n[plugins.'io.containerd.cri.v1.images'.registry]\n  \
                     config_path = \"{DEFAULT_HOSTS_DIR}\"\n"
                ),
            )
            .await?;
            restart_containerd(docker, node).await?;
            (DEFAULT_HOSTS_DIR.to_string(), true)
        }
    };
    let path = format!("{}/_default/hosts.toml", dir.trim_end_matches('/'));
    let existing = docker.exec(node, &["cat", &path]).await?;
    if existing.code == 0 && !existing.stdout.starts_with(HOSTS_MARKER) {
        return Ok(NodeOutcome::UsersOwn);
    }
    write_file(docker, node, &path, &blocking_hosts_toml()).await?;
    Ok(NodeOutcome::Blocked { path, restarted })
}

/// Removes the hosts.toml files [`block_registry_pulls`] wrote (the `config_path` drop-in
/// stays: with no hosts.toml it changes nothing).
pub async fn unblock_registry_pulls(
    docker: &dyn Provider,
    blocked: &BlockedPulls,
) -> Result<(), ClusterError> {
    try_join_all(blocked.files.iter().map(|(node, path)| async move {
        let script =
            format!("head -n 1 '{path}' | grep -q '^{HOSTS_MARKER}' && rm -f '{path}'; true");
        docker.exec_ok(node, &["sh", "-c", &script]).await
    }))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_is_read_from_the_registry_table() {
        let dump = "version = 3\n[plugins]\n  [plugins.'io.containerd.cri.v1.images']\n    snapshotter = 'overlayfs'\n    [plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = ''\n\n    [plugins.'io.containerd.cri.v1.images'.image_decryption]\n      key_model = 'node'\n";
        assert_eq!(registry_config_path(dump), None);
        let set = dump.replace(
            "config_path = ''",
            "config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'",
        );
        assert_eq!(
            registry_config_path(&set).as_deref(),
            Some("/etc/containerd/certs.d")
        );
        assert_eq!(registry_config_path("version = 3\n"), None);
    }

    #[test]
    fn hosts_file_points_everything_at_a_closed_loopback_port() {
        let t = blocking_hosts_toml();
        assert!(t.starts_with(HOSTS_MARKER));
        assert!(t.contains("server = \"http://127.0.0.1:1\"\n"));
        let parsed: toml::Value = toml::from_str(&t).unwrap();
        assert_eq!(parsed["server"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(
            parsed["host"]["http://127.0.0.1:1"]["capabilities"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
