//! `kindred build node-image`: a bootable Kubernetes node image made offline from Debian
//! packages and Go modules, with every image kubeadm needs preloaded and a bill of materials.
//!
//! The build is a fixed sequence of steps (see [`build`]); each caches its result under the
//! cache directory keyed by its inputs, so a repeated build only re-assembles the final image.

pub mod agent_binary;
pub mod base;
pub mod bom;
pub mod ci_image;
pub mod components;
pub mod docker_load;
pub mod dpkg;
pub mod files;
pub mod gobuild;
pub mod images;
pub mod kube;
pub mod layer;
pub mod oci;
pub mod preload;
pub mod registry_image;

use std::path::{Path, PathBuf};

use kindred::provider::{Docker, Provider};
use kindred::ui::Ui;

use crate::base::BaseOptions;
use crate::bom::{Bom, Component, Kind};
use crate::gobuild::GoEnv;
use crate::kube::KubeSource;
use crate::oci::{write_docker_archive, ImageConfig, ImageSpec};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Msg(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{module}@{version} is not available from the Go module proxy: {reason}\n\
         List the versions it has with: go list -m -versions {module}"
    )]
    ModuleVersion {
        module: String,
        version: String,
        reason: String,
    },
    #[error("{step} failed: {source}")]
    Step {
        step: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Provider(#[from] kindred::provider::ProviderError),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error(transparent)]
    Oci(#[from] oci::Error),
    #[error(transparent)]
    Dpkg(#[from] dpkg::Error),
    #[error(transparent)]
    Bom(#[from] bom::Error),
    #[error(
        "{0} does not exist: it is neither a BOM file nor an image in Docker\n\
         Build the image with `kindred build node-image`, or give the path of a BOM file \
         (`kindred bom IMAGE -o json > bom.json` writes one)"
    )]
    NoBom(String),
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub kube: KubeSource,
    /// Image reference to tag; default `kindred/node:<kube version>`.
    pub image: Option<String>,
    pub base: BaseOptions,
    pub cache_dir: PathBuf,
    /// Rebuild every component instead of reusing cached ones.
    pub no_cache: bool,
    /// The kindred executable packed into the agent image (the CLI passes itself).
    pub agent_binary: PathBuf,
}

impl BuildOptions {
    /// The default node image of a Kubernetes version, from the Debian base and the shared
    /// cache, as `create cluster` and kubetest2 build it on first use.
    pub fn default_image(kube_version: &str, agent_binary: PathBuf) -> BuildOptions {
        BuildOptions {
            kube: KubeSource::Version(kube_version.into()),
            image: None,
            base: BaseOptions::default(),
            cache_dir: kindred::cache::cache_dir(),
            no_cache: false,
            agent_binary,
        }
    }
}

/// How many of the results that change with every kindred build are kept.
const KEEP_PER_BUILD: usize = 3;

/// The agent binary, the agent image and the preload that contains it change with every
/// kindred build: keep those this build used and the newest few others, remove the rest.
fn prune_per_build_caches(cache: &Path, used: &[&Path]) {
    for path in used {
        // Each is a file directly inside its cache entry.
        if let Some(entry) = path.parent() {
            kindred::cache::touch(entry);
        }
    }
    for (dir, prefix) in [("agent", ""), ("images", "agent-"), ("preload", "")] {
        for gone in kindred::cache::prune_oldest(&cache.join(dir), prefix, KEEP_PER_BUILD) {
            tracing::debug!("pruned old cache entry {}", gone.display());
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: String,
    pub kube_version: String,
    pub bom: Bom,
    pub bom_sha256: String,
}

/// Builds a node image and loads it into Docker. Steps, in order:
/// 1. Docker and Go are there (fail before any long work if not).
/// 2. Kubernetes binaries (built, or taken from the given directory/tarball/checkout).
/// 3. Debian base rootfs.
/// 4. containerd, runc, CNI plugins.
/// 5. etcd, CoreDNS, pause, then the control-plane and agent image archives.
/// 6. Preload those images into containerd's store.
/// 7. Assemble layers + BOM into the node image and load it into Docker.
pub async fn build(opts: &BuildOptions, ui: &Ui) -> Result<BuildResult, Error> {
    // Bad input is reported before any step starts.
    if let KubeSource::Version(v) = &opts.kube {
        kube::parse_version(v)?;
    }
    let step = ui.step("Checking Docker and Go");
    let docker = Docker::connect().await?;
    let go = GoEnv::detect(&opts.cache_dir).await?;
    step.done_with(go.go_version.clone());

    let step = ui.step(match &opts.kube {
        KubeSource::Version(v) => format!(
            "Building Kubernetes {} from Go modules",
            kube::normalize_version(v)
        ),
        KubeSource::Binaries(d) => format!("Using Kubernetes binaries from {}", d.display()),
        KubeSource::Tarball(t) => format!("Using Kubernetes server tarball {t}"),
        KubeSource::Source(d) => format!("Building Kubernetes from source in {}", d.display()),
    });
    let kube = kube::resolve(&opts.kube, &go, opts.no_cache, &step).await?;
    step.done_with(kube.version.clone());
    let (minor, _) = kube::parse_version(&kube.version)?;

    let step = ui.step(format!("Preparing the Debian base ({})", opts.base.suite));
    let base = base::ensure_base(&opts.base, &opts.cache_dir, opts.no_cache, &step).await?;
    step.done_with(format!("{} packages", base.packages.len()));

    let step = ui.step("Building containerd, runc, CNI plugins and crictl");
    let rv = components::runtime_versions(minor);
    let containerd = components::containerd(&rv)
        .build(&go, opts.no_cache, &step)
        .await?;
    let runc = components::runc(&rv)
        .build(&go, opts.no_cache, &step)
        .await?;
    let cni = components::cni_plugins(&rv)
        .build(&go, opts.no_cache, &step)
        .await?;
    let crictl = components::crictl(&rv)
        .build(&go, opts.no_cache, &step)
        .await?;
    step.done_with(format!(
        "containerd {}, runc {}, CNI {}, crictl {}",
        rv.containerd, rv.runc, rv.cni_plugins, rv.crictl
    ));

    let step = ui.step("Building control-plane images");
    let parts = images::build_components(&kube, &go, opts.no_cache, &step).await?;
    let agent = agent_binary::prepare(&opts.agent_binary, &opts.cache_dir, &step).await?;
    let inputs = parts.inputs(&kube, &base, &agent);
    let names = &parts.names;
    let built = images::build_all(names, &inputs, &opts.cache_dir, opts.no_cache, &step)?;
    step.done_with(format!("{} images", built.images.len()));

    let step = ui.step("Preloading images into containerd");
    let metadb = components::metadb(&go, opts.no_cache, &step).await?;
    let preloaded = preload::preload(
        &docker,
        &base,
        &preload::PreloadTools {
            containerd: &containerd,
            metadb: &metadb,
        },
        &built,
        &opts.cache_dir,
        opts.no_cache,
        &step,
    )
    .await?;
    step.done();

    let image = opts
        .image
        .clone()
        .unwrap_or_else(|| kindred::defaults::node_image(&kube.version));
    let step = ui.step(format!("Assembling node image {image}"));
    let sandbox_image = names
        .iter()
        .find(|n| images::short_name_and_tag(n).0 == "pause")
        .cloned()
        .unwrap_or_default();
    let versions = Versions {
        kube_origin: &kube.origin,
        runtime: &rv,
        etcd: &parts.etcd_version,
        coredns: &parts.coredns_version,
        pause: &parts.pause_tag,
    };
    let mut files = files::NodeFiles {
        kube: &kube,
        containerd: &containerd,
        runc: &runc,
        cni: &cni,
        crictl: &crictl,
        sandbox_image: &sandbox_image,
        kindred: &agent,
        bom_documents: &[],
    };
    let mut bom = bill_of_materials(&kube.version, &go, &files, &built, &base, &versions)?;
    bom.released = newest_release(&bom, &go, &step).await?;
    let created = bom::created(&bom)?;
    let (bom_json, bom_sha256) = bom.to_json();
    let documents = [
        (bom::BOM_PATH, bom_json),
        (bom::SPDX_PATH, bom::spdx_json(&bom, &image)?),
        (bom::CYCLONEDX_PATH, bom::cyclonedx_json(&bom, &image)?),
    ];
    files.bom_documents = &documents;
    let work = tempfile::Builder::new()
        .prefix("node-image-")
        .tempdir_in(&opts.cache_dir)
        .map_err(|e| Error::io(&opts.cache_dir, e))?;
    let files_layer = files::files_layer(&files, work.path(), &step)?;
    let spec = ImageSpec {
        name: image.clone(),
        config: ImageConfig {
            entrypoint: vec![files::ENTRYPOINT.into()],
            env: vec![
                "container=docker".into(),
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ],
            labels: image_labels(&bom, &bom_sha256, &kube.origin, &created),
            // systemd shuts down cleanly on SIGRTMIN+3, not SIGTERM.
            stop_signal: Some("SIGRTMIN+3".into()),
            ..Default::default()
        },
        layers: vec![base.layer.clone(), files_layer, preloaded.layer.clone()],
        created,
    };
    let archive = work.path().join("node-image.tar");
    write_docker_archive(&[spec], &archive)?;
    step.progress("loading into Docker");
    docker.load_archive(&archive).await?;
    step.done();
    let used: Vec<&Path> = [agent.as_path(), preloaded.layer.path.as_path()]
        .into_iter()
        .chain(built.images.iter().map(|i| i.archive.as_path()))
        .collect();
    prune_per_build_caches(&opts.cache_dir, &used);
    Ok(BuildResult {
        image,
        kube_version: kube.version.clone(),
        bom,
        bom_sha256,
    })
}

struct Versions<'a> {
    kube_origin: &'a str,
    runtime: &'a components::RuntimeVersions,
    etcd: &'a str,
    coredns: &'a str,
    pause: &'a str,
}

fn bill_of_materials(
    kube_version: &str,
    go: &GoEnv,
    files: &files::NodeFiles,
    built: &images::BuiltImages,
    base: &base::Base,
    v: &Versions,
) -> Result<Bom, Error> {
    let mut components = Vec::new();
    for (path, host) in files::binaries(files) {
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        let go_origin =
            |module: &str, version: &str| (version.to_string(), format!("go:{module}@{version}"));
        let (version, origin) = match name.as_str() {
            "kubeadm" | "kubelet" | "kubectl" => {
                (kube_version.to_string(), v.kube_origin.to_string())
            }
            "containerd" | "containerd-shim-runc-v2" | "ctr" => {
                go_origin("github.com/containerd/containerd/v2", v.runtime.containerd)
            }
            "runc" => go_origin("github.com/opencontainers/runc", v.runtime.runc),
            "crictl" => go_origin("sigs.k8s.io/cri-tools", v.runtime.crictl),
            "kindred" => (env!("CARGO_PKG_VERSION").to_string(), "kindred".to_string()),
            _ => go_origin(
                "github.com/containernetworking/plugins",
                v.runtime.cni_plugins,
            ),
        };
        let sha256 = bom::sha256_file(&host).map_err(|e| Error::io(&host, e))?;
        components.push(Component {
            name,
            kind: Kind::Binary,
            version,
            origin,
            path: Some(format!("/{path}")),
            sha256,
        });
    }
    for img in &built.images {
        let (short, tag) = images::short_name_and_tag(&img.name);
        let origin = match short {
            "etcd" => format!("go:go.etcd.io/etcd/server/v3@{}", v.etcd),
            "coredns" => format!("go:github.com/coredns/coredns@{}", v.coredns),
            "pause" => format!("kindred:node-image/pause ({})", v.pause),
            "kube-proxy" => format!(
                "{} + debian:{} {}",
                v.kube_origin,
                base.suite,
                images::SLIM_PACKAGES.join("/")
            ),
            "agent" => format!(
                "kindred {} + debian:{} {}",
                env!("CARGO_PKG_VERSION"),
                base.suite,
                images::SLIM_PACKAGES.join("/")
            ),
            _ => v.kube_origin.to_string(),
        };
        components.push(Component {
            name: img.name.clone(),
            kind: Kind::Image,
            version: tag.to_string(),
            origin,
            path: None,
            sha256: img
                .manifest_digest
                .trim_start_matches("sha256:")
                .to_string(),
        });
    }
    // Called before the BOM documents are added to `files`: the BOM cannot list its own hash.
    for (path, _, content) in files::generated_files(files) {
        components.push(Component {
            name: path.rsplit('/').next().unwrap_or(&path).to_string(),
            kind: Kind::File,
            version: env!("CARGO_PKG_VERSION").into(),
            origin: "kindred".into(),
            path: Some(format!("/{path}")),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content)),
        });
    }
    for p in &base.packages {
        components.push(Component {
            name: p.name.clone(),
            kind: Kind::DebianPackage,
            version: p.version.clone(),
            origin: format!("debian:{}/{}", base.suite, p.architecture),
            path: None,
            sha256: p.sha256.clone(),
        });
    }
    Ok(Bom {
        kubernetes_version: kube_version.to_string(),
        kindred_version: env!("CARGO_PKG_VERSION").into(),
        go_version: go.go_version.clone(),
        released: None,
        components,
    })
}

/// The newest release time, as the Go module proxy records it, of the Go modules the BOM's
/// components come from: a creation time for the image that means something ("built from
/// releases up to that day") and is the same on every rebuild. `None` if no module has one.
async fn newest_release(
    bom: &Bom,
    go: &GoEnv,
    step: &kindred::ui::Step,
) -> Result<Option<String>, Error> {
    let mut newest: Option<String> = None;
    for (module, version) in bom.go_modules() {
        let time = gobuild::module_time(go, &module, &version, step).await?;
        // All are UTC `YYYY-MM-DDThh:mm:ssZ`, so they compare as strings.
        if time > newest {
            newest = time;
        }
    }
    Ok(newest)
}

/// The node image's labels: what it is (OCI's standard keys, read by registries and
/// scanners) and kindred's own (the Kubernetes version and source, the BOM's digest).
fn image_labels(
    bom: &Bom,
    bom_sha256: &str,
    kube_origin: &str,
    created: &str,
) -> std::collections::BTreeMap<String, String> {
    [
        (bom::LABEL_KUBE_VERSION, bom.kubernetes_version.as_str()),
        (bom::LABEL_KUBE_SOURCE, kube_origin),
        (bom::LABEL_BOM_SHA256, bom_sha256),
        (bom::LABEL_KINDRED_VERSION, bom.kindred_version.as_str()),
        // What a create may run from this image beside the cluster.
        (
            kindred::agent::HOST_AGENTS_LABEL,
            kindred::agent::HOST_AGENTS,
        ),
        ("org.opencontainers.image.title", "kindred node image"),
        ("org.opencontainers.image.description", &bom.summary()),
        (
            "org.opencontainers.image.version",
            bom.kubernetes_version.as_str(),
        ),
        ("org.opencontainers.image.created", created),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Reads the BOM out of a node image.
pub async fn read_bom(docker: &dyn Provider, image: &str) -> Result<Bom, Error> {
    if !docker.image_exists(image).await? {
        return Err(Error::Msg(format!(
            "image {image} does not exist; build it with `kindred build node-image`"
        )));
    }
    let bytes = docker.read_image_file(image, bom::BOM_PATH).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Msg(format!(
            "{image} has no valid BOM at {} ({e}); is it a kindred node image?",
            bom::BOM_PATH
        ))
    })
}

/// Where a BOM was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BomSource {
    File(PathBuf),
    Image(String),
}

impl BomSource {
    /// The node image the BOM describes: the image read, or for a file the name kindred gives
    /// an image of that Kubernetes version (a file does not say how its image was tagged).
    pub fn image_name(&self, bom: &Bom) -> String {
        match self {
            BomSource::Image(image) => image.clone(),
            BomSource::File(_) => kindred::defaults::node_image(&bom.kubernetes_version),
        }
    }
}

/// The BOM named by `what`: a BOM file when a file is there (kindred's JSON), else the node image
/// of that name in Docker. Docker is only asked when it is not a file.
pub async fn load_bom(what: &str) -> Result<(Bom, BomSource), Error> {
    let path = Path::new(what);
    // Image references never start with '/', '.' or '~': such an argument is meant as a file,
    // and reading it says why it cannot be read.
    if path.exists() || what.starts_with(['/', '.', '~']) {
        return Ok((bom::read_file(path)?, BomSource::File(path.to_path_buf())));
    }
    let docker = Docker::connect().await?;
    if !docker.image_exists(what).await? {
        return Err(Error::NoBom(what.to_string()));
    }
    Ok((
        read_bom(&docker, what).await?,
        BomSource::Image(what.to_string()),
    ))
}
