//! `kubetest2-kindred`: kubetest2's deployer for kindred clusters. `kubetest2 kindred ...` runs
//! it (kubetest2 looks for `kubetest2-<deployer>` on PATH), and it runs as well on its own,
//! since it implements kubetest2's whole command-line contract itself:
//!
//! - `--build`: `kindred build node-image` (a release from Go modules, `--kube-version`, or a
//!   source checkout, `--kube-root`); `--up` then uses the built image.
//! - `--up`: `kindred create cluster` (1 control plane + 2 workers unless `--config`), writing
//!   the kubeconfig to `--kubeconfig` (default `<run dir>/kubeconfig`).
//! - `--test=<tester> -- <args>`: runs `kubetest2-tester-<tester>` from PATH with the args, and
//!   `KUBECONFIG`, `ARTIFACTS` and `KUBETEST2_RUN_DIR` (the run directory, first on `PATH`) and
//!   `KUBETEST2_RUN_ID` set; its exit status is the test result.
//! - `--down`: exports the cluster's logs into `<run dir>/logs` (unless
//!   `--dump-cluster-logs=false`), then deletes the cluster. It runs last, even when up or
//!   the test failed, and on SIGINT/SIGTERM.
//! - The run directory gets `metadata.json` and `junit_runner.xml` (one test case per step).
//!
//! Everything is done through the kindred library, not by running the `kindred` CLI; only the
//! `kindred` executable itself is needed when a node image is built (it becomes the image's
//! in-cluster agent), found next to this one or on PATH.

mod args;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use args::Args;
use kindred::cluster::{self, CreateOptions};
use kindred::config;
use kindred::provider::{Docker, Provider};
use kindred::ui::{Ui, Verbosity};

/// The topology conformance runs use upstream, and `--up`'s default.
const DEFAULT_CONFIG: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("Error: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let parsed = match args::parse(&argv, &env, &cwd, &new_run_id) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", args::usage());
            return ExitCode::FAILURE;
        }
    };
    if argv.is_empty() || parsed.help {
        print!("{}", args::usage());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(parsed, &cwd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A run ID like kubetest2's (a UUID-shaped random string).
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hex = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i ^ std::process::id() as u64);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hex.push_str(&format!("{:016x}", h.finish()));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One step for junit_runner.xml.
struct StepResult {
    name: &'static str,
    seconds: f64,
    failure: Option<String>,
}

#[derive(Default)]
struct Junit {
    steps: RefCell<Vec<StepResult>>,
}

impl Junit {
    async fn wrap<F: std::future::Future<Output = Result<(), String>>>(
        &self,
        name: &'static str,
        f: F,
    ) -> Result<(), String> {
        let started = Instant::now();
        let result = f.await;
        self.steps.borrow_mut().push(StepResult {
            name,
            seconds: started.elapsed().as_secs_f64(),
            failure: result.as_ref().err().cloned(),
        });
        result
    }

    fn xml(&self) -> String {
        let steps = self.steps.borrow();
        let failures = steps.iter().filter(|s| s.failure.is_some()).count();
        let total: f64 = steps.iter().map(|s| s.seconds).sum();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"kubetest2\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
            steps.len()
        );
        for s in steps.iter() {
            out.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"kubetest2\" time=\"{:.3}\"",
                s.name, s.seconds
            ));
            match &s.failure {
                Some(f) => out.push_str(&format!(
                    "><failure message=\"{}\">{}</failure></testcase>\n",
                    escape(f),
                    escape(f)
                )),
                None => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Deployer {
    args: Args,
    run_dir: PathBuf,
    kubeconfig: PathBuf,
    cwd: PathBuf,
    ui: Ui,
    built_image: RefCell<Option<String>>,
    /// True while `up` is inside `cluster::create`, which cleans up on a signal by itself.
    creating: Cell<bool>,
}

async fn run(a: Args, cwd: &Path) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok();
    let run_dir = a.run_dir(&env, cwd);
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create the run directory {}: {e}", run_dir.display()))?;
    eprintln!("RunDir for this run: {:?}", run_dir.display().to_string());
    eprintln!("ID for this run: {:?}", a.run_id);
    let metadata = serde_json::json!({
        "kubetest-version": std::env::var("KUBETEST2_VERSION").unwrap_or_default(),
        "deployer-version": format!("kindred {}", env!("CARGO_PKG_VERSION")),
    });
    write_file(&run_dir.join("metadata.json"), &metadata.to_string())?;

    // An unknown tester is an error before anything is built or created.
    let tester = match &a.test {
        Some(t) => Some(find_tester(t)?),
        None => None,
    };
    let d = Deployer {
        kubeconfig: a.kubeconfig_path(&run_dir),
        ui: Ui::new(if a.verbosity > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }),
        args: a,
        run_dir: run_dir.clone(),
        cwd: cwd.to_path_buf(),
        built_image: RefCell::new(None),
        creating: Cell::new(false),
    };
    let junit = Junit::default();
    let a = &d.args;

    let steps = async {
        if a.build {
            // A failed build stops everything (there is nothing to tear down yet).
            junit.wrap("Build", d.build()).await?;
        }
        if a.up {
            junit.wrap("Up", d.up()).await?;
        }
        if let Some(tester) = &tester {
            let test = d.test(tester);
            if a.skip_test_junit_report {
                test.await?;
            } else {
                junit.wrap("Test", test).await?;
            }
        }
        Ok::<(), String>(())
    };
    tokio::pin!(steps);
    let result = tokio::select! {
        r = &mut steps => r,
        signal = cluster::shutdown_signal() => {
            eprintln!("Captured {signal}, gracefully attempting to clean up resources..");
            if d.creating.get() {
                // The create saw the signal too: let it remove what it made (it waits for
                // container creations already sent to Docker) before down looks.
                let _ = (&mut steps).await;
            }
            if a.up || a.test.is_some() {
                let down = junit.wrap("Down", d.down()).await;
                write_file(&run_dir.join("junit_runner.xml"), &junit.xml())?;
                return down.map_err(|e| format!("down after {signal}: {e}"));
            }
            Err(format!("interrupted by {signal}"))
        }
    };
    // Down runs last whatever happened before, and the first error wins.
    let down = if a.down {
        junit.wrap("Down", d.down()).await
    } else {
        Ok(())
    };
    write_file(&run_dir.join("junit_runner.xml"), &junit.xml())?;
    result.and(down)
}

impl Deployer {
    async fn docker(&self) -> Result<Docker, String> {
        Docker::connect().await.map_err(|e| e.to_string())
    }

    /// `kindred build node-image` through the library.
    async fn build(&self) -> Result<(), String> {
        let kube = match &self.args.kube_root {
            Some(dir) => kindred_node_image::kube::KubeSource::Source(dir.clone()),
            None => kindred_node_image::kube::KubeSource::Version(match &self.args.kube_version {
                Some(v) => v.clone(),
                None => kindred::cluster::host_default(&self.docker().await?)
                    .await
                    .map_err(|e| e.to_string())?
                    .version
                    .to_string(),
            }),
        };
        let opts = kindred_node_image::BuildOptions {
            kube,
            image: self.args.image_name.clone(),
            base: kindred_node_image::base::BaseOptions::default(),
            cache_dir: kindred::cache::cache_dir(),
            no_cache: false,
            agent_binary: kindred_binary()?,
        };
        let built = kindred_node_image::build(&opts, &self.ui)
            .await
            .map_err(|e| e.to_string())?;
        self.ui.info(format!("Built {}", built.image));
        *self.built_image.borrow_mut() = Some(built.image);
        Ok(())
    }

    /// `kindred create cluster` through the library (which also cleans up what it made on
    /// SIGINT/SIGTERM; `run` then tears the cluster down).
    async fn up(&self) -> Result<(), String> {
        let (loaded, dir) = match &self.args.config {
            Some(path) => config::load(&path.display().to_string()).map_err(|e| e.to_string())?,
            None => (
                config::parse(
                    DEFAULT_CONFIG,
                    "the default 1 control plane + 2 workers config",
                )
                .map_err(|e| e.to_string())?,
                None,
            ),
        };
        let docker = self.docker().await?;
        let host = kindred::cluster::host_default(&docker)
            .await
            .map_err(|e| e.to_string())?;
        let default = host.node_image();
        let overrides = cluster::ConfigOverrides {
            name: Some(self.args.cluster_name.clone()),
            image: self
                .args
                .image_name
                .clone()
                .or_else(|| self.built_image.borrow().clone()),
            default_image: Some(default.clone()),
            ..Default::default()
        };
        let file = self.args.config.as_ref().map(|p| p.display().to_string());
        let c = cluster::resolve_config(
            loaded,
            file.as_deref(),
            &dir.unwrap_or_else(|| self.cwd.clone()),
            &overrides,
        )
        .map_err(|e| e.to_string())?;
        for img in c.nodes.iter().map(|n| n.image.clone()) {
            if docker.image_exists(&img).await.map_err(|e| e.to_string())? {
                continue;
            }
            if img != default {
                return Err(format!(
                    "node image {img} does not exist; pass --build, or build it with `kindred build node-image --image {img}`"
                ));
            }
            cluster::check_runtime(&docker)
                .await
                .map_err(|e| e.to_string())?;
            self.ui.info(format!(
                "Node image {default} is not built yet; building it first"
            ));
            let opts =
                kindred_node_image::BuildOptions::default_image(host.version, kindred_binary()?);
            kindred_node_image::build(&opts, &self.ui)
                .await
                .map_err(|e| e.to_string())?;
        }
        let wait = kindred::duration::parse(&self.args.wait)?;
        self.ui.info(format!(
            "Creating cluster \"{}\" ...",
            self.args.cluster_name
        ));
        self.creating.set(true);
        let created = cluster::create(
            &docker,
            &CreateOptions {
                config: c,
                retain: false,
                wait,
                kubeconfig: self.kubeconfig.clone(),
            },
            &self.ui,
        )
        .await
        .map_err(|e| e.to_string());
        self.creating.set(false);
        let created = created?;
        self.ui.info(format!(
            "Cluster {} is up (API server {}); kubeconfig {}",
            self.args.cluster_name,
            created.server,
            self.kubeconfig.display()
        ));
        Ok(())
    }

    /// The tester, with the kubeconfig of the cluster written (again) where KUBECONFIG points,
    /// so a test step in a later invocation than `--up` finds it too.
    async fn test(&self, tester: &Path) -> Result<(), String> {
        let docker = self.docker().await?;
        let name = &self.args.cluster_name;
        let exists = cluster::clusters(&docker)
            .await
            .map_err(|e| e.to_string())?
            .contains(name);
        let kubeconfig = if exists {
            let entry = cluster::kubeconfig_entry(&docker, name, false)
                .await
                .map_err(|e| e.to_string())?;
            kindred::kubeconfig::merge(&self.kubeconfig, &entry).map_err(|e| e.to_string())?;
            Some(self.kubeconfig.as_path())
        } else {
            self.ui.info(format!(
                "No cluster {name}: the tester gets no KUBECONFIG (pass --up to create one)"
            ));
            None
        };
        let env = args::tester_env(
            &self.run_dir,
            &self.args.run_id,
            kubeconfig,
            std::env::var("PATH").ok().as_deref(),
        );
        self.ui.info(format!(
            "Running {} {}",
            tester.display(),
            self.args.tester_args.join(" ")
        ));
        let status = tokio::process::Command::new(tester)
            .args(&self.args.tester_args)
            .envs(env)
            .status()
            .await
            .map_err(|e| format!("cannot run {}: {e}", tester.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} failed ({status})", tester.display()))
        }
    }

    /// Logs first (they go with the cluster), then `kindred delete cluster`.
    async fn down(&self) -> Result<(), String> {
        let docker = self.docker().await?;
        let name = &self.args.cluster_name;
        let exists = cluster::clusters(&docker)
            .await
            .map_err(|e| e.to_string())?
            .contains(name);
        if exists && self.args.dump_cluster_logs {
            let dir = self.run_dir.join("logs");
            let step = self
                .ui
                .step(format!("Exporting the logs of {name} to {}", dir.display()));
            // Missing logs must not keep the cluster alive.
            match cluster::export_logs(&docker, name, Some(&dir)).await {
                Ok(_) => step.done(),
                Err(e) => step.done_with(format!("failed: {e}")),
            }
        }
        let step = self.ui.step(format!("Deleting cluster \"{name}\""));
        let deleted = cluster::delete(&docker, name, &self.kubeconfig)
            .await
            .map_err(|e| e.to_string())?;
        if deleted.existed {
            step.done();
        } else {
            step.done_with("no such cluster, nothing to do");
        }
        Ok(())
    }
}

/// `kubetest2-tester-<name>` on PATH.
fn find_tester(name: &str) -> Result<PathBuf, String> {
    let binary = format!("kubetest2-tester-{name}");
    find_on_path(&binary)
        .ok_or_else(|| format!("unable to find tester {name}: {binary} is not on PATH"))
}

fn find_on_path(binary: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The `kindred` executable node images pack as their agent: next to this one, else on PATH.
fn kindred_binary() -> Result<PathBuf, String> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("kindred")))
        .filter(|p| p.is_file());
    sibling.or_else(|| find_on_path("kindred")).ok_or_else(|| {
        "building a node image needs the kindred executable (it becomes the in-cluster agent); \
         put it next to kubetest2-kindred or on PATH"
            .to_string()
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_look_like_uuids_and_differ() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn junit_runner_records_each_step() {
        let j = Junit::default();
        j.wrap("Up", async { Ok(()) }).await.unwrap();
        let err = j
            .wrap("Test", async { Err("tester <x> failed".to_string()) })
            .await;
        assert!(err.is_err());
        let xml = j.xml();
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<testcase name=\"Up\" classname=\"kubetest2\""));
        assert!(
            xml.contains("<failure message=\"tester &lt;x&gt; failed\">"),
            "{xml}"
        );
    }

    #[test]
    fn the_default_config_is_one_control_plane_and_two_workers() {
        let c = config::parse(DEFAULT_CONFIG, "test")
            .unwrap()
            .with_defaults();
        assert_eq!(c.nodes.len(), 3);
        c.validate().unwrap();
    }
}
