//! Defaults shared by every command. The default Kubernetes version is pinned here and only here.

/// The Kubernetes version built and used when none is given: the newest v1.34 patch release
/// available from the Go module proxy. v1.34 is the newest line whose kubelet still runs on
/// cgroup v1 hosts without extra flags.
pub const KUBERNETES_VERSION: &str = "v1.34.12";

/// Repository of node images built by `kindred build node-image`.
pub const NODE_IMAGE_REPO: &str = "kindred/node";

/// The node image reference for a Kubernetes version, e.g. `kindred/node:v1.34.12`.
pub fn node_image(kube_version: &str) -> String {
    format!("{NODE_IMAGE_REPO}:{kube_version}")
}

/// The image `create cluster` uses when neither flag nor config names one.
pub fn default_node_image() -> String {
    node_image(KUBERNETES_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_image_is_tagged_with_the_pinned_version() {
        assert_eq!(
            default_node_image(),
            format!("kindred/node:{KUBERNETES_VERSION}")
        );
        assert!(KUBERNETES_VERSION.starts_with("v1.34."));
    }
}
