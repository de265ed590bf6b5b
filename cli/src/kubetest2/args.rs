//! kubetest2's command line, parsed the way kubetest2's Go code (pflag) does: the common flags
//! every deployer has, then this deployer's own, everything after the first bare `--` handed to
//! the tester untouched. Flags are `--name value` or `--name=value`; booleans also take
//! `--name=true|false`.

use std::path::{Path, PathBuf};

/// Everything one invocation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    // kubetest2's common flags.
    pub help: bool,
    pub build: bool,
    pub up: bool,
    pub down: bool,
    /// The tester: `kubetest2-tester-<test>` on PATH.
    pub test: Option<String>,
    pub skip_test_junit_report: bool,
    pub run_id: String,
    pub rundir_in_artifacts: bool,
    /// Absolute: `--artifacts`, else `$ARTIFACTS`, else `./_artifacts`.
    pub artifacts: PathBuf,
    /// `--rundir` as given (absolute), if given.
    pub rundir: Option<PathBuf>,
    // This deployer's flags.
    pub cluster_name: String,
    pub config: Option<PathBuf>,
    pub image_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub kube_version: Option<String>,
    pub kube_root: Option<PathBuf>,
    pub wait: String,
    pub dump_cluster_logs: bool,
    pub verbosity: u32,
    /// After the first bare `--`.
    pub tester_args: Vec<String>,
}

/// The cluster `--up` creates unless `--cluster-name` says otherwise.
pub const DEFAULT_CLUSTER_NAME: &str = "kindred-kubetest2";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

/// (flag, kind, help) of every flag, kubetest2's first.
const FLAGS: &[(&str, Kind, &str)] = &[
    ("help", Kind::Bool, "display help"),
    (
        "build",
        Kind::Bool,
        "build a node image (`kindred build node-image`)",
    ),
    ("up", Kind::Bool, "create the test cluster"),
    (
        "down",
        Kind::Bool,
        "delete the test cluster (after dumping its logs, see --dump-cluster-logs)",
    ),
    (
        "test",
        Kind::Value,
        "tester to run (kubetest2-tester-<test> on PATH); unset: no tests",
    ),
    (
        "skip-test-junit-report",
        Kind::Bool,
        "do not record the test step in junit_runner.xml",
    ),
    (
        "run-id",
        Kind::Value,
        "unique identifier of this run [default: $PROW_JOB_ID, else a new one]",
    ),
    (
        "rundir-in-artifacts",
        Kind::Bool,
        "put the run directory under the artifacts directory",
    ),
    (
        "artifacts",
        Kind::Value,
        "top-level artifacts directory [default: ${ARTIFACTS:-./_artifacts}]",
    ),
    (
        "rundir",
        Kind::Value,
        "run directory parent [default: ${KUBETEST2_RUN_DIR:-./_rundir}]",
    ),
    (
        "cluster-name",
        Kind::Value,
        "the kindred cluster name [default: kindred-kubetest2]",
    ),
    (
        "config",
        Kind::Value,
        "cluster config file [default: 1 control plane + 2 workers]",
    ),
    (
        "image-name",
        Kind::Value,
        "node image for --build and --up [default: kindred/node:<version>]",
    ),
    (
        "kubeconfig",
        Kind::Value,
        "kubeconfig to write and hand to the tester [default: <run dir>/kubeconfig]",
    ),
    (
        "kube-version",
        Kind::Value,
        "Kubernetes release --build builds from Go modules [default: kindred's]",
    ),
    (
        "kube-root",
        Kind::Value,
        "Kubernetes source checkout --build builds instead of a release",
    ),
    (
        "wait",
        Kind::Value,
        "how long --up waits for every node to be Ready [default: 5m]",
    ),
    (
        "dump-cluster-logs",
        Kind::Bool,
        "export the cluster's logs into <run dir>/logs before --down [default: true]",
    ),
    (
        "verbosity",
        Kind::Value,
        "0: steps only; 1 or more: every command kindred runs",
    ),
];

/// Splits at the first bare `--`: (deployer args, tester args).
pub fn split_args(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

fn parse_bool(flag: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "invalid argument {v:?} for --{flag}: not a boolean"
        )),
    }
}

/// An absolute path, relative ones taken from `cwd`.
fn absolute(p: &str, cwd: &Path) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        cwd.join(p)
    }
}

/// Parses the command line. `env` reads the environment (ARTIFACTS, PROW_JOB_ID,
/// KUBETEST2_RUN_DIR); `new_run_id` makes a run ID when none is given.
pub fn parse(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    new_run_id: &dyn Fn() -> String,
) -> Result<Args, String> {
    let (mine, tester) = split_args(args);
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut i = 0;
    while i < mine.len() {
        let arg = &mine[i];
        i += 1;
        if arg == "-h" {
            values.push(("help", "true".into()));
            continue;
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument {arg:?}: flags start with --, tester arguments go after a bare --"
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(&(flag, kind, _)) = FLAGS.iter().find(|(f, _, _)| *f == name) else {
            return Err(format!("unknown flag: --{name}"));
        };
        let value = match (kind, inline) {
            (Kind::Bool, Some(v)) => parse_bool(flag, &v)?.to_string(),
            (Kind::Bool, None) => "true".into(),
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => {
                let v = mine
                    .get(i)
                    .ok_or_else(|| format!("flag needs an argument: --{flag}"))?;
                i += 1;
                v.clone()
            }
        };
        values.push((flag, value));
    }
    let get = |f: &str| {
        values
            .iter()
            .rev()
            .find(|(n, _)| *n == f)
            .map(|(_, v)| v.clone())
    };
    let flag = |f: &str| get(f).map(|v| v == "true");
    let verbosity = match get("verbosity") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("invalid argument {v:?} for --verbosity: not a number"))?,
        None => 0,
    };
    let artifacts = match get("artifacts").or_else(|| env("ARTIFACTS")) {
        Some(a) => absolute(&a, cwd),
        None => cwd.join("_artifacts"),
    };
    Ok(Args {
        help: flag("help").unwrap_or(false),
        build: flag("build").unwrap_or(false),
        up: flag("up").unwrap_or(false),
        down: flag("down").unwrap_or(false),
        test: get("test").filter(|t| !t.is_empty()),
        skip_test_junit_report: flag("skip-test-junit-report").unwrap_or(false),
        run_id: get("run-id")
            .or_else(|| env("PROW_JOB_ID").filter(|v| !v.is_empty()))
            .unwrap_or_else(new_run_id),
        rundir_in_artifacts: flag("rundir-in-artifacts").unwrap_or(false),
        artifacts,
        rundir: get("rundir").map(|r| absolute(&r, cwd)),
        cluster_name: get("cluster-name").unwrap_or_else(|| DEFAULT_CLUSTER_NAME.into()),
        config: get("config").map(|c| absolute(&c, cwd)),
        image_name: get("image-name").filter(|v| !v.is_empty()),
        kubeconfig: get("kubeconfig").map(|k| absolute(&k, cwd)),
        kube_version: get("kube-version").filter(|v| !v.is_empty()),
        kube_root: get("kube-root").map(|k| absolute(&k, cwd)),
        wait: get("wait").unwrap_or_else(|| "5m".into()),
        dump_cluster_logs: flag("dump-cluster-logs").unwrap_or(true),
        verbosity,
        tester_args: tester.to_vec(),
    })
}

impl Args {
    /// kubetest2's run directory: `<rundir or $KUBETEST2_RUN_DIR or ./_rundir>/<run id>`, or
    /// with `--rundir-in-artifacts`, `<artifacts>/<rundir or $KUBETEST2_RUN_DIR or _rundir>/<run id>`.
    pub fn run_dir(&self, env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> PathBuf {
        if self.rundir_in_artifacts {
            let sub = match &self.rundir {
                Some(r) => r.clone(),
                None => PathBuf::from(env("KUBETEST2_RUN_DIR").unwrap_or_else(|| "_rundir".into())),
            };
            // Only the relative part goes under the artifacts directory.
            let sub = sub.strip_prefix("/").map(Path::to_path_buf).unwrap_or(sub);
            return self.artifacts.join(sub).join(&self.run_id);
        }
        let base = match &self.rundir {
            Some(r) => r.clone(),
            None => match env("KUBETEST2_RUN_DIR") {
                Some(d) => absolute(&d, cwd),
                None => cwd.join("_rundir"),
            },
        };
        base.join(&self.run_id)
    }

    /// Where the kubeconfig goes and what the tester gets as KUBECONFIG.
    pub fn kubeconfig_path(&self, run_dir: &Path) -> PathBuf {
        self.kubeconfig
            .clone()
            .unwrap_or_else(|| run_dir.join("kubeconfig"))
    }
}

/// The tester's environment on top of ours, as kubetest2 sets it.
pub fn tester_env(
    run_dir: &Path,
    run_id: &str,
    kubeconfig: Option<&Path>,
    path: Option<&str>,
) -> Vec<(String, String)> {
    let run = run_dir.display().to_string();
    let mut env = vec![
        (
            "PATH".to_string(),
            match path {
                Some(p) if !p.is_empty() => format!("{run}:{p}"),
                _ => run.clone(),
            },
        ),
        ("ARTIFACTS".to_string(), run.clone()),
        ("KUBETEST2_RUN_DIR".to_string(), run),
        ("KUBETEST2_RUN_ID".to_string(), run_id.to_string()),
    ];
    if let Some(k) = kubeconfig {
        env.push(("KUBECONFIG".to_string(), k.display().to_string()));
    }
    env
}

/// The usage text (`--help`, or no arguments at all).
pub fn usage() -> String {
    let mut out = String::from(
        "Usage:\n  kubetest2 kindred [Flags] [DeployerFlags] -- [TesterArgs]\n  kubetest2-kindred [Flags] [DeployerFlags] -- [TesterArgs]\n\nFlags:\n",
    );
    for (i, (name, kind, help)) in FLAGS.iter().enumerate() {
        if i == 10 {
            out.push_str("\nDeployerFlags(kindred):\n");
        }
        let arg = if *kind == Kind::Value { " string" } else { "" };
        out.push_str(&format!("      --{name}{arg}\n          {help}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_plain(a: &[&str]) -> Result<Args, String> {
        parse(&strings(a), &no_env, Path::new("/work"), &|| "rid".into())
    }

    #[test]
    fn common_and_deployer_flags_and_tester_args() {
        let a = parse_plain(&[
            "--up",
            "--down=true",
            "--build=false",
            "--test=ginkgo",
            "--cluster-name",
            "conf-x",
            "--kubeconfig=kc",
            "--artifacts",
            "/out",
            "--",
            "--focus-regex=x",
            "--",
            "y",
        ])
        .unwrap();
        assert!(a.up && a.down && !a.build && !a.help);
        assert_eq!(a.test.as_deref(), Some("ginkgo"));
        assert_eq!(a.cluster_name, "conf-x");
        assert_eq!(a.kubeconfig, Some(PathBuf::from("/work/kc")));
        assert_eq!(a.artifacts, PathBuf::from("/out"));
        assert_eq!(a.tester_args, strings(&["--focus-regex=x", "--", "y"]));
        assert_eq!(a.run_id, "rid");
        assert!(a.dump_cluster_logs);
        assert_eq!(a.wait, "5m");
    }

    #[test]
    fn defaults_come_from_the_environment() {
        let env = |k: &str| match k {
            "ARTIFACTS" => Some("arts".to_string()),
            "PROW_JOB_ID" => Some("prow-1".to_string()),
            "KUBETEST2_RUN_DIR" => Some("/runs".to_string()),
            _ => None,
        };
        let a = parse(&[], &env, Path::new("/work"), &|| "new".into()).unwrap();
        assert_eq!(a.artifacts, PathBuf::from("/work/arts"));
        assert_eq!(a.run_id, "prow-1");
        assert_eq!(a.cluster_name, DEFAULT_CLUSTER_NAME);
        assert_eq!(
            a.run_dir(&env, Path::new("/work")),
            PathBuf::from("/runs/prow-1")
        );
        let b = parse_plain(&[]).unwrap();
        assert_eq!(b.artifacts, PathBuf::from("/work/_artifacts"));
        assert_eq!(
            b.run_dir(&no_env, Path::new("/work")),
            PathBuf::from("/work/_rundir/rid")
        );
        assert_eq!(
            b.kubeconfig_path(Path::new("/r")),
            PathBuf::from("/r/kubeconfig")
        );
    }

    #[test]
    fn rundir_in_artifacts() {
        let a = parse_plain(&["--rundir-in-artifacts", "--artifacts=/a", "--run-id=7"]).unwrap();
        assert_eq!(
            a.run_dir(&no_env, Path::new("/work")),
            PathBuf::from("/a/_rundir/7")
        );
        let b = parse_plain(&[
            "--rundir-in-artifacts",
            "--artifacts=/a",
            "--run-id=7",
            "--rundir=/r",
        ])
        .unwrap();
        assert_eq!(
            b.run_dir(&no_env, Path::new("/work")),
            PathBuf::from("/a/r/7")
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(parse_plain(&["--nope"])
            .unwrap_err()
            .contains("unknown flag"));
        assert!(parse_plain(&["--up=maybe"])
            .unwrap_err()
            .contains("not a boolean"));
        assert!(parse_plain(&["--test"])
            .unwrap_err()
            .contains("needs an argument"));
        assert!(parse_plain(&["up"]).unwrap_err().contains("unexpected"));
        assert!(parse_plain(&["--verbosity=x"]).is_err());
        assert!(parse_plain(&["-h"]).unwrap().help);
        assert!(
            !parse_plain(&["--dump-cluster-logs=false"])
                .unwrap()
                .dump_cluster_logs
        );
    }

    #[test]
    fn tester_environment() {
        let env = tester_env(
            Path::new("/run/1"),
            "1",
            Some(Path::new("/run/1/kubeconfig")),
            Some("/usr/bin"),
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/run/1:/usr/bin"));
        assert_eq!(get("ARTIFACTS"), Some("/run/1"));
        assert_eq!(get("KUBETEST2_RUN_DIR"), Some("/run/1"));
        assert_eq!(get("KUBETEST2_RUN_ID"), Some("1"));
        assert_eq!(get("KUBECONFIG"), Some("/run/1/kubeconfig"));
        assert!(usage().contains("--dump-cluster-logs"));
        assert!(usage().contains("DeployerFlags(kindred)"));
    }
}
