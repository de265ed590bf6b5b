//! `kindred/registry:<version>`: the local registry's image, made like the control-plane images
//! (no registry, no Dockerfile): the CNCF distribution registry's own command
//! (`github.com/distribution/distribution/v3/cmd/registry`) built from the Go module proxy with
//! [`GoBuild`] (cached by its inputs), plus kindred's registry config, in one deterministic
//! layer, written as a `docker save` archive and loaded into Docker.
//!
//! The image carries a label with the hash of its recipe (module, version, build flags, config,
//! image settings), so [`ensure`] rebuilds it when a newer kindred changes any of them, and
//! otherwise finds it without needing Go.

use std::path::PathBuf;

use kindred::provider::Provider;
use kindred::registry;
use kindred::ui::Ui;
use sha2::{Digest, Sha256};

use crate::docker_load;
use crate::gobuild::{GoBuild, GoEnv};
use crate::layer::LayerBuilder;
use crate::oci::{ImageConfig, ImageSpec};
use crate::Error;

/// Bumped whenever the way the image is assembled changes.
const RECIPE_VERSION: &str = "registry-image-v2";
const MODULE: &str = "github.com/distribution/distribution/v3";
/// Where the image keeps kindred's registry config.
const CONFIG_PATH: &str = "/etc/distribution/config.yml";

/// The registry's config: filesystem storage on the data volume, plain HTTP on :5000 (only
/// published on 127.0.0.1 and on the kindred network), deletes allowed so images can be
/// removed through the API.
pub const CONFIG_YML: &str = "# kindred's local registry (kindred-registry): written by kindred.
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
";

#[derive(Debug, Clone)]
pub struct RegistryImageOptions {
    pub cache_dir: PathBuf,
    /// Rebuild the registry binary and the image even if cached.
    pub no_cache: bool,
}

/// What was built (or found).
#[derive(Debug, Clone)]
pub struct RegistryImage {
    pub image: String,
    /// `sha256:...`: Docker's image ID.
    pub id: String,
    /// False when the image was already in Docker with the same recipe.
    pub built: bool,
}

/// The Go build of the registry command, at the version kindred pins.
pub fn go_build() -> GoBuild {
    let version = registry::DISTRIBUTION_VERSION;
    GoBuild {
        // What `registry --version` prints (upstream's Makefile sets it the same way).
        ldflags: vec![format!("-X {MODULE}/version.version={version}")],
        ..GoBuild::new(
            "registry",
            MODULE,
            version,
            vec![format!("{MODULE}/cmd/registry")],
        )
    }
}

/// How the registry starts. Tracing goes nowhere: the registry would otherwise try to export
/// spans to an OpenTelemetry collector on localhost:4318 and log its failures.
fn image_config(recipe: &str) -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/registry".into()],
        cmd: vec!["serve".into(), CONFIG_PATH.into()],
        env: vec![
            "PATH=/bin".into(),
            "OTEL_TRACES_EXPORTER=none".into(),
            "OTEL_METRICS_EXPORTER=none".into(),
            "OTEL_LOGS_EXPORTER=none".into(),
        ],
        labels: [
            (registry::RECIPE_LABEL.to_string(), recipe.to_string()),
            (
                "io.kindred.registry.version".to_string(),
                registry::DISTRIBUTION_VERSION.to_string(),
            ),
            (
                "org.opencontainers.image.source".to_string(),
                format!("go:{MODULE}@{}", registry::DISTRIBUTION_VERSION),
            ),
        ]
        .into(),
        volumes: vec![registry::DATA_DIR.into()],
        ..Default::default()
    }
}

/// The hash of everything the image is made of except the Go toolchain, so that it can be
/// checked without Go installed.
pub fn recipe_key() -> String {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(serde_json::to_vec(&go_build()).expect("serializable"));
    h.update(CONFIG_YML.as_bytes());
    h.update(serde_json::to_vec(&image_config("")).expect("serializable"));
    hex::encode(h.finalize())[..16].to_string()
}

/// The registry image, built only if Docker does not have it with this kindred's recipe.
pub async fn ensure(
    docker: &dyn Provider,
    opts: &RegistryImageOptions,
    ui: &Ui,
) -> Result<RegistryImage, Error> {
    let image = registry::image();
    if !opts.no_cache {
        if let Some(id) =
            docker_load::current_id(docker, &image, registry::RECIPE_LABEL, &recipe_key()).await?
        {
            return Ok(RegistryImage {
                image,
                id,
                built: false,
            });
        }
    }
    build(docker, opts, ui).await
}

/// Builds the registry binary (cached) and the image, and loads it into Docker.
pub async fn build(
    docker: &dyn Provider,
    opts: &RegistryImageOptions,
    ui: &Ui,
) -> Result<RegistryImage, Error> {
    let image = registry::image();
    let step = ui.step(format!(
        "Building the registry image {image} (distribution {} from Go modules)",
        registry::DISTRIBUTION_VERSION
    ));
    let go = GoEnv::detect(&opts.cache_dir).await?;
    let build = go_build();
    let built = build.build(&go, opts.no_cache, &step).await?;
    // Created when distribution released it: deterministic, and `docker images` says something
    // true instead of "56 years ago".
    let created = crate::gobuild::module_time(&go, &build.module, &build.version, &step)
        .await?
        .unwrap_or_else(|| crate::bom::FIXED_CREATED.into());
    step.progress("assembling the image");
    let work = docker_load::work_dir(&opts.cache_dir, ".registry-")?;
    let mut layer = LayerBuilder::new();
    layer.add_file_from_disk("bin/registry", 0o755, built.binary("registry"))?;
    layer.add_file(CONFIG_PATH, 0o644, CONFIG_YML.as_bytes().to_vec())?;
    layer.add_dir(registry::DATA_DIR, 0o755)?;
    layer.add_dir("tmp", 0o1777)?;
    let blob = layer.write_gzip_blob(work.path())?;
    let spec = ImageSpec {
        name: image.clone(),
        config: image_config(&recipe_key()),
        layers: vec![blob],
        created,
    };
    let id = docker_load::write_and_load(docker, spec, work.path(), &step).await?;
    step.done_with(format!("{} ({})", image, docker_load::short_id(&id)));
    Ok(RegistryImage {
        image,
        id,
        built: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_distributions_own_command_at_the_pinned_version() {
        let b = go_build();
        assert_eq!(b.module, "github.com/distribution/distribution/v3");
        assert_eq!(b.version, registry::DISTRIBUTION_VERSION);
        assert_eq!(
            b.packages,
            ["github.com/distribution/distribution/v3/cmd/registry"]
        );
        assert!(!b.cgo, "a static binary for a FROM-scratch image");
        assert!(b.ldflags[0].ends_with(&format!("version.version={}", b.version)));
    }

    #[test]
    fn the_config_listens_on_the_container_port_and_stores_on_the_volume() {
        let doc: serde_yaml::Value = serde_yaml::from_str(CONFIG_YML).unwrap();
        assert_eq!(
            doc["http"]["addr"].as_str(),
            Some(format!(":{}", registry::CONTAINER_PORT).as_str())
        );
        assert_eq!(
            doc["storage"]["filesystem"]["rootdirectory"].as_str(),
            Some(registry::DATA_DIR)
        );
        assert_eq!(doc["storage"]["delete"]["enabled"].as_bool(), Some(true));
    }

    #[test]
    fn the_recipe_key_is_stable_and_names_the_recipe() {
        assert_eq!(recipe_key(), recipe_key());
        assert_eq!(recipe_key().len(), 16);
        let config = image_config("abc");
        assert_eq!(config.labels[registry::RECIPE_LABEL], "abc");
        assert!(config
            .env
            .contains(&"OTEL_TRACES_EXPORTER=none".to_string()));
        assert_eq!(config.volumes, [registry::DATA_DIR]);
    }
}
