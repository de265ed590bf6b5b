//! Docker in Docker: the CI image (`kindred build ci-image`, built by hack/test.sh) runs a
//! Docker daemon of its own inside a container on the host's daemon, and kindred creates a
//! cluster inside it, as a CI job would. The container sits on a network with a small MTU (as
//! in many CI pods) and gets no --privileged where the host refuses it (the restricted
//! profile, one level down).
//!
//! 1. A job creates a 1-node cluster, checks the MTU made it down to the node, runs a pod,
//!    exports logs into the artifacts directory; the container exits 0, the entrypoint having
//!    deleted the cluster, and nothing is left on the host.
//!    Its output, not a terminal, is plain timestamped lines without escape codes.
//! 2. A job is stopped (SIGTERM, as when its pod is deleted) while it creates a cluster: the
//!    entrypoint passes the signal on, kindred deletes the half-made cluster, the container
//!    exits well before Docker would kill it.
//!
//! The Kubernetes-in-Docker-in-Kubernetes variant (the documented pod manifest on an outer
//! kindred cluster) is hack/e2e-kindink.sh: too slow for CI's budget.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kindred::provider::{ContainerSpec, Docker, NodeSecurity, Provider};
use kindred_e2e::{docker, node_image, require_image, run, text, E2E_LABEL};

const NETWORK: &str = "kindred-e2e-small-mtu";
const MTU: &str = "1400";

fn ci_image() -> String {
    format!("kindred/ci:v{}", env!("CARGO_PKG_VERSION"))
}

/// The job of scenario 1, as a CI script would write it.
const JOB: &str = r#"set -eux
kindred create cluster --wait 3m
kubectl get nodes -o wide
test "$(docker network inspect kindred -f '{{index .Options "com.docker.network.driver.mtu"}}')" = 1400
test "$(docker exec kindred-control-plane cat /sys/class/net/eth0/mtu)" = 1400
kubectl run hello --image=registry.k8s.io/pause:3.10.1 --image-pull-policy=Never --restart=Never
kubectl wait --for=condition=Ready pod/hello --timeout=120s
kindred export logs "$KINDRED_ARTIFACTS/logs"
"#;

/// A snapshot of what the host's daemon holds, to show a job left nothing behind.
fn host_objects() -> String {
    let mut all = String::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["volume", "ls", "-q"][..],
        &["network", "ls", "--format", "{{.Name}}"][..],
    ] {
        let out = run("docker", args, None);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        all.push_str(&lines.join("\n"));
        all.push('\n');
    }
    all
}

fn job_container(name: &str, work: &Path, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: ci_image(),
        labels: HashMap::from([(E2E_LABEL.to_string(), "nested".to_string())]),
        env: vec!["KINDRED_ARTIFACTS=/artifacts".into()],
        cmd: Some(command.iter().map(|s| s.to_string()).collect()),
        binds: vec![
            format!("{}:/kindred/images:ro", work.join("images").display()),
            format!("{}:/artifacts", work.join("artifacts").display()),
        ],
        network: Some(NETWORK.into()),
        // What kindred gives its nodes: --privileged, or the restricted profile where the
        // host refuses it.
        security: Some(NodeSecurity::Privileged),
        ..Default::default()
    }
}

async fn ensure_small_mtu_network(docker: &Docker) {
    let _ = docker.client().remove_network(NETWORK).await;
    let req = bollard::models::NetworkCreateRequest {
        name: NETWORK.into(),
        driver: Some("bridge".into()),
        options: Some(HashMap::from([(
            "com.docker.network.driver.mtu".to_string(),
            MTU.to_string(),
        )])),
        labels: Some(HashMap::from([(
            E2E_LABEL.to_string(),
            "nested".to_string(),
        )])),
        ..Default::default()
    };
    docker
        .client()
        .create_network(req)
        .await
        .expect("create the small-MTU network");
}

/// `[HH:MM:SS] ...`
fn is_timestamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 10
        && b[0] == b'['
        && b[9] == b']'
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit())
        && b[3] == b':'
        && b[6] == b':'
}

/// Polls the container's output until it contains `needle`.
async fn wait_for_output(docker: &Docker, name: &str, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let logs = docker.logs(name).await.unwrap_or_default();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            started.elapsed() < limit,
            "{name} never printed {needle:?} within {limit:?}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_inside_the_ci_image() {
    let docker = docker().await;
    require_image(&docker, &ci_image()).await;
    require_image(&docker, &node_image()).await;
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(work.path().join("images")).unwrap();
    std::fs::create_dir_all(work.path().join("artifacts")).unwrap();
    // The job's node image, handed over as an archive (a CI job has no registry here).
    let archive = work.path().join("images/node.tar");
    let save = run(
        "docker",
        &["save", "-o", archive.to_str().unwrap(), &node_image()],
        None,
    );
    assert!(save.status.success(), "docker save: {}", text(&save));

    let before = host_objects();
    ensure_small_mtu_network(&docker).await;
    let names = ["kindred-e2e-ci-job", "kindred-e2e-ci-stopped"];
    let result = std::panic::AssertUnwindSafe(scenarios(&docker, work.path(), names));
    let outcome = futures_util::FutureExt::catch_unwind(result).await;
    for name in names {
        let _ = docker.remove_container(name).await;
    }
    let _ = docker.client().remove_network(NETWORK).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(
        host_objects(),
        before,
        "the jobs left containers, volumes or networks on the host"
    );
}

async fn scenarios(docker: &Docker, work: &Path, names: [&str; 2]) {
    // 1. A whole job.
    let spec = job_container(names[0], work, &["bash", "-c", JOB]);
    let security = docker.run(&spec).await.expect("start the CI container");
    eprintln!("CI container started with the {:?} profile", security);
    let code = tokio::time::timeout(Duration::from_secs(600), docker.wait(names[0]))
        .await
        .expect("the job finished within 10 minutes")
        .expect("wait for the job");
    let logs = docker.logs(names[0]).await.unwrap_or_default();
    assert_eq!(code, 0, "the job failed:\n{logs}");
    for expected in [
        &format!("ci: MTU {MTU} on eth0: nested networks use {MTU}")[..],
        "ci: iptables:",
        "Loading /kindred/images/node.tar",
        "pod/hello condition met",
        "ci: deleting cluster kindred",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
    // Not a terminal: plain lines, each step timestamped, no colour or cursor codes.
    assert!(
        !logs.contains('\x1b'),
        "escape codes in non-TTY output:\n{logs}"
    );
    let steps: Vec<&str> = logs.lines().filter(|l| l.contains(" ✓ ")).collect();
    assert!(steps.len() >= 5, "too few step lines:\n{logs}");
    for line in steps {
        assert!(
            is_timestamped(line),
            "step line without a timestamp: {line}"
        );
    }
    let artifacts = work.join("artifacts");
    assert!(artifacts.join("dockerd.log").is_file(), "no dockerd.log");
    assert!(
        artifacts
            .join("logs/kindred-control-plane/kubelet.log")
            .is_file()
            || artifacts.join("logs/kindred-control-plane").is_dir(),
        "no node logs exported"
    );
    docker.remove_container(names[0]).await.unwrap();

    // 2. Stopped in the middle of creating a cluster.
    let spec = job_container(names[1], work, &["kindred", "create", "cluster"]);
    docker.run(&spec).await.expect("start the CI container");
    wait_for_output(
        docker,
        names[1],
        "Starting the control plane",
        Duration::from_secs(180),
    )
    .await;
    let stop = Instant::now();
    // Like the kubelet deleting a pod: SIGTERM, then SIGKILL after the grace period.
    let out = run("docker", &["stop", "--time", "90", names[1]], None);
    assert!(out.status.success(), "docker stop: {}", text(&out));
    let took = stop.elapsed();
    let logs = docker.logs(names[1]).await.unwrap_or_default();
    let state = docker
        .client()
        .inspect_container(names[1], None)
        .await
        .expect("inspect the stopped job");
    let code = state.state.and_then(|s| s.exit_code).unwrap_or(-1);
    assert_ne!(code, 137, "the job had to be killed ({took:?}):\n{logs}");
    assert!(
        took < Duration::from_secs(80),
        "stopping took {took:?}:\n{logs}"
    );
    for expected in [
        "SIGTERM received: passing it on",
        "Interrupted by SIGTERM; deleting the partly created cluster kindred",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
    eprintln!("stopped mid-create and cleaned up in {took:.1?} (exit status {code})");
}
