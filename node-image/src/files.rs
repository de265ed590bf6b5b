//! The kindred layer of a node image: Kubernetes and runtime binaries, systemd units, the
//! entrypoint, containerd's config, and the metadata files (BOM, kind-compatible version).

use kindred::agent::manifests;
use kindred::ui::Step;

use crate::gobuild::GoOutput;
use crate::kube::{KubeBinaries, KUBE_BINARIES};
use crate::layer::{LayerBlob, LayerBuilder};
use crate::Error;

pub const ENTRYPOINT: &str = "/usr/local/bin/entrypoint";

/// Units systemd would start that make no sense in a container (no consoles, kernel debug
/// filesystems, module loading, apt timers); masked so boot is quick and clean.
const MASKED_UNITS: &[&str] = &[
    "getty.target",
    "console-getty.service",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-journald-audit.socket",
    "systemd-firstboot.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
];

pub struct NodeFiles<'a> {
    pub kube: &'a KubeBinaries,
    pub containerd: &'a GoOutput,
    pub runc: &'a GoOutput,
    pub cni: &'a GoOutput,
    pub crictl: &'a GoOutput,
    pub sandbox_image: &'a str,
    /// The kindred binary (the agent image's too): nodes can run `kindred agent ...`, and HA
    /// clusters run their API load balancer from the node image with it.
    pub kindred: &'a std::path::Path,
    /// The BOM documents, as (path in the image, content): kindred's JSON, SPDX, CycloneDX.
    pub bom_documents: &'a [(&'static str, Vec<u8>)],
}

/// (path in image, mode, host file) for every binary kindred installs.
pub fn binaries(n: &NodeFiles) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    for b in ["kubeadm", "kubelet", "kubectl"] {
        out.push((format!("usr/bin/{b}"), n.kube.path(b)));
    }
    for b in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        out.push((format!("usr/local/bin/{b}"), n.containerd.binary(b)));
    }
    out.push(("usr/local/sbin/runc".into(), n.runc.binary("runc")));
    out.push(("usr/local/bin/crictl".into(), n.crictl.binary("crictl")));
    out.push(("usr/local/bin/kindred".into(), n.kindred.to_path_buf()));
    for p in crate::components::CNI_PLUGINS {
        let b = p.rsplit('/').next().expect("plugin path has a name");
        out.push((format!("opt/cni/bin/{b}"), n.cni.binary(b)));
    }
    out
}

/// Files kindred writes itself, as (path, mode, content).
pub fn generated_files(n: &NodeFiles) -> Vec<(String, u32, Vec<u8>)> {
    let containerd_config = include_str!("../files/containerd-config.toml")
        .replace("{{SANDBOX_IMAGE}}", n.sandbox_image);
    let boms = n.bom_documents.iter().map(|(path, content)| {
        (
            path.trim_start_matches('/').to_string(),
            0o644,
            content.clone(),
        )
    });
    let mut files = vec![
        (
            ENTRYPOINT.trim_start_matches('/').into(),
            0o755,
            include_bytes!("../files/entrypoint.sh").to_vec(),
        ),
        (
            "etc/systemd/system/containerd.service".into(),
            0o644,
            include_bytes!("../files/containerd.service").to_vec(),
        ),
        (
            "etc/systemd/system/kubelet.service".into(),
            0o644,
            include_bytes!("../files/kubelet.service").to_vec(),
        ),
        (
            "etc/systemd/system/kubelet.slice".into(),
            0o644,
            include_bytes!("../files/kubelet.slice").to_vec(),
        ),
        (
            "etc/systemd/system/kubelet.service.d/10-kubeadm.conf".into(),
            0o644,
            include_bytes!("../files/10-kubeadm.conf").to_vec(),
        ),
        (
            "etc/containerd/config.toml".into(),
            0o644,
            containerd_config.into_bytes(),
        ),
        (
            "etc/crictl.yaml".into(),
            0o644,
            include_bytes!("../files/crictl.yaml").to_vec(),
        ),
        // kind reads the version from here; keeping the path lets either tool use the image.
        (
            "kind/version".into(),
            0o644,
            format!("{}\n", n.kube.version).into_bytes(),
        ),
        // Applied by `create cluster` (kind keeps its add-on manifests in the same place).
        (
            manifests::DEFAULT_CNI_PATH.trim_start_matches('/').into(),
            0o644,
            manifests::default_cni(kindred::agent::IMAGE).into_bytes(),
        ),
        (
            manifests::DEFAULT_STORAGE_PATH
                .trim_start_matches('/')
                .into(),
            0o644,
            manifests::default_storage(kindred::agent::IMAGE).into_bytes(),
        ),
    ];
    files.extend(boms);
    files
}

pub fn files_layer(
    n: &NodeFiles,
    out_dir: &std::path::Path,
    step: &Step,
) -> Result<LayerBlob, Error> {
    debug_assert_eq!(KUBE_BINARIES.len(), 7);
    let mut layer = LayerBuilder::new();
    for (path, host) in binaries(n) {
        layer.add_file_from_disk(path, 0o755, host)?;
    }
    for (path, mode, content) in generated_files(n) {
        layer.add_file(path, mode, content)?;
    }
    for dir in [
        "etc/containerd/conf.d",
        "etc/cni/net.d",
        "etc/kubernetes/manifests",
        "var/lib/kubelet",
        "var/lib/etcd",
    ] {
        layer.add_dir(dir, 0o755)?;
    }
    for unit in MASKED_UNITS {
        layer.add_symlink(format!("etc/systemd/system/{unit}"), "/dev/null")?;
    }
    for unit in ["containerd.service", "kubelet.service"] {
        layer.add_symlink(
            format!("etc/systemd/system/multi-user.target.wants/{unit}"),
            format!("/etc/systemd/system/{unit}"),
        )?;
    }
    layer.add_symlink(
        "etc/systemd/system/default.target",
        "/lib/systemd/system/multi-user.target",
    )?;
    // An empty machine-id makes systemd treat each container as a new machine.
    layer.add_file("etc/machine-id", 0o444, Vec::new())?;
    step.progress("writing the kindred layer");
    Ok(layer.write_gzip_blob(out_dir)?)
}
