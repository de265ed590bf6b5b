use std::path::PathBuf;

use clap::{Args, Subcommand};
use kindred::ui::Ui;
use kindred_node_image::base::BaseOptions;
use kindred_node_image::kube::KubeSource;
use kindred_node_image::BuildOptions;

use super::CmdResult;

// The variants are the subcommands' names: `build node-image|registry-image|ci-image`.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Build a node image offline: Debian base, Kubernetes, containerd, preloaded images, BOM.
    NodeImage(NodeImageArgs),
    /// Build the local registry's image (the distribution registry from Go modules);
    /// `create cluster --registry` builds it when missing.
    RegistryImage(RegistryImageArgs),
    /// Build the CI image (Docker engine, kindred, kubectl) for running kindred inside CI
    /// containers and pods; see docs/ci-pods.md.
    CiImage(CiImageArgs),
}

#[derive(Debug, Args)]
pub struct CiImageArgs {
    /// Debian mirror for the base rootfs.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    debian_mirror: String,
    /// Cache directory [default: $KINDRED_CACHE_DIR, else ~/.cache/kindred].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Rebuild the image even if Docker has it with the same recipe.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Debug, Args)]
pub struct RegistryImageArgs {
    /// Cache directory [default: $KINDRED_CACHE_DIR, else ~/.cache/kindred].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Rebuild the registry binary and the image even if cached.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("kube").multiple(false)))]
pub struct NodeImageArgs {
    /// Kubernetes release to build from Go modules [default: the pinned release, see `kindred version`].
    #[arg(long, group = "kube")]
    kube_version: Option<String>,
    /// Directory holding kubeadm, kubelet, kubectl, kube-apiserver, kube-controller-manager,
    /// kube-scheduler and kube-proxy (e.g. a Kubernetes _output/bin).
    #[arg(long, group = "kube", value_name = "DIR")]
    kube_binaries: Option<PathBuf>,
    /// kubernetes-server-linux-amd64.tar.gz, as a file or an http(s) URL.
    #[arg(long, group = "kube", value_name = "FILE|URL")]
    kube_tarball: Option<String>,
    /// A Kubernetes source checkout to build (uses its own go.mod; version from `git describe`).
    #[arg(long, group = "kube", value_name = "DIR")]
    kube_source: Option<PathBuf>,
    /// Image to tag [default: kindred/node:<kubernetes version>].
    #[arg(long)]
    image: Option<String>,
    /// Debian mirror for the base rootfs.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    debian_mirror: String,
    /// Cache directory [default: $KINDRED_CACHE_DIR, else ~/.cache/kindred].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Rebuild every component instead of reusing cached results.
    #[arg(long)]
    no_cache: bool,
}

impl NodeImageArgs {
    /// True when no flag names the Kubernetes to build, so the host's default is built.
    fn uses_default_version(&self) -> bool {
        self.kube_binaries.is_none()
            && self.kube_tarball.is_none()
            && self.kube_source.is_none()
            && self.kube_version.is_none()
    }

    fn kube_source(&self, default_version: &str) -> KubeSource {
        if let Some(d) = &self.kube_binaries {
            KubeSource::Binaries(d.clone())
        } else if let Some(t) = &self.kube_tarball {
            KubeSource::Tarball(t.clone())
        } else if let Some(d) = &self.kube_source {
            KubeSource::Source(d.clone())
        } else {
            KubeSource::Version(
                self.kube_version
                    .clone()
                    .unwrap_or_else(|| default_version.into()),
            )
        }
    }
}

pub async fn run(cmd: BuildCommand, ui: &Ui) -> CmdResult {
    match cmd {
        BuildCommand::CiImage(args) => {
            let opts = kindred_node_image::ci_image::CiImageOptions {
                cache_dir: args.cache_dir.unwrap_or_else(kindred::cache::cache_dir),
                base: BaseOptions {
                    mirror: args.debian_mirror,
                    ..BaseOptions::default()
                },
                kindred_binary: super::current_exe()?,
                no_cache: args.no_cache,
            };
            let docker = kindred::provider::Docker::connect().await?;
            let image = kindred_node_image::ci_image::ensure(&docker, &opts, ui).await?;
            outln!("{}", image.image);
            Ok(())
        }
        BuildCommand::RegistryImage(args) => {
            let opts = kindred_node_image::registry_image::RegistryImageOptions {
                cache_dir: args.cache_dir.unwrap_or_else(kindred::cache::cache_dir),
                no_cache: args.no_cache,
            };
            let docker = kindred::provider::Docker::connect().await?;
            let started = std::time::Instant::now();
            let image = kindred_node_image::registry_image::ensure(&docker, &opts, ui).await?;
            if image.built {
                ui.info(format!(
                    "Built {} in {:.0}s",
                    image.image,
                    started.elapsed().as_secs_f64()
                ));
            } else {
                ui.info(format!(
                    "{} is up to date (--no-cache rebuilds it)",
                    image.image
                ));
            }
            outln!("{}", image.image);
            Ok(())
        }
        BuildCommand::NodeImage(args) => {
            let default_version = if args.uses_default_version() {
                super::host_default(&kindred::provider::Docker::connect().await?, ui)
                    .await?
                    .version
            } else {
                kindred::defaults::KUBERNETES_VERSION
            };
            let opts = BuildOptions {
                kube: args.kube_source(default_version),
                image: args.image.clone(),
                base: BaseOptions {
                    mirror: args.debian_mirror.clone(),
                    ..BaseOptions::default()
                },
                cache_dir: args
                    .cache_dir
                    .clone()
                    .unwrap_or_else(kindred::cache::cache_dir),
                no_cache: args.no_cache,
                agent_binary: super::current_exe()?,
            };
            let started = std::time::Instant::now();
            let result = kindred_node_image::build(&opts, ui).await?;
            ui.info(format!(
                "Built {} (Kubernetes {}, {} components in the BOM) in {:.0}s",
                result.image,
                result.kube_version,
                result.bom.components.len(),
                started.elapsed().as_secs_f64()
            ));
            // The image name on stdout, for scripts.
            outln!("{}", result.image);
            Ok(())
        }
    }
}
