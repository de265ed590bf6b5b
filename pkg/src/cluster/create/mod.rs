//! `create cluster` as an ordered list of small actions, one file each (like kind's
//! pkg/cluster/internal/create/actions):
//!
//! | # | file                | what it does                                                  |
//! |---|---------------------|---------------------------------------------------------------|
//! | 0 | `preflight.rs`      | images, memory, API port, name, registry port: before anything |
//! | 1 | `provision.rs`      | node containers (and load balancer) under the network lock    |
//! | 2 | `load_balancer.rs`  | HA: the load balancer's list of control planes                |
//! | 3 | `configure.rs`      | systemd up; containerd patches, proxy, registry hosts         |
//! | 3b| `unpack.rs`         | preloaded images unpacked in the background, in need order    |
//! | 4 | `kubeadm_config.rs` | version, endpoint, token, certificate key -> [`Bootstrap`]     |
//! | 5 | `kubeadm_init.rs`   | `kubeadm init` on the first control plane                     |
//! | 6 | `addons.rs`         | pod network, storage and LoadBalancer agents (registry map)   |
//! | 7 | `join.rs`           | other control planes one by one, workers all at once          |
//! | 8 | `untaint.rs`        | no workers: workloads may run on the control plane            |
//! | 9 | `wait_ready.rs`     | `--wait`: every node Ready                                    |
//! | 10| `kubeconfig.rs`     | the entry merged into the user's kubeconfig                   |
//!
//! Each action reads the shared [`Ctx`] and what earlier actions returned; none keeps state.
//! On failure the half-made cluster is deleted unless the user asked to retain it: everything
//! made carries the create's token (see `cluster::ownership`), so only that is removed.
//! [`create`] is the entry point commands call; it also owns the cleanup on Ctrl-C/SIGTERM
//! (interrupt.rs), and [`resolve_config`] (resolve.rs) applies the command's flags to the
//! loaded config. `create node` (add_node.rs) reuses the container spec, addressing and join
//! config to add one worker to a running cluster. `KINDRED_TEST_PAUSE_AT` (pause.rs) stops a create at named points for the race tests.

mod add_node;
mod addons;
mod configure;
mod interrupt;
mod join;
mod kubeadm_config;
mod kubeadm_init;
mod kubeconfig;
mod load_balancer;
mod pause;
mod preflight;
mod provision;
mod resolve;
#[cfg(test)]
mod tests;
mod unpack;
mod untaint;
mod wait_ready;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::node_options::NodeOptions;
use super::ownership::Ownership;
use super::plan::ClusterPlan;
use super::ClusterError;
use crate::config::Cluster;
use crate::provider::Provider;
use crate::ui::Ui;
pub use add_node::{add_node, AddNodeOptions};
pub use interrupt::signal as shutdown_signal;
use kubeadm_config::Bootstrap;
use pause::pause_point;
pub use pause::PAUSE_ENV;
pub use resolve::{resolve_config, ConfigOverrides};

pub struct CreateOptions {
    /// Defaulted and validated.
    pub config: Cluster,
    /// Keep the nodes when creation fails, for debugging.
    pub retain: bool,
    /// How long to wait for every node to be Ready (zero: do not wait).
    pub wait: Duration,
    pub kubeconfig: PathBuf,
}

#[derive(Debug)]
pub struct Created {
    pub context: String,
    pub server: String,
}

/// What every action reads: the daemon, the plan, the prepared node options, the user's
/// options, the owner whose token marks what this create makes, and the output.
struct Ctx<'a> {
    docker: &'a dyn Provider,
    plan: &'a ClusterPlan,
    options: &'a NodeOptions,
    opts: &'a CreateOptions,
    owner: &'a Ownership,
    ui: &'a Ui,
}

/// Creates a cluster (the one entry point: `kindred create cluster` and kubetest2's `--up`).
/// If that fails, or SIGINT/SIGTERM arrives first, removes what this call made (unless
/// `opts.retain`); an interruption is [`ClusterError::Interrupted`].
pub async fn create(
    docker: &dyn Provider,
    opts: &CreateOptions,
    ui: &Ui,
) -> Result<Created, ClusterError> {
    // Everything this create makes carries the owner's token; after an interruption only
    // that is removed, never a cluster of the same name that another command made.
    let owner = Ownership::new(&opts.config.name, &opts.kubeconfig)?;
    tokio::select! {
        created = create_owned(docker, opts, &owner, ui) => created,
        signal = interrupt::signal() => {
            interrupt::clean_up(docker, &owner, &opts.config.name, opts.retain, signal, ui).await;
            Err(ClusterError::Interrupted { signal })
        }
    }
}

/// How long a failed create waits for an unanswering Docker daemon before cleaning up (a
/// restarting daemon is back within seconds).
const DOCKER_RETURN_WAIT: Duration = Duration::from_secs(30);

/// [`create`] without the signal handling, cleaning up with `owner` on failure.
async fn create_owned(
    docker: &dyn Provider,
    opts: &CreateOptions,
    owner: &Ownership,
    ui: &Ui,
) -> Result<Created, ClusterError> {
    let plan = ClusterPlan::new(opts.config.clone());
    preflight::run(docker, &plan).await?;
    let options = NodeOptions::prepare(docker, &plan, &|name| std::env::var(name).ok()).await?;
    let ctx = Ctx {
        docker,
        plan: &plan,
        options: &options,
        opts,
        owner,
        ui,
    };
    let result = run(&ctx).await;
    if result.is_err() {
        if opts.retain {
            ui.info(format!(
                "Kept the nodes of {0} for debugging (--retain); remove them with `kindred delete cluster --name {0}`",
                plan.name()
            ));
        } else {
            let step = ui.step("Deleting what this command created (--retain keeps it)");
            Ownership::wait_for_provider(docker, DOCKER_RETURN_WAIT, &step).await;
            match owner.clean_up(docker, false).await {
                Ok(_) => step.done(),
                Err(e) => {
                    step.fail();
                    ui.warn(e.to_string());
                }
            }
        }
    }
    result
}

/// The actions in order; each `ui` step names what the user waits for.
async fn run(ctx: &Ctx<'_>) -> Result<Created, ClusterError> {
    let (plan, ui) = (ctx.plan, ctx.ui);
    let started = Instant::now();

    let step = ui.step(format!("Preparing nodes ({})", plan.nodes.len()));
    let provisioned = provision::run(ctx, &step).await?;
    pause_point("nodes-created").await;
    load_balancer::run(ctx, &step).await?;
    configure::run(ctx, &step).await?;
    unpack::run(ctx, &step).await?;
    step.done_with(provisioned.security.name());
    pause_point("nodes-configured").await;

    let step = ui.step("Starting the control plane (kubeadm init)");
    let bootstrap: Bootstrap = kubeadm_config::run(ctx, &step).await?;
    kubeadm_init::run(ctx, &bootstrap, &step).await?;
    step.done_with(bootstrap.kube_version.clone());
    pause_point("initialized").await;

    let step = ui.step("Installing the pod network, storage and LoadBalancer agents");
    if plan.config.networking.disable_default_cni {
        step.detail(
            "no pod network (disableDefaultCNI): nodes stay NotReady until you install one",
        );
    }
    addons::run(ctx, &bootstrap.endpoint, provisioned.lb_pool, &step).await?;
    step.done();
    pause_point("addons-installed").await;

    let joining = join::joining(ctx);
    if joining > 0 {
        let step = ui.step(format!("Joining {joining} node(s)"));
        join::run(ctx, &bootstrap, &step).await?;
        step.done();
    }
    pause_point("joined").await;

    if untaint::needed(ctx) {
        let step = ui.step("Allowing workloads on the control plane");
        untaint::run(ctx, &step).await?;
        step.done();
    }

    let wait = ctx.opts.wait;
    if !wait.is_zero() {
        let step = ui.step(format!(
            "Waiting up to {}s for every node to be Ready",
            wait.as_secs()
        ));
        wait_ready::run(ctx, wait, &step).await?;
        step.done();
    }
    pause_point("ready").await;

    let step = ui.step("Writing kubeconfig");
    let created = kubeconfig::run(ctx).await?;
    step.done_with(ctx.opts.kubeconfig.display().to_string());
    pause_point("kubeconfig-written").await;
    ui.detail(format!(
        "cluster {} created in {:.1}s",
        plan.name(),
        started.elapsed().as_secs_f64()
    ));
    Ok(created)
}
