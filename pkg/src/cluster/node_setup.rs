//! Node settings applied once systemd runs and before kubeadm: the cluster config's containerd
//! patches (`/etc/containerd/config.toml`), the proxy variables for containerd and kubelet
//! (systemd drop-ins, which survive container restarts), and the local registry's hosts
//! directories (`<config_path>/localhost:<port>/hosts.toml`). When the config or the drop-ins
//! changed, containerd is restarted once and kindred waits until it answers again (hosts
//! directories are read at every pull, so they need no restart).

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use futures_util::StreamExt;

use super::node_options::NodeOptions;
use super::plan::ClusterPlan;
use super::registry::RegistryRequest;
use super::{ClusterError, NETWORK};
use crate::config::Cluster;
use crate::containerd;
use crate::provider::Provider;
use crate::ui::Step;

/// The units that get the proxy variables: image pulls (containerd) and kubelet's own requests.
const PROXY_UNITS: [&str; 2] = ["containerd", "kubelet"];
const PROXY_DROP_IN: &str = "10-kindred-proxy.conf";

/// Applies the containerd patches, proxy drop-ins and registry hosts to every node,
/// concurrently. Nothing is done (and containerd is not restarted) when the config has none.
pub async fn configure_nodes(
    docker: &dyn Provider,
    plan: &ClusterPlan,
    options: &NodeOptions,
    step: &Step,
) -> Result<(), ClusterError> {
    let config = &plan.config;
    let patches = has_containerd_patches(config);
    let mut proxy = options.proxy_env(&[]);
    if !proxy.is_empty() {
        proxy = options.proxy_env(&docker.network_subnets(NETWORK).await?);
    }
    let registry = RegistryRequest::of(config);
    if !patches && proxy.is_empty() && registry.is_none() {
        return Ok(());
    }
    let drop_in = (!proxy.is_empty()).then(|| proxy_drop_in(&proxy));
    try_join_all(
        plan.nodes
            .iter()
            .map(|n| configure_node(docker, &n.name, config, drop_in.as_deref(), registry, step)),
    )
    .await?;
    Ok(())
}

fn has_containerd_patches(config: &Cluster) -> bool {
    !config.containerd_config_patches.is_empty()
        || !config.containerd_config_patches_json6902.is_empty()
}

async fn configure_node(
    docker: &dyn Provider,
    node: &str,
    config: &Cluster,
    proxy_drop_in: Option<&str>,
    registry: Option<RegistryRequest>,
    step: &Step,
) -> Result<(), ClusterError> {
    let mut restart = false;
    // The config as patched, when it was.
    let mut written: Option<String> = None;
    if has_containerd_patches(config) {
        let current = docker
            .exec_ok(node, &["cat", containerd::CONFIG_PATH])
            .await?;
        let patched = containerd::patch(
            &current,
            &config.containerd_config_patches,
            &config.containerd_config_patches_json6902,
        )
        .map_err(|source| ClusterError::ContainerdConfig {
            node: node.to_string(),
            what: "patching containerd's config",
            source,
        })?;
        for note in &patched.notes {
            step.detail(format!("[{node}] {note}"));
        }
        write_file(docker, node, containerd::CONFIG_PATH, &patched.config).await?;
        step.detail(format!("[{node}] patched {}", containerd::CONFIG_PATH));
        written = Some(patched.config);
        restart = true;
    }
    if let Some(registry) = registry {
        let current = match written {
            Some(config) => config,
            None => {
                docker
                    .exec_ok(node, &["cat", containerd::CONFIG_PATH])
                    .await?
            }
        };
        let (dir, changed) = containerd::registry_config_dir(&current).map_err(|source| {
            ClusterError::ContainerdConfig {
                node: node.to_string(),
                what: "reading containerd's registry config_path",
                source,
            }
        })?;
        if let Some(changed) = changed {
            // A node image from before kindred's config set config_path.
            write_file(docker, node, containerd::CONFIG_PATH, &changed).await?;
            step.detail(format!(
                "[{node}] set containerd's registry config_path to {dir}"
            ));
            restart = true;
        }
        for host in crate::registry::mirrored_hosts(registry.port) {
            let path = format!("{dir}/{host}/hosts.toml");
            write_file(docker, node, &path, &crate::registry::hosts_toml(&host)).await?;
            step.detail(format!("[{node}] {path}"));
        }
    }
    if let Some(drop_in) = proxy_drop_in {
        for unit in PROXY_UNITS {
            let path = format!("/etc/systemd/system/{unit}.service.d/{PROXY_DROP_IN}");
            write_file(docker, node, &path, drop_in).await?;
        }
        docker
            .exec_ok(node, &["systemctl", "daemon-reload"])
            .await?;
        step.detail(format!(
            "[{node}] proxy settings for {}",
            PROXY_UNITS.join(" and ")
        ));
        restart = true;
    }
    if restart {
        restart_containerd(docker, node).await?;
    }
    Ok(())
}

/// Restarts containerd and waits until it answers; if it does not come back (a patch it
/// cannot read), says so with its last log lines.
pub(super) async fn restart_containerd(
    docker: &dyn Provider,
    node: &str,
) -> Result<(), ClusterError> {
    let restart = docker
        .exec(node, &["systemctl", "restart", "containerd"])
        .await?;
    let limit = crate::patience::scaled(Duration::from_secs(60));
    let deadline = Instant::now() + limit;
    loop {
        if restart.code == 0 && docker.exec(node, &["ctr", "version"]).await?.code == 0 {
            return Ok(());
        }
        if restart.code != 0 || Instant::now() > deadline {
            let log = super::node::Node::new(docker, node)
                .journal_tail("containerd")
                .await;
            return Err(ClusterError::ContainerdRestart {
                node: node.to_string(),
                restart_error: (restart.code != 0).then(|| restart.stderr.trim().to_string()),
                waited_secs: limit.as_secs(),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A systemd drop-in setting the variables for one service. Values are quoted; `%` is a
/// specifier in unit files and must be doubled (URL-encoded proxy passwords use it).
pub(crate) fn proxy_drop_in(variables: &[(String, String)]) -> String {
    let mut text =
        String::from("# Written by kindred: the proxy settings kindred ran with.\n[Service]\n");
    for (name, value) in variables {
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%");
        text.push_str(&format!("Environment=\"{name}={value}\"\n"));
    }
    text
}

/// Writes a file on a node through the exec's stdin (no quoting issues), creating its directory.
pub(super) async fn write_file(
    docker: &dyn Provider,
    node: &str,
    path: &str,
    content: &str,
) -> Result<(), ClusterError> {
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    let script = format!("mkdir -p '{dir}' && cat > '{path}'");
    let input = futures_util::stream::once(std::future::ready(Ok(bytes::Bytes::from(
        content.to_string(),
    ))))
    .boxed();
    let out = docker
        .exec_with_input(node, &["sh", "-c", &script], input)
        .await?;
    if out.code != 0 {
        return Err(ClusterError::NodeWriteFile {
            node: node.to_string(),
            path: path.to_string(),
            code: out.code,
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_drop_in_quotes_values_and_escapes_specifiers() {
        let text = proxy_drop_in(&[
            ("HTTP_PROXY".into(), "http://u:p%40ss@proxy:3128".into()),
            ("NO_PROXY".into(), "a,\"b\"\\c".into()),
        ]);
        assert_eq!(
            text,
            "# Written by kindred: the proxy settings kindred ran with.\n[Service]\n\
             Environment=\"HTTP_PROXY=http://u:p%%40ss@proxy:3128\"\n\
             Environment=\"NO_PROXY=a,\\\"b\\\"\\\\c\"\n"
        );
    }
}
