//! Preloading: the control-plane images are imported into containerd's `k8s.io` namespace at
//! build time, so clusters never pull. containerd runs for a moment in a throwaway container
//! made from the Debian base (no privileges needed: images are imported without unpacking),
//! writing into a host directory that then becomes the image's /var/lib/containerd layer.

use std::collections::HashMap;
use std::path::Path;

use kindred::provider::{ContainerSpec, Provider};
use kindred::ui::Step;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::base::Base;
use crate::gobuild::GoOutput;
use crate::images::BuiltImages;
use crate::layer::{LayerBlob, LayerBuilder};
use crate::oci::{write_docker_archive, ImageConfig, ImageSpec};
use crate::Error;

const RECIPE_VERSION: &str = "preload-v2";

/// Label put on every throwaway container and image kindred's builder creates.
pub const BUILD_LABEL: &str = "io.kindred.build";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preloaded {
    pub layer: LayerBlob,
    /// What containerd listed after the import, one reference per line.
    pub listed: Vec<String>,
}

/// The script run inside the throwaway container.
const IMPORT_SCRIPT: &str = r#"set -eu
mkdir -p /run/containerd
cat > /tmp/containerd.toml <<'TOML'
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
TOML
/kindred-bin/containerd --config /tmp/containerd.toml >/tmp/containerd.log 2>&1 &
containerd_pid=$!
for i in $(seq 100); do /kindred-bin/ctr version >/dev/null 2>&1 && break; sleep 0.1; done
/kindred-bin/ctr version >/dev/null || { cat /tmp/containerd.log; exit 1; }
for f in /kindred-images/*.tar; do
  /kindred-bin/ctr -n k8s.io images import --no-unpack --all-platforms "$f" >/dev/null
done
# Collect what the imports left unreferenced now rather than whenever containerd's scheduler
# gets to it: deleting a lease with --sync runs the garbage collector and waits for it.
lease=$(/kindred-bin/ctr -n k8s.io leases create)
/kindred-bin/ctr -n k8s.io leases delete --sync "${lease%% *}"
/kindred-bin/ctr -n k8s.io images ls -q
kill "$containerd_pid"
wait "$containerd_pid" || true
"#;

/// The programs the preload runs: containerd and its `ctr` (in a throwaway container), and
/// kindred's metadb (on the host, afterwards).
pub struct PreloadTools<'a> {
    pub containerd: &'a GoOutput,
    pub metadb: &'a GoOutput,
}

pub async fn preload(
    docker: &dyn Provider,
    base: &Base,
    tools: &PreloadTools<'_>,
    images: &BuiltImages,
    cache: &Path,
    no_cache: bool,
    step: &Step,
) -> Result<Preloaded, Error> {
    let PreloadTools { containerd, metadb } = tools;
    let key = {
        let mut h = Sha256::new();
        h.update(RECIPE_VERSION.as_bytes());
        h.update(images.key.as_bytes());
        h.update(containerd.dir.to_string_lossy().as_bytes());
        h.update(metadb.dir.to_string_lossy().as_bytes());
        hex::encode(h.finalize())[..16].to_string()
    };
    let dir = cache.join("preload").join(&key);
    let manifest = dir.join("preload.json");
    if !no_cache {
        if let Some(p) = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|t| serde_json::from_str::<Preloaded>(&t).ok())
        {
            if p.layer.path.exists() {
                step.detail(format!("preloaded content cached in {}", dir.display()));
                return Ok(p);
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let root = dir.join("containerd-root");
    let archives = dir.join("archives");
    for d in [&root, &archives] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    // Hard links keep the bind mount to one directory without copying hundreds of MB.
    for img in &images.images {
        let dest = archives.join(img.archive.file_name().expect("archive has a name"));
        std::fs::hard_link(&img.archive, &dest)
            .or_else(|_| std::fs::copy(&img.archive, &dest).map(|_| ()))
            .map_err(|e| Error::io(&dest, e))?;
    }

    let base_image = ensure_base_image(docker, base, step).await?;
    let name = format!("kindred-preload-{}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: base_image,
        labels: HashMap::from([(BUILD_LABEL.to_string(), "preload".to_string())]),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), IMPORT_SCRIPT.into()]),
        binds: vec![
            format!("{}:/kindred-bin:ro", containerd.dir.display()),
            format!("{}:/kindred-images:ro", archives.display()),
            format!("{}:/var/lib/containerd", root.display()),
        ],
        network: Some("none".into()),
        ..Default::default()
    };
    docker.run(&spec).await?;
    let code = docker.wait(&name).await;
    let logs = docker.logs(&name).await.unwrap_or_default();
    docker.remove_container(&name).await?;
    let code = code?;
    step.detail(&logs);
    if code != 0 {
        return Err(Error::Msg(format!(
            "importing images into containerd failed (exit {code}):\n{logs}"
        )));
    }
    let listed: Vec<String> = logs
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for img in &images.images {
        if !listed.contains(&img.name) {
            return Err(Error::Msg(format!(
                "containerd did not list {} after the import; it listed:\n{logs}",
                img.name
            )));
        }
    }

    let db = root.join("io.containerd.metadata.v1.bolt/meta.db");
    let mut cmd = tokio::process::Command::new(metadb.binary("metadb"));
    cmd.arg(&db);
    kindred::process::run(cmd, step)
        .await
        .map_err(|e| Error::Step {
            step: "making containerd's metadata reproducible".into(),
            source: Box::new(e),
        })?;

    let mut layer = LayerBuilder::new();
    // containerd's instance UUID, drawn at its first start: each node draws its own.
    layer.add_tree(&root, Path::new("var/lib/containerd"), |p| {
        p != Path::new("var/lib/containerd/io.containerd.grpc.v1.introspection/uuid")
    })?;
    let blob = layer.write_gzip_blob(&dir)?;
    std::fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    std::fs::remove_dir_all(&archives).map_err(|e| Error::io(&archives, e))?;
    let pre = Preloaded {
        layer: blob,
        listed,
    };
    std::fs::write(
        &manifest,
        serde_json::to_string_pretty(&pre).expect("serializable"),
    )
    .map_err(|e| Error::io(&manifest, e))?;
    Ok(pre)
}

/// The Debian base as a Docker image (`kindred/base:<key>`), loaded once per daemon.
pub async fn ensure_base_image(
    docker: &dyn Provider,
    base: &Base,
    step: &Step,
) -> Result<String, Error> {
    let name = format!("kindred/base:{}", base.key);
    if docker.image_exists(&name).await? {
        return Ok(name);
    }
    step.detail(format!("loading {name} into Docker"));
    let spec = ImageSpec {
        name: name.clone(),
        config: ImageConfig {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            labels: [(BUILD_LABEL.to_string(), "base".to_string())].into(),
            ..Default::default()
        },
        layers: vec![base.layer.clone()],
        created: "1970-01-01T00:00:00Z".into(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("kindred-base-")
        .suffix(".tar")
        .tempfile()
        .map_err(|e| Error::io("temp file", e))?;
    write_docker_archive(&[spec], tmp.path())?;
    docker.load_archive(tmp.path()).await?;
    Ok(name)
}
