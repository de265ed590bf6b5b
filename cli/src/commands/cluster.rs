//! kind's cluster verbs: create/delete cluster(s), get clusters/nodes/kubeconfig, export
//! kubeconfig (and logs, in `logs.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kindred::cluster::{self, CreateOptions, NodeFormat};
use kindred::config::{self, Cluster};
use kindred::defaults::HostDefault;
use kindred::kubeconfig;
use kindred::provider::{Docker, Provider};
use kindred::ui::Ui;

use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a cluster (nodes, kubeadm, pod network, kubeconfig).
    Cluster(CreateClusterArgs),
    /// Add a worker to a running cluster (joined with kubeadm, waited for until Ready).
    Node(super::node::CreateNodeArgs),
}

#[derive(Debug, Args)]
pub struct CreateClusterArgs {
    /// Cluster name [default: the config's name, else $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// Cluster config file (kind.x-k8s.io/v1alpha4 or kindred.dev/v1alpha4), or - for stdin.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Node image for every node [default: kindred/node:<newest Kubernetes the host runs>: v1.37.2
    /// on cgroup v2 hosts, v1.34.12 on cgroup v1].
    #[arg(long)]
    image: Option<String>,
    /// Wait this long for every node to be Ready, e.g. 60s, 5m [default: 0, do not wait].
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    wait: Duration,
    /// Keep the nodes if creation fails, to debug them.
    #[arg(long)]
    retain: bool,
    /// Kubeconfig to update [default: first entry of $KUBECONFIG, else ~/.kube/config].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Run the local registry `kindred-registry` (shared by every cluster that asks for it)
    /// and make the nodes pull `localhost:<port>/...` from it [config: `registry:`].
    #[arg(long)]
    registry: bool,
    /// The registry's port on 127.0.0.1 [default: 5001; implies --registry].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    registry_port: Option<u16>,
    /// Keep the registry and its images when its last cluster is deleted [implies --registry].
    #[arg(long)]
    keep_registry: bool,
    /// Give LoadBalancer Services no addresses (they stay pending, as on kind)
    /// [config: `loadBalancerServices: {enabled: false}`].
    #[arg(long)]
    disable_load_balancer_services: bool,
    /// Run no node lifecycle agent: Nodes of removed containers stay, stopped ones get no
    /// shutdown taint (as on kind) [config: `nodeLifecycle: {enabled: false}`].
    #[arg(long)]
    disable_node_lifecycle: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Delete a cluster: its nodes, its kubeconfig entries, and the network once unused.
    Cluster {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Delete several clusters by name, or all of them.
    Clusters {
        names: Vec<String>,
        #[arg(long, conflicts_with = "names")]
        all: bool,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Delete the local registry `kindred-registry` and its images (also a kept one); refused
    /// while clusters use it.
    Registry,
    /// Remove one worker: drain it, delete its Node, remove its container and volume.
    Node(super::node::DeleteNodeArgs),
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List clusters.
    Clusters {
        /// `wide`: a table with each cluster's state (running, stopped, or how many nodes run)
        /// and node count; `json`: an array of cluster names.
        #[arg(short, long, value_enum, default_value_t = ClustersOutput::Text)]
        output: ClustersOutput,
    },
    /// List the node containers of a cluster.
    Nodes {
        #[arg(long, conflicts_with = "all_clusters")]
        name: Option<String>,
        /// Nodes of every cluster.
        #[arg(short = 'A', long)]
        all_clusters: bool,
        /// `wide`: a table with cluster, role, status, IP, image and Kubernetes version;
        /// `json`/`yaml`: the same as a list of objects [default: one name per line].
        #[arg(short, long, value_enum)]
        output: Option<NodesOutput>,
    },
    /// Print a cluster's kubeconfig.
    Kubeconfig {
        #[arg(long)]
        name: Option<String>,
        /// Use the control plane's address on the kindred network (for containers on it).
        #[arg(long)]
        internal: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ClustersOutput {
    Text,
    Wide,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NodesOutput {
    Wide,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Merge a cluster's kubeconfig entry into your kubeconfig and make it current.
    Kubeconfig {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        #[arg(long)]
        internal: bool,
    },
    /// Collect every node's journal, kubelet/containerd logs, /var/log, crictl state and
    /// container details into a directory (printed at the end).
    Logs(super::logs::ExportLogsArgs),
}

pub async fn create(cmd: CreateCommand, ui: &Ui) -> CmdResult {
    let args = match cmd {
        CreateCommand::Cluster(args) => args,
        CreateCommand::Node(args) => return super::node::create(args, ui).await,
    };
    let (loaded, dir) = match &args.config {
        Some(path) => config::load(path)?,
        None => (Cluster::default(), None),
    };
    let base = match dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    let mut overrides = cluster::ConfigOverrides {
        name: args.name.clone(),
        image: args.image.clone(),
        registry: (args.registry || args.registry_port.is_some() || args.keep_registry)
            .then_some((args.registry_port, args.keep_registry)),
        disable_load_balancer_services: args.disable_load_balancer_services,
        disable_node_lifecycle: args.disable_node_lifecycle,
        default_image: None,
    };
    // The config is checked with the cgroup v1 default image before Docker is touched (bad input
    // fails fast, with or without a daemon), then resolved again with the host's own default.
    let resolve = |overrides: &cluster::ConfigOverrides| {
        cluster::resolve_config(loaded.clone(), args.config.as_deref(), &base, overrides)
    };
    let cluster = resolve(&overrides)?;
    let docker = Docker::connect().await?;
    let host = super::host_default(&docker, ui).await?;
    let cluster = if host.version == kindred::defaults::KUBERNETES_VERSION {
        cluster
    } else {
        overrides.default_image = Some(host.node_image());
        resolve(&overrides)?
    };
    build_default_image_if_missing(&docker, &cluster, &host, ui).await?;
    if cluster.registry().is_some() {
        // Built on first use (a few minutes, cached afterwards), like the default node image.
        let opts = kindred_node_image::registry_image::RegistryImageOptions {
            cache_dir: kindred::cache::cache_dir(),
            no_cache: false,
        };
        kindred_node_image::registry_image::ensure(&docker, &opts, ui).await?;
    }
    let opts = CreateOptions {
        config: cluster,
        retain: args.retain,
        wait: args.wait,
        kubeconfig: kubeconfig::target_path(args.kubeconfig.as_deref()),
    };
    ui.info(format!("Creating cluster \"{}\" ...", opts.config.name));
    // Ctrl-C and SIGTERM clean up inside (only what this command made).
    let created = cluster::create(&docker, &opts, ui).await?;
    // No kubectl on the host: point at the cluster's own, which always matches its version.
    let kubectl = if on_path("kubectl") {
        format!("kubectl cluster-info --context {}", created.context)
    } else {
        let name = &opts.config.name;
        let flag = if name == kindred::config::DEFAULT_CLUSTER_NAME {
            String::new()
        } else {
            format!(" --name {name}")
        };
        format!("kindred kubectl{flag} -- cluster-info    (no kubectl on this host: kindred runs the node image's)")
    };
    ui.info(format!(
        "Set kubectl context to \"{0}\" (API server {1})\nYou can now use your cluster with:\n\n  {kubectl}\n",
        created.context, created.server
    ));
    Ok(())
}

/// True when `program` is an executable file in a directory of $PATH.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The default node image is built on first use, so a fresh machine needs one command; any
/// other missing image is an error that says how to get it (from `create`).
async fn build_default_image_if_missing(
    docker: &dyn Provider,
    cluster: &Cluster,
    host: &HostDefault,
    ui: &Ui,
) -> CmdResult {
    let default = host.node_image();
    if !cluster.nodes.iter().any(|n| n.image == default) || docker.image_exists(&default).await? {
        return Ok(());
    }
    // No build for a runtime create would refuse anyway.
    cluster::check_runtime(docker).await?;
    ui.info(format!(
        "Node image {default} is not built yet; building it first (cached afterwards)"
    ));
    let opts = kindred_node_image::BuildOptions::default_image(host.version, super::current_exe()?);
    kindred_node_image::build(&opts, ui).await?;
    Ok(())
}

pub async fn delete(cmd: DeleteCommand, ui: &Ui) -> CmdResult {
    let docker = Docker::connect().await?;
    let (names, path) = match cmd {
        DeleteCommand::Cluster { name, kubeconfig } => {
            (vec![cluster::default_name(name.as_deref())], kubeconfig)
        }
        DeleteCommand::Node(args) => return super::node::delete(args, ui).await,
        DeleteCommand::Registry => {
            let step = ui.step(format!(
                "Deleting the registry {}",
                kindred::registry::CONTAINER
            ));
            if cluster::delete_registry(&docker).await? {
                step.done();
            } else {
                step.done_with("no registry, nothing to do");
            }
            return Ok(());
        }
        DeleteCommand::Clusters {
            names,
            all,
            kubeconfig,
        } => {
            if !all && names.is_empty() {
                return Err("name the clusters to delete, or pass --all".into());
            }
            (
                if all {
                    cluster::clusters(&docker).await?
                } else {
                    names
                },
                kubeconfig,
            )
        }
    };
    let path = kubeconfig::target_path(path.as_deref());
    for name in names {
        let step = ui.step(format!("Deleting cluster \"{name}\""));
        let deleted = cluster::delete(&docker, &name, &path).await?;
        if !deleted.existed {
            step.done_with("no such cluster, nothing to do");
        } else if deleted.registry_removed {
            step.done_with(format!(
                "and the registry {}, which no cluster uses any more",
                kindred::registry::CONTAINER
            ));
        } else {
            step.done();
        }
    }
    Ok(())
}

pub async fn get(cmd: GetCommand) -> CmdResult {
    let docker = Docker::connect().await?;
    match cmd {
        GetCommand::Clusters { output } => {
            let names = cluster::clusters(&docker).await?;
            match output {
                ClustersOutput::Text => names.iter().for_each(|n| outln!("{n}")),
                ClustersOutput::Json => outln!("{}", serde_json::to_string_pretty(&names)?),
                ClustersOutput::Wide => {
                    let nodes = cluster::nodes(&docker, None).await?;
                    outln!("{:<24} {:<10} NODES", "NAME", "STATE");
                    for name in &names {
                        let of: Vec<_> = nodes.iter().filter(|n| &n.cluster == name).collect();
                        let running = of.iter().filter(|n| n.state == "running").count();
                        let state = match running {
                            0 => "stopped".to_string(),
                            r if r == of.len() => "running".to_string(),
                            r => format!("{r}/{} running", of.len()),
                        };
                        outln!("{name:<24} {state:<10} {}", of.len());
                    }
                }
            }
        }
        GetCommand::Nodes {
            name,
            all_clusters,
            output,
        } => {
            let filter = if all_clusters {
                None
            } else {
                Some(cluster::default_name(name.as_deref()))
            };
            let format = match output {
                None => {
                    for n in cluster::nodes(&docker, filter.as_deref()).await? {
                        outln!("{}", n.name);
                    }
                    return Ok(());
                }
                Some(NodesOutput::Wide) => NodeFormat::Wide,
                Some(NodesOutput::Json) => NodeFormat::Json,
                Some(NodesOutput::Yaml) => NodeFormat::Yaml,
            };
            let nodes = cluster::node_details(&docker, filter.as_deref()).await?;
            out!("{}", cluster::render_nodes(&nodes, format)?);
        }
        GetCommand::Kubeconfig { name, internal } => {
            let entry = cluster::kubeconfig_entry(
                &docker,
                &cluster::default_name(name.as_deref()),
                internal,
            )
            .await?;
            out!("{}", kubeconfig::render(&entry));
        }
    }
    Ok(())
}

pub async fn export(cmd: ExportCommand, ui: &Ui) -> CmdResult {
    let (name, path, internal) = match cmd {
        ExportCommand::Kubeconfig {
            name,
            kubeconfig,
            internal,
        } => (name, kubeconfig, internal),
        ExportCommand::Logs(args) => return super::logs::run(args, ui).await,
    };
    let docker = Docker::connect().await?;
    let name = cluster::default_name(name.as_deref());
    let entry = cluster::kubeconfig_entry(&docker, &name, internal).await?;
    let path = kubeconfig::target_path(path.as_deref());
    kubeconfig::merge(&path, &entry)?;
    ui.info(format!(
        "Set kubectl context to \"{}\" in {}",
        kubeconfig::context_name(&name),
        path.display()
    ));
    Ok(())
}

/// `90s`, `5m`, `1h`, `1m30s`, or a bare number of seconds (see [`kindred::duration::parse`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    kindred::duration::parse(text)
}
