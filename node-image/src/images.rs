//! The images kubeadm needs, made by kindred from binaries it built: no registry involved.
//! Each is an OCI archive with deterministic layers, so the same inputs give the same digests.
//! Names are exactly what `kubeadm config images list` prints for the Kubernetes version.

use std::path::{Path, PathBuf};

use kindred::ui::Step;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::base::Base;
use crate::bom::sha256_file;
use crate::components;
use crate::dpkg;
use crate::gobuild::{GoEnv, GoOutput};
use crate::kube::KubeBinaries;
use crate::layer::LayerBuilder;
use crate::oci::{write_oci_archive, ImageConfig, ImageSpec};
use crate::Error;

/// Bumped whenever the way images are assembled changes.
const RECIPE_VERSION: &str = "images-v2";
/// Image timestamps are fixed so digests depend only on content.
const CREATED: &str = "1970-01-01T00:00:00Z";
/// Packages kube-proxy and the kindred agent shell out to, copied with their libraries from
/// the Debian base into one layer both images share.
pub const SLIM_PACKAGES: &[&str] = &["iptables", "ipset", "conntrack", "nftables", "iproute2"];

/// The images `kubeadm config images list` names for this Kubernetes version.
pub async fn kubeadm_images(kube: &KubeBinaries) -> Result<Vec<String>, Error> {
    let out = Command::new(kube.path("kubeadm"))
        .args([
            "config",
            "images",
            "list",
            "--kubernetes-version",
            &kube.version,
        ])
        .output()
        .await
        .map_err(|e| Error::io(kube.path("kubeadm"), e))?;
    if !out.status.success() {
        return Err(Error::Msg(format!(
            "kubeadm config images list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// `registry.k8s.io/coredns/coredns:v1.12.1` -> ("coredns", "v1.12.1").
pub fn short_name_and_tag(image: &str) -> (&str, &str) {
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    (repo.rsplit('/').next().unwrap_or(repo), tag)
}

/// What the images kubeadm lists are made of besides Kubernetes itself: etcd and CoreDNS built
/// at the versions in kubeadm's image tags, and pause.
pub struct ImageComponents {
    /// Every image to make: kubeadm's list plus kindred's add-ons.
    pub names: Vec<String>,
    pub etcd: GoOutput,
    pub etcd_version: String,
    pub coredns: GoOutput,
    pub coredns_version: String,
    pub pause: GoOutput,
    pub pause_tag: String,
}

impl ImageComponents {
    pub fn inputs<'a>(
        &'a self,
        kube: &'a KubeBinaries,
        base: &'a Base,
        agent: &'a Path,
    ) -> ImageInputs<'a> {
        ImageInputs {
            kube,
            agent,
            etcd: &self.etcd,
            coredns: &self.coredns,
            pause: &self.pause,
            base,
        }
    }
}

pub async fn build_components(
    kube: &KubeBinaries,
    go: &GoEnv,
    no_cache: bool,
    step: &Step,
) -> Result<ImageComponents, Error> {
    let mut names = kubeadm_images(kube).await?;
    names.extend(addon_images());
    let tag_of = |short: &str| {
        names
            .iter()
            .map(|n| short_name_and_tag(n))
            .find(|(s, _)| *s == short)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| Error::Msg(format!("kubeadm {} lists no {short} image", kube.version)))
    };
    let (etcd_tag, coredns_tag, pause_tag) =
        (tag_of("etcd")?, tag_of("coredns")?, tag_of("pause")?);
    let etcd_build = components::etcd(&etcd_tag);
    let coredns_build = components::coredns(&coredns_tag);
    Ok(ImageComponents {
        etcd: etcd_build.build(go, no_cache, step).await?,
        etcd_version: etcd_build.version,
        coredns: coredns_build.build(go, no_cache, step).await?,
        coredns_version: coredns_build.version,
        pause: components::pause(go, &pause_tag, no_cache, step).await?,
        pause_tag,
        names,
    })
}

/// Inputs the images are made of.
pub struct ImageInputs<'a> {
    pub kube: &'a KubeBinaries,
    pub etcd: &'a GoOutput,
    pub coredns: &'a GoOutput,
    pub pause: &'a GoOutput,
    pub base: &'a Base,
    /// The kindred binary the agent image runs (see [`crate::agent_binary`]).
    pub agent: &'a Path,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltImage {
    pub name: String,
    pub archive: PathBuf,
    /// sha256:... of the image manifest.
    pub manifest_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltImages {
    /// Hash of every input; also keys the preload cache.
    pub key: String,
    pub images: Vec<BuiltImage>,
}

/// Which files of which build go into an image, and how it starts.
struct Recipe {
    files: Vec<(String, PathBuf)>,
    slim_debian: bool,
    config: ImageConfig,
}

fn recipe(name: &str, inputs: &ImageInputs) -> Result<Recipe, Error> {
    let (short, tag) = short_name_and_tag(name);
    let path_env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    let bin = |b: &str, from: &Path| (format!("usr/local/bin/{b}"), from.join(b));
    let config = ImageConfig {
        env: path_env,
        ..Default::default()
    };
    Ok(match short {
        // kubeadm's static pod manifests name the command, so no entrypoint is needed.
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => {
            Recipe { files: vec![bin(short, &inputs.kube.dir)], slim_debian: false, config }
        }
        "kube-proxy" => Recipe { files: vec![bin("kube-proxy", &inputs.kube.dir)], slim_debian: true, config },
        // etcdctl and etcdutl are there when the proxy serves them at etcd's version.
        // etcdctl and etcdutl only when the proxy serves them at etcd's version.
        "etcd" => Recipe {
            files: ["etcd", "etcdctl", "etcdutl"]
                .iter()
                .filter(|b| inputs.etcd.binary(b).exists())
                .map(|b| bin(b, &inputs.etcd.dir))
                .collect(),
            slim_debian: false,
            config,
        },
        "coredns" => Recipe {
            files: vec![("coredns".into(), inputs.coredns.binary("coredns"))],
            slim_debian: false,
            config: ImageConfig { entrypoint: vec!["/coredns".into()], ..config },
        },
        // The kindred binary itself; the DaemonSets pick the agent with their arguments.
        "agent" => Recipe {
            files: vec![("usr/local/bin/kindred".into(), inputs.agent.to_path_buf())],
            slim_debian: true,
            config: ImageConfig { entrypoint: vec!["/usr/local/bin/kindred".into()], ..config },
        },
        "pause" => Recipe {
            files: vec![("pause".into(), inputs.pause.binary("pause"))],
            slim_debian: false,
            config: ImageConfig { entrypoint: vec!["/pause".into()], user: Some("65535:65535".into()), ..config },
        },
        _ => {
            return Err(Error::Msg(format!(
                "kubeadm {} asks for image {name} (tag {tag}), which kindred does not know how to build",
                inputs.kube.version
            )))
        }
    })
}

/// Images kindred adds beyond kubeadm's list: the agent (pod network and storage).
pub fn addon_images() -> Vec<String> {
    vec![kindred::agent::IMAGE.to_string()]
}

pub fn build_all(
    names: &[String],
    inputs: &ImageInputs,
    cache: &Path,
    no_cache: bool,
    step: &Step,
) -> Result<BuiltImages, Error> {
    let recipes: Vec<(String, Recipe)> = names
        .iter()
        .map(|n| Ok((n.clone(), recipe(n, inputs)?)))
        .collect::<Result<_, Error>>()?;
    let dir = cache.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // Layer blobs are only needed while archives are written; the archives hold them after.
    let blobs = tempfile::Builder::new()
        .prefix(".blobs-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    // The slim Debian layer is shared by every image that needs it, built at most once.
    let mut slim = None;
    let mut set_key = Sha256::new();
    set_key.update(RECIPE_VERSION.as_bytes());
    let mut images = Vec::new();
    // Each image is cached on its own key, so a change to one (the agent, with every kindred
    // build) does not rewrite the others.
    for (name, recipe) in &recipes {
        let (short, tag) = short_name_and_tag(name);
        let key = image_key(name, recipe, inputs)?;
        set_key.update(key.as_bytes());
        let image_dir = dir.join(format!("{short}-{key}"));
        let record = image_dir.join("image.json");
        if !no_cache {
            if let Some(built) = std::fs::read_to_string(&record)
                .ok()
                .and_then(|t| serde_json::from_str::<BuiltImage>(&t).ok())
                .filter(|b| b.archive.exists())
            {
                step.detail(format!("{name} cached in {}", image_dir.display()));
                images.push(built);
                continue;
            }
        }
        step.progress(short);
        std::fs::create_dir_all(&image_dir).map_err(|e| Error::io(&image_dir, e))?;
        let mut layers = Vec::new();
        if recipe.slim_debian {
            if slim.is_none() {
                let mut layer = LayerBuilder::new();
                dpkg::slim_layer(&inputs.base.rootfs, SLIM_PACKAGES, &mut layer)?;
                slim = Some(layer.write_gzip_blob(blobs.path())?);
            }
            layers.push(slim.clone().expect("just built"));
        }
        let mut layer = LayerBuilder::new();
        layer.add_dir("tmp", 0o1777)?;
        for (path, host) in &recipe.files {
            layer.add_file_from_disk(path, 0o755, host)?;
        }
        layers.push(layer.write_gzip_blob(blobs.path())?);
        let spec = ImageSpec {
            name: name.clone(),
            config: recipe.config.clone(),
            layers,
            created: CREATED.into(),
        };
        let archive = image_dir.join(format!("{short}-{tag}.tar"));
        let digests = write_oci_archive(&spec, &archive)?;
        let built = BuiltImage {
            name: name.clone(),
            archive,
            manifest_digest: digests.manifest,
        };
        std::fs::write(
            &record,
            serde_json::to_string_pretty(&built).expect("serializable"),
        )
        .map_err(|e| Error::io(&record, e))?;
        images.push(built);
    }
    Ok(BuiltImages {
        key: hex::encode(set_key.finalize())[..16].to_string(),
        images,
    })
}

/// Hash of everything one image is made of.
fn image_key(name: &str, r: &Recipe, inputs: &ImageInputs) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(name.as_bytes());
    h.update(serde_json::to_vec(&r.config).expect("serializable"));
    for (path, host) in &r.files {
        h.update(path.as_bytes());
        h.update(
            sha256_file(host)
                .map_err(|e| Error::io(host, e))?
                .as_bytes(),
        );
    }
    if r.slim_debian {
        h.update(inputs.base.layer.digest.as_bytes());
        h.update(SLIM_PACKAGES.join(",").as_bytes());
    }
    Ok(hex::encode(h.finalize())[..16].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_short_name_and_tag() {
        assert_eq!(
            short_name_and_tag("registry.k8s.io/coredns/coredns:v1.12.1"),
            ("coredns", "v1.12.1")
        );
        assert_eq!(
            short_name_and_tag("registry.k8s.io/etcd:3.6.5-0"),
            ("etcd", "3.6.5-0")
        );
        assert_eq!(
            short_name_and_tag("registry.k8s.io/pause:3.10.1"),
            ("pause", "3.10.1")
        );
    }
}
