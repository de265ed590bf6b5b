//! `create node`, `delete node`, `restart node`: one node of a running cluster, the
//! infrastructure operations a cloud test needs (the logic is in `kindred::cluster::nodes`).

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kindred::cluster::{self, AddNodeOptions, NodeRoleRequest};
use kindred::provider::Docker;
use kindred::ui::Ui;

use super::cluster::parse_duration;
use super::CmdResult;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    Worker,
    ControlPlane,
}

#[derive(Debug, Args)]
pub struct CreateNodeArgs {
    /// The cluster [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// The new node's role (only workers can join a running cluster).
    #[arg(long, value_enum, default_value = "worker")]
    role: Role,
    /// Node image [default: the image of the cluster's control plane].
    #[arg(long)]
    image: Option<String>,
    /// Wait this long for the new node to be Ready, e.g. 60s, 5m [0: do not wait; scaled by
    /// $KINDRED_TIMEOUT_SCALE].
    #[arg(long, value_parser = parse_duration, default_value = "3m")]
    wait: Duration,
}

#[derive(Debug, Args)]
pub struct DeleteNodeArgs {
    /// The node (container) name, as `kindred get nodes` prints it.
    node: String,
    /// The cluster [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// How long the drain may take before the node is removed anyway.
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    drain_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum RestartCommand {
    /// Restart one node's container (a reboot) and wait until it is Ready again.
    Node {
        /// The node (container) name, as `kindred get nodes` prints it.
        node: String,
        /// The cluster [default: $KINDRED_CLUSTER_NAME, else kindred].
        #[arg(long)]
        name: Option<String>,
        /// Wait this long for the node to be Ready again [0: do not wait; scaled by
        /// $KINDRED_TIMEOUT_SCALE].
        #[arg(long, value_parser = parse_duration, default_value = "3m")]
        wait: Duration,
    },
}

pub async fn create(args: CreateNodeArgs, ui: &Ui) -> CmdResult {
    let opts = AddNodeOptions {
        cluster: cluster::default_name(args.name.as_deref()),
        role: match args.role {
            Role::Worker => NodeRoleRequest::Worker,
            Role::ControlPlane => NodeRoleRequest::ControlPlane,
        },
        image: args.image,
        wait: kindred::patience::scaled(args.wait),
    };
    let docker = Docker::connect().await?;
    let node = cluster::add_node(&docker, &opts, ui).await?;
    ui.info(format!("Added node {node} to {}", opts.cluster));
    Ok(())
}

pub async fn delete(args: DeleteNodeArgs, ui: &Ui) -> CmdResult {
    let name = cluster::default_name(args.name.as_deref());
    let docker = Docker::connect().await?;
    cluster::delete_node(&docker, &name, &args.node, args.drain_timeout, ui).await?;
    ui.info(format!("Deleted node {} of {name}", args.node));
    Ok(())
}

pub async fn restart(cmd: RestartCommand, ui: &Ui) -> CmdResult {
    let RestartCommand::Node { node, name, wait } = cmd;
    let name = cluster::default_name(name.as_deref());
    let docker = Docker::connect().await?;
    let wait = kindred::patience::scaled(wait);
    cluster::restart_node(&docker, &name, &node, wait, ui).await?;
    ui.info(format!("Restarted node {node} of {name}"));
    Ok(())
}
