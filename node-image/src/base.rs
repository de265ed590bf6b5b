//! The Debian base: a debootstrapped rootfs with systemd and the networking tools kubelet and
//! kube-proxy use, built once and cached as a layer keyed by suite, mirror and package list.

use std::path::{Path, PathBuf};

use kindred::ui::Step;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::dpkg;
use crate::layer::{LayerBlob, LayerBuilder};
use crate::Error;

/// Packages on top of debootstrap's minbase. Each is here for a reason:
/// systemd/dbus: PID 1 and its bus; iptables, nftables, ipset, conntrack, ebtables: kube-proxy
/// and CNI portmap program the node; iproute2, ethtool, socat, util-linux, mount, kmod, procps:
/// kubelet and kubeadm shell out to them; ca-certificates: TLS to registries; libseccomp2:
/// seccomp profiles for pods.
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iptables",
    "nftables",
    "ipset",
    "conntrack",
    "ebtables",
    "iproute2",
    "ethtool",
    "socat",
    "util-linux",
    "mount",
    "kmod",
    "procps",
    "ca-certificates",
    "libseccomp2",
];

/// Bumped whenever what this module does to the rootfs changes, so old caches are not reused.
const RECIPE_VERSION: &str = "base-v2";

#[derive(Debug, Clone)]
pub struct BaseOptions {
    pub suite: String,
    pub mirror: String,
    /// Packages installed on top of [`BASE_PACKAGES`] (the conformance test images take
    /// curl, dig, nc and busybox from such a rootfs); part of the cache key when not empty.
    pub extra_packages: Vec<String>,
}

impl Default for BaseOptions {
    fn default() -> Self {
        BaseOptions {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            extra_packages: vec![],
        }
    }
}

/// A Debian package in the base, for the BOM.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// sha256 of the .deb debootstrap installed it from.
    pub sha256: String,
}

/// The cached base: the rootfs on disk (other steps take files from it) and its layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Base {
    pub key: String,
    pub rootfs: PathBuf,
    pub layer: LayerBlob,
    pub packages: Vec<DebPackage>,
    pub suite: String,
}

pub async fn ensure_base(
    opts: &BaseOptions,
    cache: &Path,
    no_cache: bool,
    step: &Step,
) -> Result<Base, Error> {
    let key = cache_key(opts);
    let dir = cache.join("base").join(&key);
    let manifest = dir.join("base.json");
    if !no_cache {
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if let Ok(base) = serde_json::from_str::<Base>(&text) {
                if base.layer.path.exists() && base.rootfs.exists() {
                    step.detail(format!("Debian base cached in {}", dir.display()));
                    return Ok(base);
                }
            }
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Msg(format!(
            "building the Debian base rootfs needs root (debootstrap creates device nodes and chowns files). \
             Run this build once with sudo; the result is cached in {} for later builds",
            dir.display()
        )));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let rootfs = dir.join("rootfs");

    step.progress("debootstrap");
    let mut cmd = Command::new("debootstrap");
    let include: Vec<&str> = BASE_PACKAGES
        .iter()
        .copied()
        .chain(opts.extra_packages.iter().map(String::as_str))
        .collect();
    cmd.args(["--variant=minbase", "--components=main"])
        .arg(format!("--include={}", include.join(",")))
        .arg(&opts.suite)
        .arg(&rootfs)
        .arg(&opts.mirror);
    kindred::process::run(cmd, step)
        .await
        .map_err(|e| Error::Step {
            step: "debootstrap of the Debian base".into(),
            source: Box::new(e),
        })?;

    make_machine_neutral(&rootfs)?;
    step.progress("bill of materials");
    let packages = installed_packages(&rootfs)?;

    step.progress("layer");
    let mut layer = LayerBuilder::new();
    let skipped = layer.add_tree(&rootfs, Path::new(""), keep_in_base)?;
    for s in skipped {
        step.detail(format!("not in the layer (special file): {}", s.display()));
    }
    let blob = layer.write_gzip_blob(&dir)?;

    let base = Base {
        key,
        rootfs,
        layer: blob,
        packages,
        suite: opts.suite.clone(),
    };
    let text = serde_json::to_string_pretty(&base).expect("serializable");
    std::fs::write(&manifest, text).map_err(|e| Error::io(&manifest, e))?;
    Ok(base)
}

/// Removes what package installation made unique to this build (hack/check-reproducible.sh
/// found each): systemd's postinst writes a random /etc/machine-id, which dbus copies to its
/// own file, and ldconfig's aux-cache records inodes and times. An empty machine-id makes
/// each node generate its own at boot (the entrypoint does); dbus's becomes the link to it that
/// systemd's tmpfiles would make; the aux-cache is only a cache.
fn make_machine_neutral(rootfs: &Path) -> Result<(), Error> {
    let machine_id = rootfs.join("etc/machine-id");
    std::fs::write(&machine_id, b"").map_err(|e| Error::io(&machine_id, e))?;
    let dbus_id = rootfs.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok() {
        std::fs::remove_file(&dbus_id).map_err(|e| Error::io(&dbus_id, e))?;
        std::os::unix::fs::symlink("/etc/machine-id", &dbus_id)
            .map_err(|e| Error::io(&dbus_id, e))?;
    }
    let aux_cache = rootfs.join("var/cache/ldconfig/aux-cache");
    match std::fs::remove_file(&aux_cache) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&aux_cache, e)),
        _ => Ok(()),
    }
}

fn cache_key(opts: &BaseOptions) -> String {
    let mut h = Sha256::new();
    for part in [RECIPE_VERSION, &opts.suite, &opts.mirror] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for p in BASE_PACKAGES {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    // Only when there are any, so the node image's base keeps its key.
    if !opts.extra_packages.is_empty() {
        h.update(b"extra\0");
        for p in &opts.extra_packages {
            h.update(p.as_bytes());
            h.update(b"\0");
        }
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// What of the debootstrapped tree goes into the image: no docs, no package caches, nothing
/// under the pseudo filesystems Docker mounts itself.
fn keep_in_base(path: &Path) -> bool {
    const DROP: &[&str] = &[
        "usr/share/doc/",
        "usr/share/man/",
        "usr/share/info/",
        "usr/share/locale/",
        "usr/share/lintian/",
        "var/cache/apt/",
        "var/lib/apt/lists/",
        "var/log/",
        "dev/",
        "proc/",
        "sys/",
        "run/",
        "tmp/",
        "debootstrap/",
    ];
    let p = path.to_string_lossy();
    // Keep the directories themselves (empty) so the layout stays familiar.
    !DROP.iter().any(|d| p.starts_with(d) && p.len() > d.len())
}

/// Every installed package with the sha256 of its .deb from debootstrap's download cache.
fn installed_packages(rootfs: &Path) -> Result<Vec<DebPackage>, Error> {
    let status_path = rootfs.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path).map_err(|e| Error::io(&status_path, e))?;
    let archives = rootfs.join("var/cache/apt/archives");
    let mut out = Vec::new();
    for p in dpkg::parse_status(&status) {
        // Debian file names encode the epoch colon as %3a.
        let file = archives.join(format!(
            "{}_{}_{}.deb",
            p.name,
            p.version.replace(':', "%3a"),
            p.architecture
        ));
        let sha256 = match std::fs::read(&file) {
            Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
            Err(_) => String::from("unknown"),
        };
        out.push(DebPackage {
            name: p.name,
            version: p.version,
            architecture: p.architecture,
            sha256,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_carries_no_identity_of_the_build_machine() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in ["etc", "var/lib/dbus", "var/cache/ldconfig"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(
            r.join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::write(r.join("var/lib/dbus/machine-id"), "0123\n").unwrap();
        std::fs::write(r.join("var/cache/ldconfig/aux-cache"), "inodes").unwrap();
        make_machine_neutral(r).unwrap();
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert_eq!(
            std::fs::read_link(r.join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert!(!r.join("var/cache/ldconfig/aux-cache").exists());
        // Again (nothing left to remove) is fine too.
        make_machine_neutral(r).unwrap();
    }

    #[test]
    fn docs_and_caches_are_dropped_but_their_dirs_kept() {
        assert!(!keep_in_base(Path::new("usr/share/doc/bash/copyright")));
        assert!(keep_in_base(Path::new("usr/share/doc/")));
        assert!(!keep_in_base(Path::new(
            "var/cache/apt/archives/bash_5.2_amd64.deb"
        )));
        assert!(!keep_in_base(Path::new("dev/null")));
        assert!(keep_in_base(Path::new("usr/sbin/iptables")));
        assert!(keep_in_base(Path::new("var/lib/dpkg/status")));
    }

    #[test]
    fn key_depends_on_suite_and_mirror() {
        let a = BaseOptions::default();
        let b = BaseOptions {
            mirror: "http://mirror.example/debian".into(),
            ..BaseOptions::default()
        };
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_eq!(cache_key(&a), cache_key(&BaseOptions::default()));
        let extra = BaseOptions {
            extra_packages: vec!["curl".into()],
            ..BaseOptions::default()
        };
        assert_ne!(cache_key(&a), cache_key(&extra));
    }

    #[test]
    fn default_key_is_unchanged_by_the_extra_packages_field() {
        // Pinned: a new key rebuilds every user's base, so it changes only on purpose (base-v2:
        // the machine-neutral rootfs).
        assert_eq!(cache_key(&BaseOptions::default()), "225fb4a7b66ac9cb");
    }
}
