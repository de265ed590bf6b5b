//! `load docker-image` / `load image-archive`: images into a cluster's nodes.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kindred::cluster::{self, ImageSource, Outcome};
use kindred::provider::Docker;
use kindred::ui::Ui;

use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Load images from the host's Docker into every node (or --nodes), skipping nodes that
    /// already have them.
    DockerImage {
        /// Image names (or IDs) as Docker knows them.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Load image archives (from `docker save`) into every node (or --nodes).
    ImageArchive {
        #[arg(required = true, value_name = "TAR")]
        archives: Vec<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// Cluster name [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// Only these nodes (comma-separated container names, as `kindred get nodes` prints them).
    #[arg(long, value_delimiter = ',', value_name = "NODE,...")]
    nodes: Vec<String>,
}

pub async fn run(cmd: LoadCommand, ui: &Ui) -> CmdResult {
    let (source, target) = match cmd {
        LoadCommand::DockerImage { images, target } => (ImageSource::Docker(images), target),
        LoadCommand::ImageArchive { archives, target } => (ImageSource::Archives(archives), target),
    };
    let docker = Docker::connect().await?;
    let name = cluster::default_name(target.name.as_deref());
    let reports = cluster::load(&docker, &name, &target.nodes, &source, ui).await?;
    // Results on stdout, one line per node and image.
    let mut failed = 0;
    for r in &reports {
        outln!("{}: {} {}", r.node, r.image, r.outcome);
        failed += matches!(r.outcome, Outcome::Failed(_)) as usize;
    }
    if failed > 0 {
        return Err(format!("{failed} of {} loads failed (see above)", reports.len()).into());
    }
    Ok(())
}
