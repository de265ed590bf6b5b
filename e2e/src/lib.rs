//! Helpers for kindred's end-to-end tests (this crate's tests/ and cli/tests/), shared so no
//! test file re-declares them. Everything here talks to the real Docker daemon; containers
//! created by a test are removed when it ends, whether it passed or panicked. Modules:
//! `cmd` (running kindred, docker and kubectl), `cluster` (deleting a test's clusters),
//! `image` (test images, the node image's kubectl).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use kindred::provider::{ContainerSpec, Docker, ExecOutput, NodeSecurity, Provider};

pub mod cluster;
mod cmd;
pub mod image;

pub use cmd::{
    docker_out, free_port, kindred, node_kubectl, node_sh, output, run, stderr_of, stdout_ok, text,
    write_executable,
};

/// Label on every container an e2e test creates, so leftovers can be found.
pub const E2E_LABEL: &str = "io.kindred.e2e";

pub async fn docker() -> Docker {
    Docker::connect()
        .await
        .expect("the e2e tests need a running Docker daemon (hack/setup-host.sh starts one)")
}

/// The node image under test: $KINDRED_E2E_IMAGE or this Docker host's default node image
/// (what `kindred build node-image` with no version builds).
pub fn node_image() -> String {
    std::env::var("KINDRED_E2E_IMAGE").unwrap_or_else(|_| host_default().node_image())
}

/// The Docker host's default Kubernetes (kindred asks the daemon for its cgroup version too).
pub fn host_default() -> kindred::defaults::HostDefault {
    let out = std::process::Command::new("docker")
        .args(["info", "-f", "{{.CgroupVersion}}"])
        .output()
        .expect("the e2e tests need the docker CLI");
    kindred::defaults::HostDefault::for_cgroup(String::from_utf8_lossy(&out.stdout).trim())
}

/// The kindred executable of this build (`target/<profile>/kindred`, next to the directory of
/// test binaries): it is what node images built by the tests pack as the agent.
pub fn kindred_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .join("kindred");
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --bin kindred` (hack/test.sh does)",
        path.display()
    );
    path
}

pub async fn require_image(docker: &Docker, image: &str) {
    assert!(
        docker.image_exists(image).await.expect("inspect image"),
        "node image {image} is missing: build it first with `cargo run -- build node-image` (hack/test.sh does)"
    );
}

/// A node container started from a node image the way kindred starts them.
pub struct Node {
    pub docker: Docker,
    pub name: String,
    pub security: NodeSecurity,
}

impl Node {
    pub async fn start(docker: &Docker, image: &str, name: &str) -> Node {
        docker
            .remove_container(name)
            .await
            .expect("remove a leftover container");
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            hostname: Some(name.to_string()),
            labels: HashMap::from([(E2E_LABEL.to_string(), "true".to_string())]),
            tmpfs: vec!["/run".into(), "/tmp".into()],
            volumes: vec!["/var".into()],
            security: Some(NodeSecurity::from_env().expect("KINDRED_NODE_SECURITY")),
            ..Default::default()
        };
        let security = docker
            .run(&spec)
            .await
            .expect("start the node container")
            .expect("node security is set");
        Node {
            docker: docker.clone(),
            name: name.to_string(),
            security,
        }
    }

    pub async fn exec(&self, cmd: &[&str]) -> ExecOutput {
        self.docker
            .exec(&self.name, cmd)
            .await
            .expect("docker exec")
    }

    /// Runs `sh -c script` and returns stdout, panicking with all output if it fails.
    pub async fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]).await;
        assert_eq!(
            out.code, 0,
            "`{script}` failed in {}:\n{}{}",
            self.name, out.stdout, out.stderr
        );
        out.stdout
    }

    /// Polls `sh -c script` until it succeeds; on timeout panics with the last output and
    /// `diagnose`'s output, so a failure explains itself.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        diagnose: &str,
    ) -> String {
        let start = Instant::now();
        loop {
            let out = self.exec(&["sh", "-c", script]).await;
            if out.code == 0 {
                return out.stdout;
            }
            if start.elapsed() > timeout {
                let diag = self.exec(&["sh", "-c", diagnose]).await;
                panic!(
                    "{what}: not true after {timeout:?} in {}.\nlast output:\n{}{}\ndiagnosis (`{diagnose}`):\n{}{}",
                    self.name, out.stdout, out.stderr, diag.stdout, diag.stderr
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn remove(&self) {
        self.docker
            .remove_container(&self.name)
            .await
            .expect("remove node container");
    }
}

/// Runs a test body with a node, removing the node afterwards even if the body panics.
pub async fn with_node<F, Fut>(image: &str, name: &str, body: F)
where
    F: FnOnce(Node) -> Fut,
    Fut: Future<Output = ()>,
{
    let docker = docker().await;
    require_image(&docker, image).await;
    let node = Node::start(&docker, image, name).await;
    let handle = Node {
        docker: node.docker.clone(),
        name: node.name.clone(),
        security: node.security,
    };
    let result = AssertUnwindSafe(body(node)).catch_unwind().await;
    if result.is_err() {
        if let Ok(logs) = handle.docker.logs(&handle.name).await {
            eprintln!("--- container output of {} ---\n{logs}", handle.name);
        }
    }
    handle.remove().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Names of the containers of a cluster, as the docker CLI sees them: an observer independent
/// of kindred's own listing code.
pub fn containers_of(cluster: &str) -> String {
    let names: Vec<String> = labelled_containers(cluster)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.join("\n")
}

/// The names of a cluster's node containers (and an HA cluster's load balancer), one a line,
/// as `kindred get nodes` lists them: [`containers_of`] without the node lifecycle agent.
pub fn node_containers_of(cluster: &str) -> String {
    let names: Vec<String> = labelled_containers(cluster)
        .into_iter()
        .filter(|(_, role)| role != "node-lifecycle")
        .map(|(n, _)| n)
        .collect();
    names.join("\n")
}

/// Every container labelled as the cluster's, stopped ones too: (name, role label).
fn labelled_containers(cluster: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.kindred.cluster={cluster}"),
            "--format",
            "{{.Names}} {{.Label \"io.kindred.role\"}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((name, role)) => (name.to_string(), role.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// A named check run against a shared fixture (a cluster) by [`run_subtests`].
pub type Subtest<C> = (&'static str, fn(&C));

/// Runs every subtest against one shared fixture, in order, even after a failure, then fails
/// with every failure's message: one broken subtest does not hide the others.
pub fn run_subtests<C>(ctx: &C, subtests: &[Subtest<C>]) {
    let mut failed = Vec::new();
    run_subtests_into(ctx, subtests, &mut failed);
    assert!(
        failed.is_empty(),
        "{} subtest(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// Runs every subtest, in order, adding each failure's message to `failed`: for a test that
/// runs subtests in several groups and fails once at the end.
pub fn run_subtests_into<C>(ctx: &C, subtests: &[Subtest<C>], failed: &mut Vec<String>) {
    for (name, subtest) in subtests {
        let t = Instant::now();
        eprintln!("=== subtest: {name}");
        match std::panic::catch_unwind(AssertUnwindSafe(|| subtest(ctx))) {
            Ok(()) => eprintln!("=== ok: {name} ({:.1?})", t.elapsed()),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("=== FAILED: {name} ({:.1?})\n{why}", t.elapsed());
                failed.push(format!("{name}: {why}"));
            }
        }
    }
}

/// `GET /version` from an etcd server at `addr` (e.g. behind a LoadBalancer Service), from this
/// host: its body when etcd answered, else what went wrong.
pub fn etcd_version(addr: std::net::SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let request = format!("GET /version HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    if body.contains("etcdserver") {
        Ok(body)
    } else {
        Err(format!("unexpected answer: {body}"))
    }
}
