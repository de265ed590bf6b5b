//! The local registry's names and the files kindred writes for it: one container,
//! `kindred-registry`, shared by every cluster that asks for it, running the CNCF distribution
//! registry (built by kindred from Go modules, see `node-image/src/registry_image.rs`).
//!
//! Each node's containerd finds it through a hosts directory
//! (`/etc/containerd/certs.d/localhost:<port>/hosts.toml`), so an image pushed from the host as
//! `localhost:<port>/app:tag` is pulled inside the cluster under the same name. Clusters also
//! get kind's `local-registry-hosting` ConfigMap (KEP-1755) so tools can discover it.

/// The registry container on the `kindred` network (also its host name there).
pub const CONTAINER: &str = "kindred-registry";
/// The port the registry listens on inside its container.
pub const CONTAINER_PORT: u16 = 5000;
/// The named volume holding the registry's storage (`/var/lib/registry`).
pub const VOLUME: &str = "kindred-registry";
/// Where the registry keeps its data inside the container.
pub const DATA_DIR: &str = "/var/lib/registry";

/// The distribution registry release the image is built from (Go module
/// `github.com/distribution/distribution/v3`).
pub const DISTRIBUTION_VERSION: &str = "v3.1.1";
/// Repository of the registry image `kindred build registry-image` makes.
pub const IMAGE_REPO: &str = "kindred/registry";

/// `true` on the registry container and its volume: what kindred made.
pub const LABEL: &str = "io.kindred.registry";
/// The registry container's host port.
pub const PORT_LABEL: &str = "io.kindred.registry.port";
/// `true` when the registry outlives its last cluster.
pub const KEEP_LABEL: &str = "io.kindred.registry.keep";
/// On the registry image: the hash of how it was made, so a changed recipe rebuilds it.
pub const RECIPE_LABEL: &str = "io.kindred.registry.recipe";
/// On every node of a cluster that uses the registry: the registry's host port. The registry
/// is deleted (unless kept) once no container carries it.
pub const USER_LABEL: &str = "io.kindred.registry-port";

/// containerd's conventional hosts directory, which kindred's node images configure as the CRI
/// `config_path` (and which kindred adds to a node whose config has none).
pub const DEFAULT_CERTS_DIR: &str = "/etc/containerd/certs.d";

/// The registry image made by this kindred, e.g. `kindred/registry:v3.1.1`.
pub fn image() -> String {
    format!("{IMAGE_REPO}:{DISTRIBUTION_VERSION}")
}

/// How nodes reach the registry: by its container name on the `kindred` network (Docker's DNS,
/// which the nodes use for everything outside the cluster), plain HTTP.
pub fn server() -> String {
    format!("http://{CONTAINER}:{CONTAINER_PORT}")
}

/// The registry hosts that mean the kindred registry inside a node, each a directory under
/// containerd's `config_path`: the names images are pushed under from the host
/// (`localhost:<port>`, `127.0.0.1:<port>`) and the registry's own name on the network.
pub fn mirrored_hosts(port: u16) -> Vec<String> {
    vec![
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("{CONTAINER}:{CONTAINER_PORT}"),
    ]
}

/// One host's `hosts.toml`: every request for that host goes to the registry container, over
/// plain HTTP (the registry is only reachable on this machine), with every capability.
pub fn hosts_toml(host: &str) -> String {
    format!(
        "# Written by kindred: images named {host}/... come from the local registry\n\
         # ({CONTAINER}, shared by the clusters that use it).\n\
         server = \"{}\"\n",
        server()
    )
}

/// kind's (KEP-1755) discovery ConfigMap: tools like Tilt and Skaffold read it to learn where
/// to push images for this cluster.
pub fn local_registry_hosting(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
  labels:
    app.kubernetes.io/managed-by: kindred
data:
  localRegistryHosting.v1: |
    host: \"localhost:{port}\"
    hostFromContainerRuntime: \"localhost:{port}\"
    hostFromClusterNetwork: \"{CONTAINER}:{CONTAINER_PORT}\"
"
    )
}

/// The first directory of a `config_path` (containerd reads a colon-separated list).
pub fn first_config_dir(config_path: &str) -> Option<&str> {
    config_path
        .split(':')
        .map(str::trim)
        .find(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_points_every_request_at_the_registry_container() {
        let text = hosts_toml("localhost:5001");
        assert_eq!(
            text,
            "# Written by kindred: images named localhost:5001/... come from the local registry\n\
             # (kindred-registry, shared by the clusters that use it).\n\
             server = \"http://kindred-registry:5000\"\n"
        );
        // What containerd reads: valid TOML whose only setting is the server (a `[host]`
        // entry as well would make containerd try the same address twice on a failure).
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed["server"].as_str(),
            Some("http://kindred-registry:5000")
        );
    }

    #[test]
    fn every_name_of_the_registry_is_mirrored() {
        assert_eq!(
            mirrored_hosts(5001),
            ["localhost:5001", "127.0.0.1:5001", "kindred-registry:5000"]
        );
        assert_eq!(image(), format!("kindred/registry:{DISTRIBUTION_VERSION}"));
    }

    #[test]
    fn the_configmap_follows_kep_1755() {
        let text = local_registry_hosting(5002);
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["metadata"]["name"].as_str(),
            Some("local-registry-hosting")
        );
        assert_eq!(doc["metadata"]["namespace"].as_str(), Some("kube-public"));
        let hosting: serde_yaml::Value =
            serde_yaml::from_str(doc["data"]["localRegistryHosting.v1"].as_str().unwrap()).unwrap();
        assert_eq!(hosting["host"].as_str(), Some("localhost:5002"));
        assert_eq!(
            hosting["hostFromContainerRuntime"].as_str(),
            Some("localhost:5002")
        );
        assert_eq!(
            hosting["hostFromClusterNetwork"].as_str(),
            Some("kindred-registry:5000")
        );
    }

    #[test]
    fn the_first_config_dir_is_used() {
        assert_eq!(
            first_config_dir("/etc/containerd/certs.d:/etc/docker/certs.d"),
            Some("/etc/containerd/certs.d")
        );
        assert_eq!(first_config_dir("/x"), Some("/x"));
        assert_eq!(first_config_dir(""), None);
        assert_eq!(first_config_dir(" : "), None);
    }
}
