//! `kubetest2-kindred` end to end, the way kubetest2 drives a deployer: `--up` and `--test`
//! with a fake tester on PATH (a script that checks the kubeconfig it is handed reaches the
//! cluster, using the node image's kubectl), then `--test --down` in a second invocation with
//! a tester that fails: the failure is reported, and the logs are exported and the cluster
//! deleted anyway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kindred_e2e::{containers_of, text, write_executable};

const CLUSTER: &str = "conf-e2e-kubetest2";

/// Records what it was given, then checks the cluster through $KUBECONFIG.
const FAKE_TESTER: &str = r#"#!/bin/sh
set -eu
if [ "${1:-}" = "--help" ]; then echo "fake tester: --expect-nodes N [--fail]"; exit 0; fi
echo "$*" > "$ARTIFACTS/tester-args.txt"
env | grep -E '^(KUBECONFIG|ARTIFACTS|KUBETEST2_RUN_DIR|KUBETEST2_RUN_ID)=' | sort > "$ARTIFACTS/tester-env.txt"
echo "$PATH" > "$ARTIFACTS/tester-path.txt"
[ "${1:-}" = "--expect-nodes" ] || { echo "usage: --expect-nodes N" >&2; exit 2; }
kubectl get nodes -o name > "$ARTIFACTS/nodes.txt"
[ "$(wc -l < "$ARTIFACTS/nodes.txt")" -eq "$2" ] || { echo "expected $2 nodes" >&2; exit 4; }
kubectl get --raw /readyz > "$ARTIFACTS/readyz.txt"
if [ "${3:-}" = "--fail" ]; then echo "failing as asked" >&2; exit 3; fi
"#;

struct Ctx {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Ctx {
    /// Runs the deployer from the temporary directory with the fake tester and kubectl first
    /// on PATH and no inherited kubetest2 variables.
    fn deployer(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubetest2-kindred"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env_remove("ARTIFACTS")
            .env_remove("KUBETEST2_RUN_DIR")
            .env_remove("PROW_JOB_ID")
            // --up must not touch the user's kubeconfig.
            .env("KUBECONFIG", self.dir.path().join("unused-kubeconfig"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run kubetest2-kindred")
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn delete_cluster() {
    let _ = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["delete", "cluster", "--name", CLUSTER])
        .env("KUBECONFIG", "/dev/null")
        .output();
}

#[test]
fn help_and_bad_input() {
    let ctx = Ctx {
        dir: tempfile::tempdir().unwrap(),
        bin: PathBuf::from("/nonexistent"),
    };
    let help = ctx.deployer(&["--help"], &[]);
    assert!(help.status.success(), "{}", text(&help));
    let t = text(&help);
    for flag in [
        "--up",
        "--down",
        "--build",
        "--test",
        "--artifacts",
        "--kubeconfig",
        "--dump-cluster-logs",
    ] {
        assert!(t.contains(flag), "{flag} in\n{t}");
    }
    let bad = ctx.deployer(&["--up", "--bogus"], &[]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("unknown flag: --bogus"),
        "{}",
        text(&bad)
    );
    // An unknown tester fails before any cluster is created.
    let no_tester = ctx.deployer(
        &[
            "--up",
            "--test=no-such",
            "--cluster-name",
            "conf-e2e-never",
            "--run-id=x",
        ],
        &[],
    );
    assert!(!no_tester.status.success());
    assert!(
        text(&no_tester).contains("unable to find tester no-such"),
        "{}",
        text(&no_tester)
    );
    assert_eq!(containers_of("conf-e2e-never"), "");
}

#[test]
fn up_test_down_with_a_fake_tester() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The node image's kubectl, for the fake tester.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(kindred_e2e::image::host_kubectl(&bin));
    write_executable(&bin.join("kubetest2-tester-fake"), FAKE_TESTER.as_bytes());
    let ctx = Ctx { dir, bin };
    kindred_e2e::cluster::cleaned_up(&[CLUSTER], delete_cluster, || {}, || exercise(&ctx));
}

fn exercise(ctx: &Ctx) {
    let root = ctx.dir.path();
    // 1. Up and test; the run directory under the artifacts directory.
    let artifacts = root.join("artifacts");
    let image = kindred_e2e::node_image();
    let up = ctx.deployer(
        &[
            "--up",
            "--image-name",
            &image,
            "--test=fake",
            "--cluster-name",
            CLUSTER,
            "--artifacts",
            artifacts.to_str().unwrap(),
            "--rundir-in-artifacts",
            "--run-id=up-and-test",
            "--",
            "--expect-nodes",
            "3",
        ],
        &[],
    );
    assert!(up.status.success(), "up + test failed:\n{}", text(&up));
    let run_dir = artifacts.join("_rundir/up-and-test");
    let nodes = read(&run_dir.join("nodes.txt"));
    for n in ["control-plane", "worker", "worker2"] {
        assert!(
            nodes.contains(&format!("node/{CLUSTER}-{n}\n")),
            "{n} in {nodes}"
        );
    }
    assert_eq!(read(&run_dir.join("readyz.txt")), "ok");
    assert_eq!(read(&run_dir.join("tester-args.txt")), "--expect-nodes 3\n");
    let env = read(&run_dir.join("tester-env.txt"));
    let rd = run_dir.display();
    for want in [
        format!("ARTIFACTS={rd}\n"),
        format!("KUBECONFIG={rd}/kubeconfig\n"),
        format!("KUBETEST2_RUN_DIR={rd}\n"),
        "KUBETEST2_RUN_ID=up-and-test\n".to_string(),
    ] {
        assert!(env.contains(&want), "{want} in {env}");
    }
    assert!(read(&run_dir.join("tester-path.txt")).starts_with(&format!("{rd}:")));
    let junit = read(&run_dir.join("junit_runner.xml"));
    assert!(junit.contains("tests=\"2\" failures=\"0\""), "{junit}");
    assert!(
        junit.contains("name=\"Up\"") && junit.contains("name=\"Test\""),
        "{junit}"
    );
    let metadata: serde_json::Value =
        serde_json::from_str(&read(&run_dir.join("metadata.json"))).unwrap();
    assert!(metadata["deployer-version"]
        .as_str()
        .unwrap()
        .starts_with("kindred "));
    assert!(!root.join("unused-kubeconfig").exists());
    assert_eq!(kindred_e2e::node_containers_of(CLUSTER).lines().count(), 3);

    // 2. Test again (failing) and down, in a new invocation: the run directory from
    // $KUBETEST2_RUN_DIR, the kubeconfig written again for the tester.
    let runs = root.join("runs");
    let down = ctx.deployer(
        &[
            "--test",
            "fake",
            "--down",
            "--cluster-name",
            CLUSTER,
            "--run-id",
            "fail-then-down",
            "--",
            "--expect-nodes",
            "3",
            "--fail",
        ],
        &[("KUBETEST2_RUN_DIR", runs.to_str().unwrap())],
    );
    assert!(!down.status.success(), "a failing tester must fail the run");
    assert!(
        text(&down).contains("kubetest2-tester-fake failed"),
        "{}",
        text(&down)
    );
    let run_dir = runs.join("fail-then-down");
    assert_eq!(read(&run_dir.join("readyz.txt")), "ok");
    let junit = read(&run_dir.join("junit_runner.xml"));
    assert!(junit.contains("tests=\"2\" failures=\"1\""), "{junit}");
    assert!(junit.contains("name=\"Down\""), "{junit}");
    // Logs were exported before the cluster went away.
    let logs = run_dir.join("logs");
    assert!(logs
        .join(format!("{CLUSTER}-control-plane/kubelet.log"))
        .is_file());
    assert!(logs
        .join(format!("{CLUSTER}-worker2/journal.log"))
        .is_file());
    assert_eq!(containers_of(CLUSTER), "");
    // The cluster's entry is gone from the kubeconfig the deployer wrote.
    let kubeconfig = std::fs::read_to_string(run_dir.join("kubeconfig")).unwrap_or_default();
    assert!(
        !kubeconfig.contains(&format!("kindred-{CLUSTER}")),
        "{kubeconfig}"
    );
}
