//! `kindred test conformance`: the upstream Kubernetes conformance suite against a kindred
//! cluster, with nothing pulled from a registry.
//!
//! 1. The cluster's Kubernetes version is read from its control plane (`/kind/version`).
//! 2. e2e.test and ginkgo are built for it from Go modules ([`binaries`]), cached by version.
//! 3. The test images the e2e binary names are built ([`images`]) and loaded into every node.
//! 4. ginkgo runs e2e.test from the host against the API server's published port, with a
//!    kubeconfig, kubectl and the report directory in the artifacts directory ([`ginkgo`]).
//! 5. The JUnit report becomes a summary ([`junit`]); containerd's log on every node is checked
//!    for image pulls, which must not happen (they would leave the machine).

pub mod binaries;
pub mod busybox;
pub mod ginkgo;
pub mod images;
pub mod junit;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kindred::cluster::{self, ImageSource, Outcome};
use kindred::provider::Provider;
use kindred::ui::Ui;
use kindred_node_image::base::BaseOptions;
use kindred_node_image::gobuild::GoEnv;
use kindred_node_image::kube::normalize_version;

pub use binaries::TestBinaries;
pub use ginkgo::{Invocation, Selection, Skip};
pub use images::TestImages;
pub use junit::Summary;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] kindred_node_image::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Provider(#[from] kindred::provider::ProviderError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Msg(String),
}

impl Error {
    fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// What `kindred test conformance` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub cluster: String,
    pub selection: Selection,
    /// ginkgo processes.
    pub parallel: u32,
    pub artifacts: PathBuf,
    /// e2e.test of this version instead of the cluster's.
    pub kube_version: Option<String>,
    pub cache_dir: PathBuf,
    pub no_cache: bool,
    /// Where the test images' Debian tools come from.
    pub base: BaseOptions,
    /// Let the nodes reach registries during the run (by default every registry is pointed
    /// at a closed loopback port for the run, see [`cluster::block_registry_pulls`]).
    pub allow_registry_pulls: bool,
}

/// Everything built for a Kubernetes version: what a run needs before it touches a cluster.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub binaries: TestBinaries,
    pub images: TestImages,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub summary: Summary,
    pub artifacts: PathBuf,
    pub ginkgo_exit: i32,
    /// Images containerd was asked to pull during the run, per node ("node: image").
    pub pulls: Vec<String>,
    /// Whether registries were unreachable from the nodes during the run (the pulls above then
    /// failed on the node, as the specs that use nonexistent images expect).
    pub pulls_blocked: bool,
    /// The whole command's wall time, building included.
    pub wall_seconds: f64,
}

impl Report {
    pub fn success(&self) -> bool {
        self.summary.success()
            && self.ginkgo_exit == 0
            && (self.pulls_blocked || self.pulls.is_empty())
    }
}

/// Builds (or finds cached) e2e.test, ginkgo and the test images for `version`.
pub async fn prepare(
    version: &str,
    cache_dir: &Path,
    base: &BaseOptions,
    no_cache: bool,
    ui: &Ui,
) -> Result<Prepared, Error> {
    let version = normalize_version(version);
    let step = ui.step(format!(
        "Building e2e.test and ginkgo for Kubernetes {version}"
    ));
    let go = GoEnv::detect(cache_dir).await?;
    let binaries = binaries::build_test_binaries(&go, &version, no_cache, &step).await?;
    step.done_with(format!("ginkgo {}", binaries.ginkgo_version));

    let step = ui.step("Building the test images");
    let listed = images::listed_images(&binaries.e2e_test).await?;
    let images = images::build(&go, &version, &listed, base, no_cache, &step).await?;
    step.done_with(format!(
        "{} images, {} listed ones not built",
        images.built.len(),
        images.not_built.len()
    ));
    for n in &images.not_built {
        ui.detail(format!("  not built (no [Conformance] spec uses it): {n}"));
    }
    Ok(Prepared { binaries, images })
}

/// Runs the suite against a cluster and writes the report into the artifacts directory.
pub async fn run(docker: &dyn Provider, opts: &Options, ui: &Ui) -> Result<Report, Error> {
    let started = Instant::now();
    let name = &opts.cluster;
    let step = ui.step(format!("Checking cluster \"{name}\""));
    let mut nodes = cluster::nodes(docker, Some(name)).await?;
    nodes.retain(|n| n.role != cluster::LOAD_BALANCER_ROLE);
    if nodes.is_empty() {
        return Err(Error::Msg(format!(
            "no cluster named {name} (see `kindred get clusters`; create one with `kindred create cluster --name {name}`)"
        )));
    }
    if let Some(stopped) = nodes.iter().find(|n| n.state != "running") {
        return Err(Error::Msg(format!(
            "node {} of {name} is {}; start the cluster first (`kindred start cluster --name {name}`)",
            stopped.name, stopped.state
        )));
    }
    let cp = cluster::control_plane(docker, name).await?;
    let cluster_version =
        String::from_utf8_lossy(&docker.read_container_file(&cp, "/kind/version").await?)
            .trim()
            .to_string();
    let version = opts
        .kube_version
        .as_deref()
        .map(normalize_version)
        .unwrap_or_else(|| cluster_version.clone());
    let schedulable = cluster::schedulable_nodes(docker, name).await?;
    if schedulable.is_empty() {
        return Err(Error::Msg(format!(
            "cluster {name} has no node that takes pods (all are tainted or cordoned)"
        )));
    }
    step.done_with(format!(
        "Kubernetes {cluster_version}, {} nodes, {} schedulable",
        nodes.len(),
        schedulable.len()
    ));

    let prepared = prepare(&version, &opts.cache_dir, &opts.base, opts.no_cache, ui).await?;

    let step = ui.step(format!(
        "Loading the test images into {} nodes",
        nodes.len()
    ));
    let reports = cluster::load(
        docker,
        name,
        &[],
        &ImageSource::Archives(vec![prepared.images.archive.clone()]),
        &Ui::quiet(),
    )
    .await?;
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(why) => Some(format!("{}: {}: {why}", r.node, r.image)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err(Error::Msg(format!(
            "loading the test images failed:\n  {}",
            failed.join("\n  ")
        )));
    }
    let loaded = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Loaded)
        .count();
    step.done_with(format!(
        "{loaded} loaded, {} already there",
        reports.len() - loaded
    ));

    let artifacts = &opts.artifacts;
    std::fs::create_dir_all(artifacts).map_err(|e| Error::io(artifacts, e))?;
    let artifacts = artifacts
        .canonicalize()
        .map_err(|e| Error::io(artifacts, e))?;
    // From the host, through the API server's published port: the e2e binary, kubectl and
    // ginkgo run here, and the specs reach pods through the API server or from pods.
    let kubeconfig = artifacts.join("kubeconfig");
    let entry = cluster::kubeconfig_entry(docker, name, false).await?;
    write(
        &kubeconfig,
        kindred::kubeconfig::render(&entry).as_bytes(),
        0o600,
    )?;
    let kubectl = opts
        .cache_dir
        .join("conformance")
        .join(format!("kubectl-{cluster_version}"));
    if !kubectl.exists() {
        let bytes = docker.read_container_file(&cp, "/usr/bin/kubectl").await?;
        write(&kubectl, &bytes, 0o755)?;
    }

    let skips = ginkgo::default_skips(&opts.selection);
    let inv = Invocation {
        ginkgo: prepared.binaries.ginkgo.clone(),
        e2e_test: prepared.binaries.e2e_test.clone(),
        kubeconfig,
        kubectl,
        artifacts: artifacts.clone(),
        num_nodes: schedulable.len(),
        parallel: opts.parallel,
        focus: ginkgo::focus(&opts.selection),
        skip: ginkgo::skip_regex(&skips, &opts.selection.skip),
    };
    write(
        &artifacts.join("skips.txt"),
        render_skips(&skips, &opts.selection.skip).as_bytes(),
        0o644,
    )?;
    write(
        &artifacts.join("ginkgo-command.txt"),
        format!("{}\n", inv.display()).as_bytes(),
        0o644,
    )?;
    // A report from an earlier run must not be mistaken for this one's.
    let junit = artifacts.join("junit_01.xml");
    let _ = std::fs::remove_file(&junit);

    ui.info(format!(
        "Running e2e.test {version} with ginkgo {} on {} process(es): focus {}, skip {}",
        prepared.binaries.ginkgo_version,
        inv.parallel.max(1),
        inv.focus,
        if inv.skip.is_empty() {
            "nothing"
        } else {
            &inv.skip
        }
    ));
    ui.detail(format!("$ {}", inv.display()));
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let blocked = if opts.allow_registry_pulls {
        None
    } else {
        let step = ui.step("Pointing every registry at a closed port on the nodes for the run");
        let blocked = cluster::block_registry_pulls(docker, name).await?;
        let mut note = format!("{} nodes", blocked.files.len());
        if !blocked.restarted.is_empty() {
            note.push_str(&format!(
                ", containerd restarted to read registry hosts files on {}",
                blocked.restarted.join(", ")
            ));
        }
        if !blocked.skipped.is_empty() {
            note.push_str(&format!(
                "; not on {} (a _default/hosts.toml of their own)",
                blocked.skipped.join(", ")
            ));
        }
        step.done_with(note);
        Some(blocked)
    };
    let quiet = ui.verbosity() == kindred::ui::Verbosity::Quiet;
    let exit = run::run_ginkgo(&inv, &artifacts.join("ginkgo.log"), quiet).await;
    if let Some(blocked) = &blocked {
        cluster::unblock_registry_pulls(docker, blocked).await?;
    }
    let exit = exit?;

    let xml = std::fs::read_to_string(&junit).map_err(|e| {
        Error::Msg(format!(
            "ginkgo exited with {exit} and wrote no report ({}: {e}); see {}",
            junit.display(),
            artifacts.join("ginkgo.log").display()
        ))
    })?;
    let summary =
        junit::parse(&xml).map_err(|e| Error::Msg(format!("{}: {e}", junit.display())))?;
    let pulls = image_pulls(docker, &nodes, since).await;
    let report = Report {
        summary,
        artifacts: artifacts.clone(),
        ginkgo_exit: exit,
        pulls,
        pulls_blocked: blocked.as_ref().is_some_and(|b| b.skipped.is_empty()),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    write(
        &artifacts.join("summary.txt"),
        render_report(&report).as_bytes(),
        0o644,
    )?;
    let json = serde_json::json!({
        "cluster": name,
        "kubernetesVersion": cluster_version,
        "e2eVersion": version,
        "focus": inv.focus,
        "skip": inv.skip,
        "parallel": inv.parallel.max(1),
        "summary": report.summary,
        "ginkgoExitCode": exit,
        "imagePulls": report.pulls,
        "imagePullsBlocked": report.pulls_blocked,
        "wallSeconds": report.wall_seconds,
    });
    write(
        &artifacts.join("summary.json"),
        serde_json::to_string_pretty(&json)
            .expect("serializable")
            .as_bytes(),
        0o644,
    )?;
    Ok(report)
}

/// The summary with the image-pull check and ginkgo's exit code when they matter.
pub fn render_report(report: &Report) -> String {
    let mut out = report.summary.render();
    if !report.pulls.is_empty() {
        if report.pulls_blocked {
            out.push_str(&format!(
                "pulls tried during the run (failed on the node, registries were unreachable): {}\n",
                report.pulls.join(", ")
            ));
        } else {
            out.push_str(&format!(
                "image pulls during the run (they may have reached a registry): {}\n",
                report.pulls.join(", ")
            ));
        }
    }
    if report.ginkgo_exit != 0 && report.summary.success() {
        out.push_str(&format!(
            "ginkgo exited with {} although no spec failed; see ginkgo.log\n",
            report.ginkgo_exit
        ));
    }
    out
}

/// skips.txt: every skip expression with its reason.
pub fn render_skips(skips: &[Skip], user: &[String]) -> String {
    let mut out = String::new();
    for s in skips {
        out.push_str(&format!("{}\t{}\n", s.pattern, s.reason));
    }
    for u in user {
        out.push_str(&format!("{u}\tasked for with --skip\n"));
    }
    out
}

/// Image pulls containerd logged on each node since `since` (seconds since 1970).
async fn image_pulls(
    docker: &dyn Provider,
    nodes: &[cluster::NodeSummary],
    since: u64,
) -> Vec<String> {
    let mut pulls = Vec::new();
    for n in nodes {
        let script = format!(
            "journalctl -u containerd --since @{since} --no-pager -o cat 2>/dev/null | grep -o 'PullImage \\\\\"[^\\\\]*' || true"
        );
        if let Ok(out) = docker.exec(&n.name, &["bash", "-c", &script]).await {
            pulls.extend(
                parse_pulls(&out.stdout)
                    .into_iter()
                    .map(|i| format!("{}: {i}", n.name)),
            );
        }
    }
    pulls.sort();
    pulls.dedup();
    pulls
}

/// `PullImage \"registry.k8s.io/x:1` lines -> image names.
pub fn parse_pulls(text: &str) -> Vec<String> {
    let mut images: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("PullImage "))
        .map(|(_, rest)| {
            rest.trim_start_matches(['\\', '"'])
                .trim_end_matches(['\\', '"'])
                .to_string()
        })
        .filter(|i| !i.is_empty())
        .collect();
    images.sort();
    images.dedup();
    images
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = path.with_extension("kindred-tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_read_from_containerd_log_lines() {
        let text = "PullImage \\\"registry.k8s.io/e2e-test-images/perl:5.26\nPullImage \\\"registry.k8s.io/e2e-test-images/perl:5.26\nPullImage \\\"docker.io/library/x:1\n";
        assert_eq!(
            parse_pulls(text),
            vec![
                "docker.io/library/x:1".to_string(),
                "registry.k8s.io/e2e-test-images/perl:5.26".to_string()
            ]
        );
        assert!(parse_pulls("").is_empty());
    }

    #[test]
    fn report_mentions_pulls_and_odd_exits() {
        let report = Report {
            summary: Summary {
                passed: 3,
                ..Summary::default()
            },
            artifacts: "/a".into(),
            ginkgo_exit: 0,
            pulls: vec!["n: registry.k8s.io/x:1".into()],
            pulls_blocked: false,
            wall_seconds: 1.0,
        };
        assert!(!report.success());
        let text = render_report(&report);
        assert!(text.starts_with("passed: 3, failed: 0"), "{text}");
        assert!(text.contains("may have reached a registry"), "{text}");
        let blocked = Report {
            pulls_blocked: true,
            ..report.clone()
        };
        assert!(blocked.success());
        assert!(render_report(&blocked).contains("failed on the node"));
        let odd = Report {
            pulls: vec![],
            ginkgo_exit: 1,
            ..report
        };
        assert!(!odd.success());
        assert!(render_report(&odd).contains("ginkgo exited with 1"));
    }

    #[test]
    fn skips_file_names_every_reason() {
        let text = render_skips(
            &[Skip {
                pattern: r"\[Serial\]".into(),
                reason: "alone".into(),
            }],
            &["Foo".into()],
        );
        assert_eq!(text, "\\[Serial\\]\talone\nFoo\tasked for with --skip\n");
    }
}
