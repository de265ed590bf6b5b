//! `kindred agent network|storage|service-lb|loadbalancer|node-lifecycle`: the agents. Not for people: the node image packs
//! this binary into the agent image, and the DaemonSets and the load balancer container kindred
//! creates run these commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use kindred::agent::loadbalancer::{self, HealthCheck, LoadBalancer, LoadBalancerConfig};
use kindred::agent::{network::NetworkAgent, service_lb::ServiceLbAgent, storage::StorageAgent};

use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Per-node pod network: CNI config, routes to other nodes' pods, masquerading.
    Network,
    /// Per-node host-path volume provisioner for the default StorageClass.
    Storage,
    /// Per-node LoadBalancer Service addresses from the cluster's pool (one node answers each).
    #[command(name = "service-lb")]
    ServiceLb,
    /// TCP load balancer in front of the API servers of several control planes.
    #[command(name = "loadbalancer")]
    LoadBalancer(LoadBalancerArgs),
    /// Deletes the Nodes whose containers are gone and taints those whose containers are
    /// stopped (runs beside the cluster, given the container runtime's socket).
    #[command(name = "node-lifecycle")]
    NodeLifecycle(NodeLifecycleArgs),
    /// Time computing and programming one node's NetworkPolicy rules for a synthetic cluster
    /// (needs nft and CAP_NET_ADMIN; hack/bench-netpol.sh runs it in a throwaway node).
    #[command(name = "policy-bench")]
    PolicyBench(PolicyBenchArgs),
}

#[derive(Debug, Args)]
pub struct PolicyBenchArgs {
    #[arg(long, default_value_t = 500)]
    policies: usize,
    /// Pods on the node being programmed.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
}

#[derive(Debug, Args)]
pub struct NodeLifecycleArgs {
    /// The cluster whose Nodes to keep in step with its containers.
    #[arg(long)]
    cluster: String,
}

#[derive(Debug, Args)]
pub struct LoadBalancerArgs {
    /// Address and port to accept connections on.
    #[arg(long, value_name = "ADDR:PORT", default_value = loadbalancer::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The API servers, one host:port a line (# comments); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    backends: PathBuf,
    /// How to check that an API server is up.
    #[arg(long, value_enum, default_value_t = Health::Https)]
    health: Health,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Health {
    /// TLS handshake and GET /healthz answered with 200.
    Https,
    /// TCP connect.
    Tcp,
}

pub async fn run(what: AgentCommand) -> CmdResult {
    match what {
        AgentCommand::Network => NetworkAgent::from_env()?.run().await?,
        AgentCommand::Storage => StorageAgent::from_env()?.run().await?,
        AgentCommand::ServiceLb => ServiceLbAgent::from_env()?.run().await?,
        AgentCommand::LoadBalancer(args) => {
            let health = match args.health {
                Health::Https => HealthCheck::Https,
                Health::Tcp => HealthCheck::Tcp,
            };
            let config = LoadBalancerConfig::new(args.listen, args.backends, health);
            LoadBalancer::new(config)?.run().await?
        }
        AgentCommand::NodeLifecycle(args) => {
            kindred::agent::node_lifecycle::NodeLifecycle::connect(args.cluster)
                .await?
                .run()
                .await?
        }
        AgentCommand::PolicyBench(a) => {
            let r = kindred::agent::policy::bench::run(a.policies, a.pods, a.namespaces).await?;
            outln!(
                "policies={} pods={} namespaces={} compile_ms={:.1} apply_ms={:.1} rules={} script_kib={}",
                a.policies,
                a.pods,
                a.namespaces,
                r.compile.as_secs_f64() * 1000.0,
                r.apply.as_secs_f64() * 1000.0,
                r.rules,
                r.script_bytes / 1024
            );
        }
    }
    Ok(())
}
