//! `kindred stop cluster` stops a node within a few seconds and cleanly (issue 13), end to end
//! against the real Docker daemon, even with a workload that ignores SIGTERM; `start cluster`
//! then brings it back.
//!
//! The node runs systemd, which stops each pod container's scope with SIGTERM and then waits
//! 90 s for what is left; Docker's stop gives up after 30 s and SIGKILLs the node (exit 137).
//! Any process that ignores SIGTERM in a pod (a `sleep` as a container's PID 1 does) used to
//! make every stop take 30 s. The stubborn process here is started in a scope of the pods'
//! slice, which is what a pod container is to systemd; the node's preloaded images have no
//! shell to run such a process in a real pod.

use std::time::{Duration, Instant};

use kindred_e2e::{docker_out, node_kubectl, run, text};

const NAME: &str = "stop-e2e-stubborn";
/// A clean stop takes ~5 s here (3 s of pod grace, then systemd's halt); Docker's own timeout,
/// the old behaviour, is 30 s.
const STOP_BOUND: Duration = Duration::from_secs(15);

fn kindred(args: &[&str]) -> std::process::Output {
    run(env!("CARGO_BIN_EXE_kindred"), args, None)
}

#[test]
fn a_node_with_a_pod_that_ignores_sigterm_stops_in_seconds_and_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let delete = || kindred_e2e::cluster::delete(env!("CARGO_BIN_EXE_kindred"), NAME, kubeconfig);
    delete();
    let result = std::panic::catch_unwind(|| exercise(kubeconfig));
    let deleted = delete();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert_eq!(kindred_e2e::containers_of(NAME), "");
}

fn exercise(kubeconfig: &str) {
    let node = format!("{NAME}-control-plane");
    let out = kindred(&[
        "create",
        "cluster",
        "--name",
        NAME,
        "--wait",
        "3m",
        "--kubeconfig",
        kubeconfig,
    ]);
    assert!(out.status.success(), "create:\n{}", text(&out));

    docker_out(&[
        "exec",
        "-d",
        &node,
        "systemd-run",
        "--scope",
        "--unit=e2e-stubborn",
        "--slice=kubepods-besteffort.slice",
        "sh",
        "-c",
        "trap '' TERM; exec sleep infinity",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while run(
        "docker",
        &[
            "exec",
            &node,
            "systemctl",
            "is-active",
            "e2e-stubborn.scope",
        ],
        None,
    )
    .status
    .code()
        != Some(0)
    {
        assert!(
            Instant::now() < deadline,
            "the stubborn scope never started"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let started = Instant::now();
    let out = kindred(&["stop", "cluster", "--name", NAME]);
    let took = started.elapsed();
    assert!(out.status.success(), "stop:\n{}", text(&out));
    eprintln!("stop cluster took {took:?}");
    let state = docker_out(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &node,
    ]);
    let state = state.trim();
    // systemd halting in a container exits 130; 137 is Docker's SIGKILL after its timeout.
    assert_eq!(state, "exited 130", "the node did not halt by itself");
    assert!(took < STOP_BOUND, "stop cluster took {took:?}");

    let out = kindred(&["start", "cluster", "--name", NAME, "--wait", "3m"]);
    assert!(out.status.success(), "start:\n{}", text(&out));
    let out = node_kubectl(
        &node,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    );
    assert_eq!(text(&out).trim(), "True", "node not Ready after start");
}
