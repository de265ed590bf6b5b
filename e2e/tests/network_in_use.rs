//! Against the real Docker daemon: a network that a stopped (or created, not yet started)
//! container is attached to is kept. Docker's own view of a network lists running containers
//! only, so a `delete cluster` of the last running cluster used to remove the `kindred` network
//! under a stopped cluster, which then could never start again ("network ... not found"), and
//! under a create between its container create and start.

use std::process::Command;

use kindred::provider::{Docker, Provider};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn network_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["network", "inspect", name])
        .output()
        .expect("run docker")
        .status
        .success()
}

/// Removes the test's container and network however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_network_with_a_container_that_is_not_running_is_kept() {
    let name = format!("kindred-test-netkeep-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    docker(&["network", "create", &name]);
    // Any local image will do: the container is never started. The node image is there on
    // every machine that runs the e2e tests.
    let image = kindred::defaults::default_node_image();
    docker(&["create", "--name", &name, "--network", &name, &image]);

    let client = Docker::connect().await.expect("connect to Docker");
    let removed = client.remove_network_if_unused(&name).await.unwrap();
    assert!(
        !removed,
        "removed a network a created container is attached to"
    );
    assert!(network_exists(&name));

    // Started once and exited: attached by network ID now.
    docker(&["rm", &name]);
    docker(&[
        "run",
        "--name",
        &name,
        "--network",
        &name,
        "--entrypoint",
        "/bin/true",
        &image,
    ]);
    let removed = client.remove_network_if_unused(&name).await.unwrap();
    assert!(
        !removed,
        "removed a network a stopped container is attached to"
    );
    assert!(network_exists(&name));

    docker(&["rm", &name]);
    let removed = client.remove_network_if_unused(&name).await.unwrap();
    assert!(removed, "kept a network nothing uses");
    assert!(!network_exists(&name));
}
