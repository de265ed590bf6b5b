//! `kindred create node`, `restart node` and `delete node` end to end, on a real cluster: a
//! one-node cluster gets a worker that becomes Ready and runs a pod pinned to it; the worker
//! is restarted, Ready again and runs the pod again; deleted, its Node, container and volume
//! are gone; deleting the control plane, an unknown node or adding a control plane is refused
//! with the reason; an add interrupted by SIGTERM removes the new container and volume and
//! nothing else; a stopped worker is deleted without a drain; the control plane is restarted
//! and Ready again; the cluster is deleted although a pod cgroup of its node is frozen.
//! The node lifecycle agent, as a cloud: a worker stopped behind kindred's back gets the
//! shutdown taint, which goes when it runs and is Ready again; a worker removed with
//! `docker rm -f` loses its Node within 30 s.

use std::time::{Duration, Instant};

use kindred_e2e::{node_kubectl, run, text};

const NAME: &str = "node-e2e";

fn cp() -> String {
    format!("{NAME}-control-plane")
}

fn worker() -> String {
    format!("{NAME}-worker")
}

fn kindred(args: &[&str]) -> std::process::Output {
    run(env!("CARGO_BIN_EXE_kindred"), args, None)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let out = node_kubectl(&cp(), args, stdin);
    assert!(out.status.success(), "kubectl {args:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, timeout: Duration, check: impl Fn() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(last) => assert!(
                start.elapsed() < timeout,
                "{what}: not done after {timeout:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The cluster's volumes, as the docker CLI lists them.
fn volumes_of(cluster: &str) -> Vec<String> {
    let out = run(
        "docker",
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=io.kindred.cluster={cluster}"),
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// SIGTERM once the new container exists: it and its volume go, the cluster stays as it was.
fn interrupted_add_removes_only_the_new_node() {
    let volumes = volumes_of(NAME);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["create", "node", "--name", NAME])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the new container exists", Duration::from_secs(60), || {
        let names = kindred_e2e::containers_of(NAME);
        names.contains(&worker()).then_some(()).ok_or(names)
    });
    let kill = run("kill", &["-TERM", &child.id().to_string()], None);
    assert!(kill.status.success(), "{}", text(&kill));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "create node ignores SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("interrupted by SIGTERM"),
        "{}",
        text(&out)
    );
    assert_eq!(kindred_e2e::node_containers_of(NAME), cp());
    assert_eq!(volumes_of(NAME), volumes);
    assert_eq!(ready(&cp()), "True");
}

fn ready(node: &str) -> String {
    kubectl(
        &[
            "get",
            "node",
            node,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ],
        None,
    )
}

#[test]
fn nodes_are_added_restarted_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let cleanup = || {
        delete_cluster(kubeconfig);
    };
    let image = kindred_e2e::node_image();
    kindred_e2e::cluster::cleaned_up(
        &[NAME],
        cleanup,
        || {},
        || {
            let out = kindred(&[
                "create",
                "cluster",
                "--name",
                NAME,
                "--image",
                &image,
                "--kubeconfig",
                kubeconfig,
                "--wait",
                "3m",
            ]);
            assert!(out.status.success(), "create cluster:\n{}", text(&out));
            exercise();
            deleted_with_a_frozen_pod_cgroup(kubeconfig);
        },
    );
}

/// A pod cgroup left frozen (runc freezes one while it changes its device rules on cgroup v1,
/// and a runc killed then never thaws it) keeps the node's init from exiting after the kill:
/// Docker alone cannot remove the node. `delete cluster` thaws it and removes the node.
fn deleted_with_a_frozen_pod_cgroup(kubeconfig: &str) {
    let frozen = kindred_e2e::node_sh(
        &cp(),
        "for d in /sys/fs/cgroup/freezer/kubepods.slice/*/ /sys/fs/cgroup/kubepods.slice/*/; do \
           if [ -f $d/freezer.state ]; then echo FROZEN > $d/freezer.state; echo $d; break; \
           elif [ -f $d/cgroup.freeze ]; then echo 1 > $d/cgroup.freeze; echo $d; break; fi; \
         done",
    );
    assert!(!frozen.trim().is_empty(), "no pod cgroup to freeze");
    let out = delete_cluster(kubeconfig);
    assert!(
        out.status.success(),
        "delete cluster with {frozen} frozen:\n{}",
        text(&out)
    );
    assert_eq!(kindred_e2e::containers_of(NAME), "", "{}", text(&out));
}

/// `delete cluster` of the test's cluster, verbose (it says what it thawed).
fn delete_cluster(kubeconfig: &str) -> std::process::Output {
    kindred_e2e::cluster::delete(env!("CARGO_BIN_EXE_kindred"), NAME, kubeconfig)
}

fn exercise() {
    // Refusals first: nothing may be left behind by them.
    let out = kindred(&["create", "node", "--name", NAME, "--role", "control-plane"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("only workers"), "{}", text(&out));
    assert_eq!(kindred_e2e::node_containers_of(NAME), cp());

    interrupted_add_removes_only_the_new_node();

    let started = Instant::now();
    let out = kindred(&["create", "node", "--name", NAME]);
    assert!(out.status.success(), "create node:\n{}", text(&out));
    eprintln!("create node took {:.1}s", started.elapsed().as_secs_f64());
    assert!(text(&out).contains(&worker()), "{}", text(&out));
    assert_eq!(ready(&worker()), "True");

    // A pod pinned to the new worker runs there (pause is preloaded in every node image).
    let pod = format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: pinned}}
spec:
  nodeName: {}
  containers:
  - {{name: pause, image: registry.k8s.io/pause:3.10.1, imagePullPolicy: Never}}
",
        worker()
    );
    kubectl(&["apply", "-f", "-"], Some(&pod));
    wait_for("the pinned pod runs", Duration::from_secs(120), || {
        let phase = kubectl(
            &["get", "pod", "pinned", "-o", "jsonpath={.status.phase}"],
            None,
        );
        (phase == "Running").then_some(()).ok_or(phase)
    });

    let container_id = || {
        kubectl(
            &[
                "get",
                "pod",
                "pinned",
                "-o",
                "jsonpath={.status.containerStatuses[0].containerID}",
            ],
            None,
        )
    };
    let before = container_id();
    let started = Instant::now();
    let out = kindred(&["restart", "node", &worker(), "--name", NAME]);
    assert!(out.status.success(), "restart node:\n{}", text(&out));
    eprintln!("restart node took {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(ready(&worker()), "True");
    // The rebooted node works: its kubelet runs the pinned pod again, in a new container.
    wait_for(
        "the pinned pod runs again",
        Duration::from_secs(120),
        || {
            let now = container_id();
            let phase = kubectl(
                &["get", "pod", "pinned", "-o", "jsonpath={.status.phase}"],
                None,
            );
            (phase == "Running" && !now.is_empty() && now != before)
                .then_some(())
                .ok_or(format!("{phase} {now}"))
        },
    );
    eprintln!(
        "the pinned pod ran again {:.1}s after the restart began",
        started.elapsed().as_secs_f64()
    );

    let mounts = run(
        "docker",
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Name}} {{end}}",
            &worker(),
        ],
        None,
    );
    let volumes: Vec<String> = String::from_utf8_lossy(&mounts.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!volumes.is_empty(), "the worker has its /var volume");

    let started = Instant::now();
    let out = kindred(&["delete", "node", &worker(), "--name", NAME]);
    assert!(out.status.success(), "delete node:\n{}", text(&out));
    eprintln!("delete node took {:.1}s", started.elapsed().as_secs_f64());
    let gone = node_kubectl(&cp(), &["get", "node", &worker()], None);
    assert!(
        !gone.status.success() && text(&gone).contains("NotFound"),
        "{}",
        text(&gone)
    );
    assert_eq!(kindred_e2e::node_containers_of(NAME), cp());
    for volume in &volumes {
        let out = run("docker", &["volume", "inspect", volume], None);
        assert!(!out.status.success(), "volume {volume} is left");
    }

    let out = kindred(&["delete", "node", &cp(), "--name", NAME]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("kindred delete cluster --name node-e2e"),
        "{}",
        text(&out)
    );
    let out = kindred(&["delete", "node", "node-e2e-worker9", "--name", NAME]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&cp()), "{}", text(&out));

    // A worker whose container is stopped is removed without waiting on a drain, and the
    // next add takes the freed name again.
    let out = kindred(&["create", "node", "--name", NAME, "--wait", "0"]);
    assert!(out.status.success(), "create node:\n{}", text(&out));
    assert!(text(&out).contains(&worker()), "{}", text(&out));
    let stop = run("docker", &["stop", &worker()], None);
    assert!(stop.status.success(), "{}", text(&stop));
    let started = Instant::now();
    let out = kindred(&["delete", "node", &worker(), "--name", NAME]);
    assert!(
        out.status.success(),
        "delete node (stopped):\n{}",
        text(&out)
    );
    assert!(text(&out).contains("skipped"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(kindred_e2e::node_containers_of(NAME), cp());

    node_lifecycle_follows_the_containers();

    // The control plane reboots too: its API answers and it is Ready again.
    let started = Instant::now();
    let out = kindred(&["restart", "node", &cp(), "--name", NAME]);
    assert!(
        out.status.success(),
        "restart node (control plane):\n{}",
        text(&out)
    );
    eprintln!(
        "restart node of the control plane took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ready(&cp()), "True");
}

fn taint_keys(node: &str) -> String {
    kubectl(
        &["get", "node", node, "-o", "jsonpath={.spec.taints[*].key}"],
        None,
    )
}

/// What a cloud's controller manager does for its machines, done for containers by the
/// cluster's node lifecycle agent.
fn node_lifecycle_follows_the_containers() {
    const SHUTDOWN: &str = "node.cloudprovider.kubernetes.io/shutdown";
    let agent = format!("{NAME}-node-lifecycle");
    assert!(
        kindred_e2e::containers_of(NAME).lines().any(|c| c == agent),
        "no {agent}: {}",
        kindred_e2e::containers_of(NAME)
    );
    let out = kindred(&["create", "node", "--name", NAME]);
    assert!(out.status.success(), "create node:\n{}", text(&out));
    let id = kubectl(
        &[
            "get",
            "node",
            &worker(),
            "-o",
            "jsonpath={.spec.providerID}",
        ],
        None,
    );
    assert_eq!(id, format!("kindred://docker/{NAME}/{}", worker()));

    let stop = run("docker", &["stop", &worker()], None);
    assert!(stop.status.success(), "{}", text(&stop));
    let started = Instant::now();
    wait_for(
        "the stopped worker's Node is tainted",
        Duration::from_secs(30),
        || {
            let keys = taint_keys(&worker());
            keys.contains(SHUTDOWN).then_some(()).ok_or(keys)
        },
    );
    eprintln!(
        "shutdown taint after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let start = run("docker", &["start", &worker()], None);
    assert!(start.status.success(), "{}", text(&start));
    let started = Instant::now();
    wait_for(
        "the started worker's taint goes",
        Duration::from_secs(120),
        || {
            let keys = taint_keys(&worker());
            (!keys.contains(SHUTDOWN) && ready(&worker()) == "True")
                .then_some(())
                .ok_or(keys)
        },
    );
    eprintln!("taint gone after {:.1}s", started.elapsed().as_secs_f64());

    let rm = run("docker", &["rm", "-f", "-v", &worker()], None);
    assert!(rm.status.success(), "{}", text(&rm));
    let started = Instant::now();
    wait_for(
        "the removed worker's Node is deleted",
        Duration::from_secs(30),
        || {
            let out = node_kubectl(&cp(), &["get", "node", &worker()], None);
            (!out.status.success() && text(&out).contains("NotFound"))
                .then_some(())
                .ok_or(text(&out))
        },
    );
    eprintln!("Node deleted after {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(kindred_e2e::node_containers_of(NAME), cp());
    let logs = run("docker", &["logs", &agent], None);
    assert!(
        text(&logs).contains(&format!("Node {}: its container is gone", worker())),
        "{}",
        text(&logs)
    );
}
