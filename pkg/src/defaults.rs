//! Defaults shared by every command. The default Kubernetes versions are pinned here and only
//! here; which one a command uses depends on the Docker host (`cluster::host_default`).

/// The Kubernetes version used on cgroup v1 Docker hosts, and wherever the host is not known:
/// the newest v1.34 patch release the Go module proxy serves. v1.34 is the newest line whose
/// kubelet still runs on cgroup v1.
pub const KUBERNETES_VERSION: &str = "v1.34.12";

/// The Kubernetes version used on cgroup v2 Docker hosts (most hosts since 2021): the newest
/// release kindred was tried with (docs/hosts.md).
pub const NEWEST_KUBERNETES_VERSION: &str = "v1.37.2";

/// Repository of node images built by `kindred build node-image`.
pub const NODE_IMAGE_REPO: &str = "kindred/node";

/// The default Kubernetes version for a host, and why it was chosen (shown by `kindred version`
/// and under `-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDefault {
    pub version: &'static str,
    pub reason: &'static str,
}

impl HostDefault {
    /// The default for a Docker host whose cgroup version is `cgroup` (`"1"` or `"2"`).
    pub fn for_cgroup(cgroup: &str) -> HostDefault {
        if cgroup == "1" {
            HostDefault {
                version: KUBERNETES_VERSION,
                reason: "this Docker host runs containers on cgroup v1, and Kubernetes 1.35 and \
                         later refuse cgroup v1",
            }
        } else {
            HostDefault {
                version: NEWEST_KUBERNETES_VERSION,
                reason: "this Docker host runs cgroup v2, so the newest Kubernetes kindred \
                         supports runs on it",
            }
        }
    }

    /// The node image of this version, e.g. `kindred/node:v1.37.2`.
    pub fn node_image(&self) -> String {
        node_image(self.version)
    }
}

/// The node image reference for a Kubernetes version, e.g. `kindred/node:v1.34.12`.
pub fn node_image(kube_version: &str) -> String {
    format!("{NODE_IMAGE_REPO}:{kube_version}")
}

/// The node image of the cgroup v1 default version: what configs are defaulted with before the
/// host is known (commands then replace it with the host's, see `Cluster::with_defaults_using`).
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

    #[test]
    fn cgroup_v2_hosts_get_the_newest_version_and_v1_hosts_the_last_that_runs_there() {
        let v1 = HostDefault::for_cgroup("1");
        assert_eq!(v1.version, KUBERNETES_VERSION);
        assert!(v1.reason.contains("cgroup v1"), "{}", v1.reason);
        let v2 = HostDefault::for_cgroup("2");
        assert_eq!(v2.version, NEWEST_KUBERNETES_VERSION);
        assert_eq!(v2.node_image(), "kindred/node:v1.37.2");
        assert!(v2.reason.contains("cgroup v2"), "{}", v2.reason);
    }
}
