//! `kindred agent network|storage`: the in-cluster agents. Not for people: the node image packs
//! this binary into the agent image, and the DaemonSets kindred installs run these commands.

use clap::Subcommand;
use kindred::agent::{network::NetworkAgent, storage::StorageAgent};

use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Per-node pod network: CNI config, routes to other nodes' pods, masquerading.
    Network,
    /// Per-node host-path volume provisioner for the default StorageClass.
    Storage,
}

pub async fn run(what: AgentCommand) -> CmdResult {
    match what {
        AgentCommand::Network => NetworkAgent::from_env()?.run().await?,
        AgentCommand::Storage => StorageAgent::from_env()?.run().await?,
    }
    Ok(())
}
