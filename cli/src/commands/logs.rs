//! `export logs`: a cluster's logs into a directory.

use std::path::PathBuf;

use clap::Args;
use kindred::cluster;
use kindred::provider::Docker;
use kindred::ui::Ui;

use super::CmdResult;

#[derive(Debug, Args)]
pub struct ExportLogsArgs {
    /// Directory to write into [default: $KINDRED_ARTIFACTS/kindred-logs-<cluster> if that is
    /// set, else a new temporary directory].
    dir: Option<PathBuf>,
    /// Cluster name [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
}

pub async fn run(args: ExportLogsArgs, ui: &Ui) -> CmdResult {
    let docker = Docker::connect().await?;
    let name = cluster::default_name(args.name.as_deref());
    let step = ui.step(format!("Exporting the logs of cluster \"{name}\""));
    let exported = cluster::export_logs(&docker, &name, args.dir.as_deref()).await?;
    if exported.errors.is_empty() {
        step.done();
    } else {
        step.done_with(format!(
            "{} item(s) could not be collected, see errors.txt",
            exported.errors.len()
        ));
        for e in &exported.errors {
            ui.detail(format!("  {e}"));
        }
    }
    // The one result: where the logs are.
    outln!("{}", exported.dir.display());
    Ok(())
}
