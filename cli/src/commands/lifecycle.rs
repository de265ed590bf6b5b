//! `stop cluster` / `start cluster`: pause a cluster without losing it.

use std::time::Duration;

use clap::Subcommand;
use kindred::cluster;
use kindred::provider::Docker;
use kindred::ui::Ui;

use super::cluster::parse_duration;
use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum StopCommand {
    /// Stop every node container of a cluster (workers first); `start cluster` brings it back.
    Cluster {
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// Start a stopped cluster (control plane first) and wait until it has recovered.
    Cluster {
        #[arg(long)]
        name: Option<String>,
        /// Wait this long for every node to be Ready and the system pods to run [0: do not wait].
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        wait: Duration,
    },
}

pub async fn stop(cmd: StopCommand, ui: &Ui) -> CmdResult {
    let StopCommand::Cluster { name } = cmd;
    let name = cluster::default_name(name.as_deref());
    let docker = Docker::connect().await?;
    cluster::stop(&docker, &name, ui).await?;
    ui.info(format!(
        "Stopped {name}; `kindred start cluster --name {name}` starts it again"
    ));
    Ok(())
}

pub async fn start(cmd: StartCommand, ui: &Ui) -> CmdResult {
    let StartCommand::Cluster { name, wait } = cmd;
    let name = cluster::default_name(name.as_deref());
    let docker = Docker::connect().await?;
    cluster::start(&docker, &name, wait, ui).await?;
    ui.info(format!("Started {name}"));
    Ok(())
}
