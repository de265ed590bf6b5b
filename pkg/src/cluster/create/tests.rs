//! Create's failure paths against the in-memory provider: what a failed create removes, what
//! `--retain` keeps, and that a create never touches what it did not make.

use std::time::Duration;

use super::{create, CreateOptions};
use crate::cluster::{ClusterError, CLUSTER_LABEL};
use crate::provider::fake::FakeProvider;
use crate::ui::Ui;

fn options(name: &str, workers: usize, retain: bool, dir: &tempfile::TempDir) -> CreateOptions {
    let mut yaml = format!(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: {name}\nnodes:\n- role: control-plane\n"
    );
    for _ in 0..workers {
        yaml.push_str("- role: worker\n");
    }
    // Port 0: no host port is bound by the preflight check.
    yaml.push_str("networking:\n  apiServerPort: 0\n");
    let config = crate::config::parse(&yaml, "test")
        .expect("valid config")
        .with_defaults_using("kindred/node:test");
    config.validate().expect("valid config");
    CreateOptions {
        config,
        retain,
        wait: Duration::ZERO,
        kubeconfig: dir.path().join("kubeconfig"),
    }
}

/// A unique cluster name per test: the tests share the host's network lock, not the fake.
fn name(test: &str) -> String {
    format!("fake-{test}-{}", std::process::id())
}

#[tokio::test]
async fn a_failed_node_creation_removes_every_node_and_volume_this_create_made() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = name("run");
    let fake = FakeProvider::default().failing_run(&format!("{cluster}-worker2"));
    fake.add_container("other-control-plane", &[(CLUSTER_LABEL, "other")]);
    let err = create(&fake, &options(&cluster, 2, false, &dir), &Ui::quiet())
        .await
        .expect_err("the injected failure fails the create");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(fake.container_names_sorted(), vec!["other-control-plane"]);
    assert_eq!(fake.volume_count(), 0);
}

#[tokio::test]
async fn retain_keeps_the_nodes_of_a_failed_create() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = name("retain");
    let fake = FakeProvider::default().failing_run(&format!("{cluster}-worker"));
    create(&fake, &options(&cluster, 1, true, &dir), &Ui::quiet())
        .await
        .expect_err("the injected failure fails the create");
    assert!(
        fake.container_names_sorted()
            .contains(&format!("{cluster}-control-plane")),
        "{:?}",
        fake.container_names_sorted()
    );
}

#[tokio::test]
async fn a_taken_name_is_refused_and_the_existing_cluster_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = name("taken");
    let fake = FakeProvider::default();
    let existing = format!("{cluster}-control-plane");
    fake.add_container(&existing, &[(CLUSTER_LABEL, cluster.as_str())]);
    let err = create(&fake, &options(&cluster, 0, false, &dir), &Ui::quiet())
        .await
        .expect_err("the name is taken");
    assert!(matches!(err, ClusterError::NameTaken { .. }), "{err}");
    assert_eq!(fake.container_names_sorted(), vec![existing]);
}

#[tokio::test]
async fn a_failing_kubeadm_init_removes_the_nodes_it_ran_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = name("exec");
    let fake = FakeProvider::default()
        .failing_exec("kubeadm init --config")
        .output("is-system-running", "running\n")
        .output("cat /kind/version", "v1.34.12\n");
    let err = create(&fake, &options(&cluster, 1, false, &dir), &Ui::quiet())
        .await
        .expect_err("the injected failure fails the create");
    // The nodes were made, then a command in them failed, then they were removed.
    let commands = fake.commands();
    assert!(
        commands.iter().any(|c| c.contains("kubeadm")),
        "no kubeadm command ran: {err}\n{commands:#?}"
    );
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(fake.container_names_sorted().is_empty(), "{err}");
    assert_eq!(fake.volume_count(), 0);
}
