//! `kindred kubectl [--name N] -- ARGS`: runs the kubectl that matches the cluster (taken from
//! its node image) against it, for hosts that have no kubectl or a mismatched one.

use std::os::unix::process::CommandExt;

use clap::Args;
use kindred::cluster;
use kindred::provider::Docker;

use super::CmdResult;

#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// The cluster [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// kubectl's arguments, after `--` when they start with a dash.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub async fn run(args: KubectlArgs) -> CmdResult {
    let name = cluster::default_name(args.name.as_deref());
    let docker = Docker::connect().await?;
    let kubectl = cluster::cluster_kubectl(&docker, &name, &kindred::cache::cache_dir()).await?;
    // Replaces this process, so kubectl owns the terminal, stdin and the exit status.
    let err = std::process::Command::new(&kubectl.binary)
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .args(&args.args)
        .exec();
    Err(format!("cannot run {}: {err}", kubectl.binary.display()).into())
}
