//! The config a create uses, from the loaded file (or the default) and the command's flags, in
//! the order every command applies them: name, registry, defaults, node image, host paths
//! relative to the config's directory, validation.

use std::path::Path;

use crate::cluster::ClusterError;
use crate::config::Cluster;

/// What a command's flags change in the loaded config.
#[derive(Debug, Default)]
pub struct ConfigOverrides {
    /// `--name`: wins over the config's name, which wins over $KINDRED_CLUSTER_NAME.
    pub name: Option<String>,
    /// `--image`: the node image of every node.
    pub image: Option<String>,
    /// `--registry`/`--registry-port`/`--keep-registry`: (port, keep).
    pub registry: Option<(Option<u16>, bool)>,
    /// `--disable-load-balancer-services`.
    pub disable_load_balancer_services: bool,
    /// `--disable-node-lifecycle`.
    pub disable_node_lifecycle: bool,
    /// The image of nodes that name none: the host's default (`cluster::host_default`);
    /// unset, the cgroup v1 default, for checking a config before the host is known.
    pub default_image: Option<String>,
}

/// A loaded config (`file`: the file it came from, for error messages; `base_dir`: its
/// directory, else the current one, for relative host paths) made ready for [`super::create`]:
/// defaulted, overridden and validated.
pub fn resolve_config(
    loaded: Cluster,
    file: Option<&str>,
    base_dir: &Path,
    overrides: &ConfigOverrides,
) -> Result<Cluster, ClusterError> {
    let name = match (&overrides.name, loaded.name.is_empty()) {
        (Some(n), _) => n.clone(),
        (None, false) => loaded.name.clone(),
        (None, true) => crate::cluster::default_name(None),
    };
    // Defaults first (they create the node list), then --image overrides every node.
    let mut cluster = loaded.with_name(name);
    if let Some((port, keep)) = overrides.registry {
        cluster = cluster.with_registry(port, keep);
    }
    if overrides.disable_load_balancer_services {
        cluster = cluster.without_load_balancer_services();
    }
    if overrides.disable_node_lifecycle {
        cluster = cluster.without_node_lifecycle();
    }
    let mut cluster = match &overrides.default_image {
        Some(image) => cluster.with_defaults_using(image),
        None => cluster.with_defaults(),
    };
    if let Some(image) = &overrides.image {
        cluster = cluster.with_node_image(image);
    }
    let cluster = cluster.resolve_host_paths(base_dir);
    match cluster.validate() {
        Ok(()) => Ok(cluster),
        Err(source) => Err(ClusterError::InvalidConfig {
            file: file.map(str::to_string),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_and_problems_name_the_file() {
        let loaded = crate::config::parse(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: from-file\n",
            "test",
        )
        .unwrap();
        let cwd = Path::new("/");
        let kept = resolve_config(loaded.clone(), None, cwd, &Default::default()).unwrap();
        assert_eq!(kept.name, "from-file");
        let overrides = ConfigOverrides {
            name: Some("flag".into()),
            image: Some("example/node:x".into()),
            registry: Some((Some(5002), false)),
            ..Default::default()
        };
        let c = resolve_config(loaded.clone(), None, cwd, &overrides).unwrap();
        assert_eq!(c.name, "flag");
        assert!(c.nodes.iter().all(|n| n.image == "example/node:x"));
        assert!(c.registry().is_some());

        let bad = ConfigOverrides {
            name: Some("Not_A_Name".into()),
            ..Default::default()
        };
        let err = resolve_config(loaded, Some("c.yaml"), cwd, &bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("c.yaml: invalid cluster config"),
            "{err}"
        );
    }
}
