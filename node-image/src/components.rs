//! The runtime components of a node besides Kubernetes itself, with the versions chosen for
//! each Kubernetes minor, all built from Go modules (see `gobuild`). etcd and CoreDNS follow
//! the image tags kubeadm asks for, so the images really contain those versions.

use std::path::Path;

use kindred::ui::Step;

use crate::gobuild::{GoBuild, GoEnv, GoOutput};
use crate::Error;

/// Versions of the container runtime stack for a Kubernetes minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersions {
    pub containerd: &'static str,
    pub runc: &'static str,
    pub cni_plugins: &'static str,
    pub crictl: &'static str,
}

/// containerd 2.1 is the line Kubernetes 1.33-1.35 were released and tested against (CRI v1,
/// cgroup v1 still supported); runc 1.3 is the runc line containerd 2.1 pins (1.3.6 is the
/// newest the module proxy serves); CNI plugins 1.7 has the ptp/host-local/portmap/bridge/
/// loopback plugins kindred's network uses; crictl follows the Kubernetes minor it talks to
/// (1.34.0, the one release of cri-tools the proxy serves, speaks CRI v1 to every minor here).
pub fn runtime_versions(kube_minor: u32) -> RuntimeVersions {
    let _ = kube_minor; // One set serves every supported minor today; split here when that changes.
    RuntimeVersions {
        containerd: "v2.1.5",
        runc: "v1.3.6",
        cni_plugins: "v1.7.1",
        crictl: "v1.34.0",
    }
}

/// The CNI plugins installed in /opt/cni/bin.
pub const CNI_PLUGINS: &[&str] = &[
    "plugins/main/ptp",
    "plugins/main/bridge",
    "plugins/main/loopback",
    "plugins/ipam/host-local",
    "plugins/meta/portmap",
];

pub fn containerd(v: &RuntimeVersions) -> GoBuild {
    let m = "github.com/containerd/containerd/v2";
    let packages = ["containerd", "containerd-shim-runc-v2", "ctr"]
        .iter()
        .map(|c| format!("{m}/cmd/{c}"))
        .collect();
    GoBuild {
        ldflags: vec![
            format!("-X {m}/version.Version={}", v.containerd),
            format!("-X {m}/version.Package={m}"),
        ],
        // As upstream's Makefile; without cgo the btrfs driver is left out by itself.
        tags: vec!["urfave_cli_no_docs".into()],
        ..GoBuild::new("containerd", m, v.containerd, packages)
    }
}

/// runc needs cgo (its nsenter is C). It is linked statically so it does not depend on the
/// node's libraries; seccomp support comes from libseccomp's static archive.
pub fn runc(v: &RuntimeVersions) -> GoBuild {
    let m = "github.com/opencontainers/runc";
    GoBuild {
        // runc embeds its version from its VERSION file; the commit is not in the proxy.
        ldflags: vec![format!("-X main.gitCommit={}", v.runc)],
        tags: ["seccomp", "urfave_cli_no_docs", "netgo", "osusergo"]
            .map(String::from)
            .to_vec(),
        cgo: true,
        extldflags: Some("-static".into()),
        ..GoBuild::new("runc", m, v.runc, vec![m.into()])
    }
}

/// crictl, the CRI command line users and `kindred export logs` reach for inside nodes. The
/// proxy serves exact cri-tools versions only (no version list), hence the pinned one.
pub fn crictl(v: &RuntimeVersions) -> GoBuild {
    let m = "sigs.k8s.io/cri-tools";
    GoBuild {
        ldflags: vec![format!(
            "-X {m}/pkg/version.Version={}",
            v.crictl.trim_start_matches('v')
        )],
        ..GoBuild::new("crictl", m, v.crictl, vec![format!("{m}/cmd/crictl")])
    }
}

pub fn cni_plugins(v: &RuntimeVersions) -> GoBuild {
    let m = "github.com/containernetworking/plugins";
    let packages = CNI_PLUGINS.iter().map(|p| format!("{m}/{p}")).collect();
    GoBuild {
        ldflags: vec![format!(
            "-X {m}/pkg/utils/buildversion.BuildVersion={}",
            v.cni_plugins
        )],
        ..GoBuild::new("cni-plugins", m, v.cni_plugins, packages)
    }
}

/// etcd at the version in kubeadm's image tag (`3.6.5-0` -> `v3.6.5`). etcdctl and etcdutl are
/// modules of their own, released together with the server.
pub fn etcd(image_tag: &str) -> GoBuild {
    let version = format!("v{}", image_tag.split('-').next().unwrap_or(image_tag));
    let (server, ctl, utl) = (
        "go.etcd.io/etcd/server/v3",
        "go.etcd.io/etcd/etcdctl/v3",
        "go.etcd.io/etcd/etcdutl/v3",
    );
    GoBuild {
        companion_modules: vec![ctl.into(), utl.into()],
        // Go names the server's binary after its module directory.
        renames: vec![("server".into(), "etcd".into())],
        sibling_version: Some(version.clone()),
        ..GoBuild::new(
            "etcd",
            server,
            &version,
            vec![server.into(), ctl.into(), utl.into()],
        )
    }
}

/// CoreDNS at the version in kubeadm's image tag.
pub fn coredns(image_tag: &str) -> GoBuild {
    let m = "github.com/coredns/coredns";
    GoBuild::new("coredns", m, image_tag, vec![m.into()])
}

/// kindred's own pause, built from the Go source embedded in this crate.
pub async fn pause(go: &GoEnv, tag: &str, no_cache: bool, step: &Step) -> Result<GoOutput, Error> {
    let program = LocalProgram {
        name: "pause",
        main_go: include_str!("../pause/main.go"),
        go_mod: include_str!("../pause/go.mod"),
        ldflags: format!("-s -w -X main.version={tag}"),
        cache_name: format!("pause-{tag}"),
    };
    program.build(go, no_cache, step).await
}

/// kindred's rewriter of containerd's metadata database (see node-image/metadb/main.go),
/// which makes the preloaded store reproducible.
pub async fn metadb(go: &GoEnv, no_cache: bool, step: &Step) -> Result<GoOutput, Error> {
    let program = LocalProgram {
        name: "metadb",
        main_go: include_str!("../metadb/main.go"),
        go_mod: include_str!("../metadb/go.mod"),
        ldflags: "-s -w".into(),
        cache_name: "metadb".into(),
    };
    program.build(go, no_cache, step).await
}

/// A Go program whose source is embedded in this crate: one main.go and its go.mod (whose
/// requirements come from the module proxy), built static with -trimpath into `out/<name>`,
/// cached by source, flags and Go version.
struct LocalProgram {
    name: &'static str,
    main_go: &'static str,
    go_mod: &'static str,
    ldflags: String,
    cache_name: String,
}

impl LocalProgram {
    async fn build(&self, go: &GoEnv, no_cache: bool, step: &Step) -> Result<GoOutput, Error> {
        let key = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for part in [self.main_go, self.go_mod, &self.ldflags, &go.go_version] {
                h.update(part.as_bytes());
                h.update(b"\0");
            }
            hex::encode(h.finalize())[..16].to_string()
        };
        let dir = go
            .cache_root
            .join("go-builds")
            .join(format!("{}-{key}", self.cache_name));
        let out = GoOutput {
            dir: dir.join("out"),
            go_version: go.go_version.clone(),
        };
        if !no_cache && dir.join("done").exists() {
            return Ok(out);
        }
        write(&dir.join("main.go"), self.main_go)?;
        write(&dir.join("go.mod"), self.go_mod)?;
        let mut cmd = go.command(&dir);
        let target = format!("out/{}", self.name);
        cmd.env("CGO_ENABLED", "0").args([
            "build",
            "-trimpath",
            "-ldflags",
            &self.ldflags,
            "-o",
            &target,
            ".",
        ]);
        kindred::process::run(cmd, step)
            .await
            .map_err(|e| Error::Step {
                step: format!("building {}", self.name),
                source: Box::new(e),
            })?;
        write(&dir.join("done"), "")?;
        Ok(out)
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_version_follows_kubeadm_tag() {
        let b = etcd("3.6.5-0");
        assert_eq!(b.version, "v3.6.5");
        assert_eq!(b.sibling_version.as_deref(), Some("v3.6.5"));
        assert!(b
            .companion_modules
            .contains(&"go.etcd.io/etcd/etcdctl/v3".to_string()));
        assert_eq!(coredns("v1.12.1").version, "v1.12.1");
    }

    #[test]
    fn runc_is_static_with_seccomp() {
        let b = runc(&runtime_versions(34));
        assert!(b.cgo && b.tags.contains(&"seccomp".to_string()));
        assert_eq!(b.extldflags.as_deref(), Some("-static"));
    }
}
