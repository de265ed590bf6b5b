//! `kindred test conformance`: the upstream conformance suite against a cluster.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kindred::cluster;
use kindred::provider::Docker;
use kindred::ui::Ui;
use kindred_conformance::{Options, Selection};
use kindred_node_image::base::BaseOptions;

use super::CmdResult;

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run the upstream Kubernetes conformance suite (e2e.test with ginkgo, built for the
    /// cluster's version from Go modules; test images built and loaded, nothing pulled).
    Conformance(ConformanceArgs),
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Cluster name [default: $KINDRED_CLUSTER_NAME, else kindred].
    #[arg(long)]
    name: Option<String>,
    /// Specs to run, a ginkgo regular expression [default: \[Conformance\]].
    #[arg(long, value_name = "RE")]
    focus: Option<String>,
    /// Specs to leave out, on top of the default skips (repeatable).
    #[arg(long, value_name = "RE")]
    skip: Vec<String>,
    /// ginkgo processes running specs at the same time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    parallel: u32,
    /// Where the kubeconfig, junit_01.xml, ginkgo.log and summary go [default:
    /// $KINDRED_ARTIFACTS/conformance-<cluster> if set, else ./kindred-conformance-<cluster>].
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Run the e2e binary of this Kubernetes version [default: the cluster's, from its nodes'
    /// /kind/version].
    #[arg(long, value_name = "VERSION")]
    kube_version: Option<String>,
    /// Run [Serial] specs too (one at a time, after the parallel ones).
    #[arg(long)]
    include_serial: bool,
    /// Run [Disruptive] specs too (they restart nodes and components).
    #[arg(long)]
    include_disruptive: bool,
    /// Run [Flaky] specs too.
    #[arg(long)]
    include_flaky: bool,
    /// Drop every default skip; only --skip applies.
    #[arg(long)]
    no_default_skips: bool,
    /// Only build (or find cached) e2e.test, ginkgo and the test images for --kube-version
    /// [default: kindred's default version], print where they are, and exit; needs no cluster.
    #[arg(long)]
    build_only: bool,
    /// Let the nodes reach image registries during the run. By default every registry is
    /// pointed at a closed port on the nodes while the suite runs: a few specs use images that
    /// do not exist, and nothing should leave the machine.
    #[arg(long)]
    allow_registry_pulls: bool,
    /// Rebuild instead of reusing cached binaries and images.
    #[arg(long)]
    no_cache: bool,
}

impl ConformanceArgs {
    fn selection(&self) -> Selection {
        Selection {
            focus: self.focus.clone(),
            skip: self.skip.clone(),
            include_serial: self.include_serial,
            include_disruptive: self.include_disruptive,
            include_flaky: self.include_flaky,
            no_default_skips: self.no_default_skips,
        }
    }
}

/// The artifacts directory when none is given.
fn default_artifacts(cluster: &str) -> PathBuf {
    match std::env::var_os(cluster::ARTIFACTS_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(format!("conformance-{cluster}")),
        None => PathBuf::from(format!("kindred-conformance-{cluster}")),
    }
}

pub async fn run(cmd: TestCommand, ui: &Ui) -> CmdResult {
    let TestCommand::Conformance(args) = cmd;
    let cache_dir = kindred::cache::cache_dir();
    if args.build_only {
        let version = match &args.kube_version {
            Some(v) => v.clone(),
            None => super::host_default(&Docker::connect().await?, ui)
                .await?
                .version
                .to_string(),
        };
        let p = kindred_conformance::prepare(
            &version,
            &cache_dir,
            &BaseOptions::default(),
            args.no_cache,
            ui,
        )
        .await?;
        outln!("{}", p.binaries.e2e_test.display());
        outln!("{}", p.binaries.ginkgo.display());
        outln!("{}", p.images.archive.display());
        return Ok(());
    }
    let name = cluster::default_name(args.name.as_deref());
    let opts = Options {
        artifacts: args
            .artifacts
            .clone()
            .unwrap_or_else(|| default_artifacts(&name)),
        selection: args.selection(),
        parallel: args.parallel,
        kube_version: args.kube_version.clone(),
        cache_dir,
        no_cache: args.no_cache,
        base: BaseOptions::default(),
        allow_registry_pulls: args.allow_registry_pulls,
        cluster: name,
    };
    let docker = Docker::connect().await?;
    let report = kindred_conformance::run(&docker, &opts, ui).await?;
    // The summary is the result: stdout.
    out!("{}", kindred_conformance::render_report(&report));
    ui.info(format!(
        "Report in {} (junit_01.xml, ginkgo.log, summary.txt); {} in all",
        report.artifacts.display(),
        kindred_conformance::junit::human_duration(report.wall_seconds)
    ));
    if report.success() {
        Ok(())
    } else {
        Err(format!(
            "the conformance run failed: {} spec(s) failed{}",
            report.summary.failed.len() + report.summary.suite_failures.len(),
            if report.pulls.is_empty() || report.pulls_blocked {
                String::new()
            } else {
                format!(
                    ", {} image pull(s) that may have reached a registry",
                    report.pulls.len()
                )
            }
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: TestCommand,
    }

    #[test]
    fn flags_become_a_selection() {
        let t = T::parse_from([
            "t",
            "conformance",
            "--focus",
            "DNS",
            "--skip",
            "a",
            "--skip",
            "b",
            "--include-serial",
            "--parallel",
            "8",
        ]);
        let TestCommand::Conformance(args) = t.cmd;
        let sel = args.selection();
        assert_eq!(sel.focus.as_deref(), Some("DNS"));
        assert_eq!(sel.skip, vec!["a".to_string(), "b".to_string()]);
        assert!(sel.include_serial && !sel.include_disruptive && !sel.no_default_skips);
        assert_eq!(args.parallel, 8);
        let t = T::parse_from(["t", "conformance"]);
        let TestCommand::Conformance(args) = t.cmd;
        assert_eq!(args.parallel, 4);
        assert!(args.selection().focus.is_none());
    }

    #[test]
    fn artifacts_default_to_a_named_directory() {
        // Only the fallback: the environment is shared by parallel tests.
        if std::env::var_os(cluster::ARTIFACTS_ENV).is_none() {
            assert_eq!(
                default_artifacts("c"),
                PathBuf::from("kindred-conformance-c")
            );
        }
    }
}
