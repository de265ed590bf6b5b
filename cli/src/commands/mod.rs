//! Command definitions. Each subcommand module turns its arguments into a library call.

/// `print!` for command output: see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::commands::write_stdout(format_args!($($arg)*)) };
}

/// `println!` for command output: see [`write_stdout`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod agent;
mod bom;
mod build;
mod cluster;
mod kubectl;
mod lifecycle;
mod load;
mod logs;
mod node;
mod test;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};
use kindred::ui::{Ui, Verbosity};

pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Writes command output to stdout. A reader that has gone away (`kindred get clusters |
/// head -1`) ends the command quietly and successfully instead of with a panic. SIGPIPE stays
/// ignored, as Rust sets it: where kindred writes into a child process (an import, a tar
/// stream), a child that exits early must be an error kindred reports and cleans up after.
pub(crate) fn write_stdout(args: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "kindred",
    version,
    about = "Local Kubernetes clusters whose nodes are Docker containers"
)]
pub struct Cli {
    /// Show each underlying command and its output.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print nothing but errors and requested output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build node images.
    Build {
        #[command(subcommand)]
        what: build::BuildCommand,
    },
    /// Create a cluster, or add a node to one.
    Create {
        #[command(subcommand)]
        what: cluster::CreateCommand,
    },
    /// Delete clusters, or one node of a cluster.
    Delete {
        #[command(subcommand)]
        what: cluster::DeleteCommand,
    },
    /// Stop a cluster's node containers, keeping everything.
    Stop {
        #[command(subcommand)]
        what: lifecycle::StopCommand,
    },
    /// Start a stopped cluster again.
    Start {
        #[command(subcommand)]
        what: lifecycle::StartCommand,
    },
    /// Restart one node of a cluster.
    Restart {
        #[command(subcommand)]
        what: node::RestartCommand,
    },
    /// List clusters and nodes, print kubeconfigs.
    Get {
        #[command(subcommand)]
        what: cluster::GetCommand,
    },
    /// Load images into a cluster's nodes.
    Load {
        #[command(subcommand)]
        what: load::LoadCommand,
    },
    /// Write a cluster's kubeconfig entry into your kubeconfig, or its logs into a directory.
    Export {
        #[command(subcommand)]
        what: cluster::ExportCommand,
    },
    /// Run test suites against a cluster.
    Test {
        #[command(subcommand)]
        what: test::TestCommand,
    },
    /// Run the cluster's own kubectl (from its node image) against it: `kindred kubectl -- get pods -A`.
    Kubectl(kubectl::KubectlArgs),
    /// Print the bill of materials of a node image.
    Bom(bom::BomArgs),
    /// Print the kindred version and the default Kubernetes version.
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// The CI image's entrypoint: start a nested Docker daemon, run COMMAND, clean up.
    #[command(name = "ci-entrypoint", hide = true)]
    CiEntrypoint {
        /// The job's command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run an agent (used by the DaemonSets and the load balancer container kindred creates).
    #[command(hide = true)]
    Agent {
        #[command(subcommand)]
        what: agent::AgentCommand,
    },
}

impl Cli {
    fn ui(&self) -> Ui {
        Ui::new(if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        })
    }
}

/// This executable: node images pack it as the in-cluster agent.
fn current_exe() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    std::env::current_exe().map_err(|e| format!("cannot find the kindred executable: {e}").into())
}

pub async fn run(cli: Cli) -> CmdResult {
    let ui = cli.ui();
    match cli.command {
        Command::Build { what } => build::run(what, &ui).await,
        Command::Create { what } => cluster::create(what, &ui).await,
        Command::Delete { what } => cluster::delete(what, &ui).await,
        Command::Stop { what } => lifecycle::stop(what, &ui).await,
        Command::Start { what } => lifecycle::start(what, &ui).await,
        Command::Restart { what } => node::restart(what, &ui).await,
        Command::Get { what } => cluster::get(what).await,
        Command::Load { what } => load::run(what, &ui).await,
        Command::Export { what } => cluster::export(what, &ui).await,
        Command::Test { what } => test::run(what, &ui).await,
        Command::Bom(args) => bom::run(args).await,
        Command::Kubectl(args) => kubectl::run(args).await,
        Command::Agent { what } => agent::run(what).await,
        Command::CiEntrypoint { command } => {
            // The container's exit status is the job's.
            let code = kindred::ci::run(&command, &ui).await?;
            std::process::exit(code)
        }
        Command::Version => {
            use kindred::defaults::{KUBERNETES_VERSION, NEWEST_KUBERNETES_VERSION};
            // The first line's format is read by scripts (hack/vm-smoke.sh).
            let host = match kindred::provider::Docker::connect().await {
                Ok(docker) => host_default(&docker, &Ui::quiet())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let (version, why) = match host {
                Ok(host) => (host.version, host.reason.to_string()),
                Err(e) => (
                    KUBERNETES_VERSION,
                    format!(
                        "{NEWEST_KUBERNETES_VERSION} on cgroup v2 Docker hosts, \
                         {KUBERNETES_VERSION} on cgroup v1; this host's is unknown ({e})"
                    ),
                ),
            };
            outln!(
                "kindred {} (default Kubernetes {version})\ndefault Kubernetes: {why}",
                env!("CARGO_PKG_VERSION"),
            );
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kindred",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// The default Kubernetes of this Docker host (the newest it runs), said under `-v`.
pub(crate) async fn host_default(
    docker: &kindred::provider::Docker,
    ui: &Ui,
) -> Result<kindred::defaults::HostDefault, kindred::cluster::ClusterError> {
    let host = kindred::cluster::host_default(docker).await?;
    ui.detail(format!(
        "Default Kubernetes {}: {}",
        host.version, host.reason
    ));
    Ok(host)
}
