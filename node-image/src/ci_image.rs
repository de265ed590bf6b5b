//! `kindred/ci:<kindred version>`: the image CI jobs run kindred in (Docker in Docker, or a
//! pod of a Kubernetes cluster). Made offline like the node image: the Debian base with
//! Debian's Docker engine (docker.io: dockerd, containerd, runc, the docker CLI and tini),
//! plus this kindred binary and the kubectl of kindred's default Kubernetes version.
//!
//! Its entrypoint, `kindred ci-entrypoint` under tini (zombies reaped, signals passed on),
//! adapts the container for a nested Docker daemon, starts it, runs the job's command and
//! always cleans up; see `kindred::ci`.
//!
//! The image carries a label with the hash of its recipe (base key, binaries, settings), so
//! [`ensure`] rebuilds it only when one of them changed.

use std::path::PathBuf;

use kindred::provider::Provider;
use kindred::ui::Ui;
use sha2::{Digest, Sha256};

use crate::base::{ensure_base, BaseOptions};
use crate::bom::sha256_file;
use crate::docker_load;
use crate::gobuild::GoEnv;
use crate::kube::{self, KubeSource};
use crate::layer::LayerBuilder;
use crate::oci::{ImageConfig, ImageSpec};
use crate::Error;

/// Bumped whenever the way the image is assembled changes.
const RECIPE_VERSION: &str = "ci-image-v1";
/// Label holding the recipe hash.
pub const RECIPE_LABEL: &str = "io.kindred.ci.recipe";
/// Debian packages on top of the node base: the Docker engine and what it shells out to.
pub const CI_PACKAGES: &[&str] = &["docker.io", "tini", "xz-utils", "pigz"];

/// `kindred/ci:v<kindred version>`.
pub fn image() -> String {
    format!("kindred/ci:v{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, Clone)]
pub struct CiImageOptions {
    pub cache_dir: PathBuf,
    pub base: BaseOptions,
    /// The kindred executable to pack (the CLI passes itself).
    pub kindred_binary: PathBuf,
    /// Rebuild even if Docker has the image with this recipe.
    pub no_cache: bool,
}

/// What was built (or found).
#[derive(Debug, Clone)]
pub struct CiImage {
    pub image: String,
    pub id: String,
    pub built: bool,
}

fn base_options(opts: &CiImageOptions) -> BaseOptions {
    BaseOptions {
        extra_packages: CI_PACKAGES.iter().map(|p| p.to_string()).collect(),
        ..opts.base.clone()
    }
}

fn image_config(recipe: &str) -> ImageConfig {
    ImageConfig {
        // tini as PID 1: it reaps the orphans of the job's processes and passes signals on.
        entrypoint: vec![
            "/usr/bin/tini".into(),
            "--".into(),
            "/usr/local/bin/kindred".into(),
            "ci-entrypoint".into(),
            "--".into(),
        ],
        cmd: vec![],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            // kindred's caches and logs stay inside the container.
            "KINDRED_CACHE_DIR=/var/cache/kindred".into(),
        ],
        labels: [
            (RECIPE_LABEL.to_string(), recipe.to_string()),
            (
                "io.kindred.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]
        .into(),
        // The nested daemon's storage must not be on the container's overlay root.
        volumes: vec!["/var/lib/docker".into()],
        ..Default::default()
    }
}

/// The CI image, built only if Docker does not have it with this recipe.
pub async fn ensure(
    docker: &dyn Provider,
    opts: &CiImageOptions,
    ui: &Ui,
) -> Result<CiImage, Error> {
    let image = image();
    let step = ui.step(format!("Preparing {image}"));
    let go = GoEnv::detect(&opts.cache_dir).await?;
    step.progress("kubectl");
    let kube = kube::resolve(
        &KubeSource::Version(kindred::defaults::KUBERNETES_VERSION.into()),
        &go,
        false,
        &step,
    )
    .await?;
    step.progress("Debian base with docker.io");
    let base = ensure_base(&base_options(opts), &opts.cache_dir, false, &step).await?;
    let kindred_bin =
        crate::agent_binary::prepare(&opts.kindred_binary, &opts.cache_dir, &step).await?;
    let kubectl = kube.path("kubectl");

    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(base.key.as_bytes());
    for f in [&kindred_bin, &kubectl] {
        h.update(sha256_file(f).map_err(|e| Error::io(f, e))?.as_bytes());
    }
    h.update(serde_json::to_vec(&image_config("")).expect("serializable"));
    let recipe = hex::encode(h.finalize())[..16].to_string();

    if !opts.no_cache {
        if let Some(id) = docker_load::current_id(docker, &image, RECIPE_LABEL, &recipe).await? {
            step.done_with(format!("up to date ({})", docker_load::short_id(&id)));
            return Ok(CiImage {
                image,
                id,
                built: false,
            });
        }
    }

    step.progress("assembling the image");
    let work = docker_load::work_dir(&opts.cache_dir, ".ci-")?;
    let mut layer = LayerBuilder::new();
    layer.add_file_from_disk("usr/local/bin/kindred", 0o755, &kindred_bin)?;
    layer.add_file_from_disk("usr/local/bin/kubectl", 0o755, &kubectl)?;
    layer.add_dir(kindred::ci::IMAGES_DIR.trim_start_matches('/'), 0o755)?;
    let blob = layer.write_gzip_blob(work.path())?;
    let spec = ImageSpec {
        name: image.clone(),
        config: image_config(&recipe),
        layers: vec![base.layer.clone(), blob],
        created: "1970-01-01T00:00:00Z".into(),
    };
    let id = docker_load::write_and_load(docker, spec, work.path(), &step).await?;
    step.done_with(format!("built ({})", docker_load::short_id(&id)));
    Ok(CiImage {
        image,
        id,
        built: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_runs_kindred_under_tini_and_takes_the_job_as_arguments() {
        let c = image_config("r");
        assert_eq!(c.entrypoint[0], "/usr/bin/tini");
        assert_eq!(c.entrypoint.last().unwrap(), "--");
        assert!(c.entrypoint.contains(&"ci-entrypoint".to_string()));
        assert_eq!(c.volumes, ["/var/lib/docker"]);
        assert_eq!(c.labels.get(RECIPE_LABEL).unwrap(), "r");
    }

    #[test]
    fn base_adds_the_docker_engine() {
        let opts = CiImageOptions {
            cache_dir: "/c".into(),
            base: BaseOptions::default(),
            kindred_binary: "/k".into(),
            no_cache: false,
        };
        let b = base_options(&opts);
        assert!(b.extra_packages.contains(&"docker.io".to_string()));
        assert_eq!(b.suite, "bookworm");
    }
}
