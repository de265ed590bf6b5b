//! What a node image needs of the host, checked before anything is created: Kubernetes 1.35
//! and later refuse to run on cgroup v1, so such an image on a cgroup v1 Docker host would
//! only fail minutes later inside `kubeadm init`. The default version follows from the same
//! fact: the newest one the host runs. Likewise kube-proxy's IPVS mode needs kernel modules
//! the nodes cannot load themselves (they share the host's kernel).

use super::ClusterError;
use crate::config::KubeProxyMode;
use crate::defaults::HostDefault;
use crate::kubeadm::KubeVersion;
use crate::provider::Provider;

/// Label node images carry with their Kubernetes version (kind's images do not; their
/// `/kind/version` file is read instead).
const VERSION_LABEL: &str = "io.kindred.kubernetes-version";
/// The first Kubernetes minor release whose kubelet refuses cgroup v1.
const FIRST_MINOR_WITHOUT_CGROUP_V1: u32 = 35;

/// The default Kubernetes version for this Docker host: the newest that runs on it.
pub async fn host_default(docker: &dyn Provider) -> Result<HostDefault, ClusterError> {
    Ok(HostDefault::for_cgroup(&docker.cgroup_version().await?))
}

/// Refuses node images the Docker host cannot run.
pub(super) async fn check_images(
    docker: &dyn Provider,
    images: &[&str],
) -> Result<(), ClusterError> {
    if docker.cgroup_version().await? != "1" {
        return Ok(());
    }
    for image in images {
        let version = image_kube_version(docker, image).await?;
        runs_on_cgroup_v1(image, &version)?;
    }
    Ok(())
}

/// Refuses Podman on a cgroup v1 host. A node there needs a cgroup namespace of its own, and
/// Podman's Docker-compatible API ignores `HostConfig.CgroupnsMode` (seen with Podman 4.3 and
/// 5.4; `podman run --cgroupns=private` works, the API does not), so the node would share the
/// host's and its systemd would never come up. On cgroup v2 Podman's default is private.
pub async fn check_runtime(docker: &dyn Provider) -> Result<(), ClusterError> {
    if docker.cgroup_version().await? != "1" {
        return Ok(());
    }
    match docker.podman_version().await? {
        Some(version) => Err(ClusterError::PodmanOnCgroupV1 { version }),
        None => Ok(()),
    }
}

async fn image_kube_version(docker: &dyn Provider, image: &str) -> Result<String, ClusterError> {
    if let Some(v) = docker.image_labels(image).await?.get(VERSION_LABEL) {
        return Ok(v.clone());
    }
    let bytes = docker.read_image_file(image, "/kind/version").await?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

fn runs_on_cgroup_v1(image: &str, version: &str) -> Result<(), ClusterError> {
    // An unreadable version is left for kubeadm to judge, as before this check.
    let Ok(parsed) = KubeVersion::parse(version) else {
        return Ok(());
    };
    if !parsed.at_least(FIRST_MINOR_WITHOUT_CGROUP_V1) {
        return Ok(());
    }
    Err(ClusterError::NeedsCgroupV2 {
        image: image.to_string(),
        version: version.to_string(),
    })
}

/// The modules kube-proxy's IPVS mode refuses to start without (it checks that each is
/// loaded or built in; it loads none itself).
const IPVS_MODULES: [&str; 4] = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"];

/// Refuses `kubeProxyMode: ipvs` on a kernel without IPVS, which kube-proxy would only report
/// in its log while every Service stays unreachable. The kernel is the one kindred runs on:
/// Docker's, unless DOCKER_HOST points elsewhere.
pub(super) fn check_kube_proxy_mode(mode: KubeProxyMode) -> Result<(), ClusterError> {
    if mode != KubeProxyMode::Ipvs {
        return Ok(());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let loaded = std::fs::read_to_string("/proc/modules").ok();
    let builtin =
        std::fs::read_to_string(format!("/lib/modules/{}/modules.builtin", release.trim())).ok();
    let missing = ipvs_missing(loaded.as_deref(), builtin.as_deref());
    if missing.is_empty() {
        return Ok(());
    }
    Err(ClusterError::NoIpvs {
        missing: missing.join(", "),
        fix: if loaded.is_none() {
            "this kernel cannot load modules (no /proc/modules): boot one with IPVS built in"
        } else {
            "load them on the Docker host: `modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh`"
        },
    })
}

/// Which IPVS modules are neither in `/proc/modules` nor in the kernel's `modules.builtin`.
fn ipvs_missing(loaded: Option<&str>, builtin: Option<&str>) -> Vec<&'static str> {
    let loaded: Vec<&str> = loaded
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // modules.builtin lists paths: kernel/net/netfilter/ipvs/ip_vs_rr.ko
    let builtin: Vec<&str> = builtin
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next()?.split('.').next())
        .collect();
    IPVS_MODULES
        .into_iter()
        .filter(|m| !loaded.contains(m) && !builtin.contains(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_modules_count_when_loaded_or_built_in() {
        let loaded = "ip_vs_rr 12288 0 - Live 0x0\nip_vs 204800 1 ip_vs_rr, Live 0x0\n";
        let builtin =
            "kernel/net/netfilter/ipvs/ip_vs_wrr.ko\nkernel/net/netfilter/ipvs/ip_vs_sh.ko\n";
        assert!(ipvs_missing(Some(loaded), Some(builtin)).is_empty());
        assert_eq!(
            ipvs_missing(Some(loaded), None),
            vec!["ip_vs_wrr", "ip_vs_sh"]
        );
        // No module support and no list of built-ins (this CI machine): all missing.
        assert_eq!(ipvs_missing(None, None), IPVS_MODULES.to_vec());
        assert!(check_kube_proxy_mode(KubeProxyMode::Iptables).is_ok());
    }

    #[test]
    fn kubernetes_1_35_and_later_are_refused_on_cgroup_v1() {
        assert!(runs_on_cgroup_v1("kindred/node:v1.34.12", "v1.34.12").is_ok());
        assert!(runs_on_cgroup_v1("kindest/node:v1.30.0", "v1.30.0").is_ok());
        for v in ["v1.35.4", "v1.36.3", "v1.37.2", "v1.35.0-alpha.1"] {
            let err = runs_on_cgroup_v1("img", v).unwrap_err().to_string();
            assert!(err.contains(v) && err.contains("cgroup v1"), "{err}");
            assert!(
                err.contains("kindred build node-image --kube-version"),
                "{err}"
            );
        }
        assert!(runs_on_cgroup_v1("img", "not a version").is_ok());
    }
}
