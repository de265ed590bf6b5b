//! Concurrent and interrupted `kindred create cluster` against the real Docker daemon: a create
//! never removes what it did not make. Two creates of one name: exactly one wins and the
//! other says the name is taken, without touching the winner. A create of an existing name
//! killed early: the existing cluster keeps its containers, volumes and kubeconfig entry.
//! A create waiting for another's network lock says whom it waits for and stops on SIGTERM.
//! A config with more nodes than allowed is refused before anything is created.
//!
//! Creates are paused at named points with the test hook `KINDRED_TEST_PAUSE_AT`, so the
//! interleavings are deterministic. Only single-node clusters, no `--wait`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindred_e2e::cluster::DeleteOnDrop;
use kindred_e2e::{containers_of, output, text};

/// `kindred` with this kubeconfig and extra environment, run to completion.
fn kindred(args: &[&str], kubeconfig: &Path, env: &[(&str, &str)]) -> Output {
    let exe = env!("CARGO_BIN_EXE_kindred");
    output(
        kindred_e2e::kindred(exe, args, kubeconfig).envs(env.iter().copied()),
        None,
    )
}

/// A running `kindred` whose stderr is collected as it comes, so a test can wait for a line.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(args: &[&str], kubeconfig: &Path, env: &[(&str, &str)]) -> Running {
        let mut cmd = kindred_e2e::kindred(env!("CARGO_BIN_EXE_kindred"), args, kubeconfig);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .envs(env.iter().copied());
        let mut child = cmd.spawn().expect("run kindred");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "`{needle}` not printed within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
    }

    /// Waits for the exit (at most `timeout`) and returns the exit code (`None`: killed by a
    /// signal) and all of stderr.
    fn finish(mut self, timeout: Duration) -> (Option<i32>, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for kindred") {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "kindred did not exit within {timeout:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        (status.code(), self.stderr())
    }
}

/// `docker <args>`, which must succeed; its stdout, trimmed.
fn docker_out(args: &[&str]) -> String {
    kindred_e2e::docker_out(args).trim().to_string()
}

/// Deletes the named clusters when dropped, also when the test panics.
fn delete_on_drop(names: Vec<String>, kubeconfig: PathBuf) -> DeleteOnDrop {
    let exe = env!("CARGO_BIN_EXE_kindred");
    DeleteOnDrop {
        exe,
        names,
        kubeconfig,
    }
}

/// What must survive any create of the same name: the cluster's container IDs, their volumes,
/// and the kubeconfig file with its entry.
fn snapshot(cluster: &str, kubeconfig: &Path) -> (String, Vec<String>, String) {
    let ids = docker_out(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=io.kindred.cluster={cluster}"),
    ]);
    let volumes: Vec<String> = ids
        .lines()
        .flat_map(|id| {
            docker_out(&[
                "inspect",
                "-f",
                "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
                id,
            ])
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
        })
        .collect();
    for v in &volumes {
        docker_out(&["volume", "inspect", v]);
    }
    let config = std::fs::read_to_string(kubeconfig).unwrap_or_default();
    (ids, volumes, config)
}

async fn require_node_image() {
    let docker = kindred_e2e::docker().await;
    kindred_e2e::require_image(&docker, &kindred_e2e::node_image()).await;
}

#[test]
fn more_nodes_than_allowed_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut config =
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
            .to_string();
    config.push_str(&"- role: worker\n".repeat(3000));
    let path = dir.path().join("huge.yaml");
    std::fs::write(&path, config).unwrap();
    let out = kindred(
        &[
            "create",
            "cluster",
            "--name",
            "races-huge",
            "--config",
            path.to_str().unwrap(),
        ],
        &kubeconfig,
        &[],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("3001 nodes; kindred creates at most 100 nodes per cluster"),
        "{log}"
    );
    assert!(log.contains("use fewer nodes"), "{log}");
    assert_eq!(containers_of("races-huge"), "");
    assert!(!kubeconfig.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_waiting_for_the_lock_names_the_holder_and_stops_on_sigterm() {
    require_node_image().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A lock directory of this test's own: other creates on this host are not held up.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let runtime = runtime.to_str().unwrap();
    let _cleanup = delete_on_drop(
        vec!["races-lock-a".into(), "races-lock-b".into()],
        kubeconfig.clone(),
    );
    let holder = Running::start(
        &["create", "cluster", "--name", "races-lock-a"],
        &kubeconfig,
        &[
            ("XDG_RUNTIME_DIR", runtime),
            ("KINDRED_TEST_PAUSE_AT", "locked:60000"),
        ],
    );
    holder.wait_for("paused at locked", Duration::from_secs(60));
    let lock_file = Path::new(runtime).join("kindred/network-kindred.lock");
    let content = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        content.starts_with(&format!("{}\n", holder.child.id())),
        "{content}"
    );

    let waiter = Running::start(
        &["create", "cluster", "--name", "races-lock-b"],
        &kubeconfig,
        &[("XDG_RUNTIME_DIR", runtime)],
    );
    let expected = format!(
        "waiting for the lock held by pid {} (kindred create cluster --name races-lock-a)",
        holder.child.id()
    );
    waiter.wait_for(&expected, Duration::from_secs(60));
    let asked = Instant::now();
    waiter.sigterm();
    let (code, log) = waiter.finish(Duration::from_secs(20));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the waiter took {:?} to stop:\n{log}",
        asked.elapsed()
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Interrupted by SIGTERM"), "{log}");

    holder.sigterm();
    let (code, log) = holder.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(containers_of("races-lock-a"), "", "{log}");
    assert_eq!(containers_of("races-lock-b"), "");
}

/// Two creates of `races-dup` at once: exactly one wins, the other says the name is taken and
/// leaves the winner alone. Then creates of the same name killed at several early moments must
/// leave that cluster as it was.
#[tokio::test(flavor = "multi_thread")]
async fn creates_of_a_taken_name_never_touch_the_cluster_that_has_it() {
    require_node_image().await;
    const NAME: &str = "races-dup";
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let _ = kindred(&["delete", "cluster", "--name", NAME], &kubeconfig, &[]);
    let _cleanup = delete_on_drop(vec![NAME.into()], kubeconfig.clone());

    // Both pass the early name check, pause, then race for the network lock.
    let pause = [("KINDRED_TEST_PAUSE_AT", "name-checked:3000")];
    let args = ["create", "cluster", "--name", NAME];
    let first = Running::start(&args, &kubeconfig, &pause);
    let second = Running::start(&args, &kubeconfig, &pause);
    first.wait_for("paused at name-checked", Duration::from_secs(60));
    second.wait_for("paused at name-checked", Duration::from_secs(60));
    let results = [
        first.finish(Duration::from_secs(300)),
        second.finish(Duration::from_secs(300)),
    ];
    let both = format!("first:\n{}\nsecond:\n{}", results[0].1, results[1].1);
    let winners = results.iter().filter(|r| r.0 == Some(0)).count();
    assert_eq!(winners, 1, "exactly one create must win:\n{both}");
    let loser = results.iter().find(|r| r.0 != Some(0)).unwrap();
    assert_eq!(loser.0, Some(1), "{both}");
    assert!(
        loser.1.contains(&format!("the name {NAME} is taken")),
        "the loser does not say the name is taken:\n{both}"
    );
    assert!(!loser.1.contains("No such container"), "{both}");
    let node = format!("{NAME}-control-plane");
    assert_eq!(kindred_e2e::node_containers_of(NAME), node, "{both}");
    let nodes = kindred_e2e::node_kubectl(&node, &["get", "nodes", "--no-headers"], None);
    assert!(nodes.status.success(), "{}\n{both}", text(&nodes));
    assert!(
        String::from_utf8_lossy(&nodes.stdout).contains(&node),
        "{}",
        text(&nodes)
    );
    let before = snapshot(NAME, &kubeconfig);
    assert!(
        before.2.contains(&format!("kindred-{NAME}")),
        "{}",
        before.2
    );
    assert!(!before.1.is_empty(), "the node has no /var volume");

    // Killed while checking the name (deterministic: paused right there).
    let victim_check = |when: &str, log: &str| {
        assert_eq!(
            snapshot(NAME, &kubeconfig),
            before,
            "{NAME} changed after a create killed {when}:\n{log}"
        );
    };
    let killed = Running::start(
        &args,
        &kubeconfig,
        &[("KINDRED_TEST_PAUSE_AT", "name-check:60000")],
    );
    killed.wait_for("paused at name-check", Duration::from_secs(60));
    killed.sigterm();
    let (code, log) = killed.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Interrupted by SIGTERM"), "{log}");
    victim_check("while checking the name", &log);

    // Killed at several early moments, wherever they land.
    for delay in [0, 30, 100, 250, 500] {
        let killed = Running::start(&args, &kubeconfig, &[]);
        std::thread::sleep(Duration::from_millis(delay));
        killed.sigterm();
        let (_, log) = killed.finish(Duration::from_secs(30));
        victim_check(&format!("after {delay} ms"), &log);
    }

    // And a plain second create is refused without harm.
    let out = kindred(&args, &kubeconfig, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("the name {NAME} is taken")),
        "{}",
        text(&out)
    );
    victim_check("after a refused create", &text(&out));
}
