//! The kindred binary's behaviour on bad input: clear errors that name the problem and the fix.
//! These run the real binary; the ones that reach Docker or the Go module proxy use them for real.

use std::process::{Command, Output};

use kindred_e2e::stderr_of;

fn kindred(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindred"));
    kindred_e2e::output(cmd.args(args).envs(envs.iter().copied()), None)
}

#[test]
fn version_names_the_default_kubernetes() {
    let out = kindred(&["version"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let host = kindred_e2e::host_default();
    let first = stdout.lines().next().unwrap_or_default();
    // hack/vm-smoke.sh reads the version from the first line.
    assert!(
        first.ends_with(&format!("(default Kubernetes {})", host.version)),
        "{stdout}"
    );
    assert!(stdout.contains(host.reason), "{stdout}");
}

/// `kindred version | head -1` under `set -o pipefail` (hack/vm-smoke.sh once did this): the
/// reader closing the pipe early ends kindred quietly with success, not with a panic.
#[test]
fn a_reader_that_closes_stdout_early_is_no_failure() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .arg("version")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before kindred writes: it asks Docker for the cgroup version first.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_kube_version_is_rejected_with_a_hint() {
    bad_kube_version_fails_with("latest", "`latest` is not a Kubernetes release version");
}

#[test]
fn unknown_kube_version_names_the_version_and_how_to_list_versions() {
    bad_kube_version_fails_with("v1.34.999", "k8s.io/kubernetes@v1.34.999 is not available");
}

/// `build node-image --kube-version <version>` fails naming the problem and how to list the
/// versions there are.
fn bad_kube_version_fails_with(version: &str, problem: &str) {
    let cache = tempfile::tempdir().unwrap();
    let out = kindred(
        &[
            "build",
            "node-image",
            "--kube-version",
            version,
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains(problem), "{err}");
    assert!(
        err.contains("go list -m -versions k8s.io/kubernetes"),
        "{err}"
    );
}

#[test]
fn kube_binaries_dir_missing_a_binary_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeadm"), "").unwrap();
    let out = kindred(
        &[
            "build",
            "node-image",
            "--kube-binaries",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("missing Kubernetes binaries"), "{err}");
    assert!(
        err.contains("kubelet") && err.contains("kube-apiserver"),
        "{err}"
    );
}

#[test]
fn two_kubernetes_sources_conflict() {
    let out = kindred(
        &[
            "build",
            "node-image",
            "--kube-version",
            "v1.34.12",
            "--kube-binaries",
            "/tmp",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("cannot be used with"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn no_docker_daemon_says_how_to_start_one() {
    let out = kindred(
        &["bom"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("cannot reach the Docker daemon"), "{err}");
    assert!(err.contains("hack/setup-host.sh"), "{err}");
}

#[test]
fn bom_of_a_missing_image_says_how_to_build_it() {
    let out = kindred(&["bom", "kindred/no-such-image:v0"], &[]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("does not exist") && err.contains("kindred build node-image"),
        "{err}"
    );
}

#[test]
fn create_with_a_missing_image_says_how_to_build_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let out = kindred(
        &[
            "create",
            "cluster",
            "--name",
            "kindred-e2e-noimage",
            "--image",
            "kindred/node:v0.0.0-missing",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("node image kindred/node:v0.0.0-missing is not in Docker"),
        "{err}"
    );
    assert!(
        err.contains("kindred build node-image --kube-version v0.0.0-missing"),
        "{err}"
    );
    assert_eq!(kindred_e2e::containers_of("kindred-e2e-noimage"), "");
    assert!(
        !kubeconfig.exists(),
        "a kubeconfig was written for a cluster that was never created"
    );
}

/// kube-proxy's IPVS mode on a kernel without IPVS (this CI machine's kernel cannot load
/// modules and has none built in) is refused before anything is created, naming the modules
/// and the fix. Where the kernel has IPVS, the cluster must come up instead.
#[test]
fn kube_proxy_ipvs_mode_is_refused_on_a_kernel_without_ipvs() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let config = dir.path().join("ipvs.yaml");
    std::fs::write(
        &config,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  kubeProxyMode: ipvs\n",
    )
    .unwrap();
    let name = "kindred-e2e-ipvs";
    let args = [
        "create",
        "cluster",
        "--name",
        name,
        "--config",
        config.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    let out = kindred(&args, &[]);
    let err = stderr_of(&out);
    let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    if has_ipvs {
        let _ = kindred(&["delete", "cluster", "--name", name], &[]);
        assert!(out.status.success(), "{err}");
        return;
    }
    assert!(!out.status.success());
    assert!(
        err.contains("kubeProxyMode ipvs needs the kernel's IPVS")
            && err.contains("ip_vs_rr")
            && err.contains("or use kubeProxyMode iptables or nftables"),
        "{err}"
    );
    assert_eq!(kindred_e2e::containers_of(name), "");
    assert!(!kubeconfig.exists());
}

#[test]
fn create_with_a_bad_config_fails_before_touching_docker() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMapings: []\n", "unknown field `extraPortMapings`"),
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n", "control-plane"),
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: Bad_Name\n", "Bad_Name"),
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.96.0.0/12\n  serviceSubnet: 10.96.0.0/16\n", "overlap"),
    ];
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        // A daemon that does not exist: config errors must come first.
        let out = kindred(
            &["create", "cluster", "--config", path.to_str().unwrap()],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        );
        assert!(!out.status.success(), "{yaml}");
        let err = stderr_of(&out);
        assert!(
            err.contains(expected),
            "config {i}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(&format!("bad{i}.yaml")),
            "the error does not name the file:\n{err}"
        );
    }
}

#[test]
fn create_with_a_taken_api_server_port_fails_fast_and_leaves_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    std::fs::write(
        &config,
        format!("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  apiServerPort: {port}\n"),
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let out = kindred(
        &[
            "create",
            "cluster",
            "--name",
            "kindred-e2e-port",
            "--config",
            config.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("apiServerPort {port}")) && err.contains("not free"),
        "{err}"
    );
    assert_eq!(kindred_e2e::containers_of("kindred-e2e-port"), "");
    assert!(!kubeconfig.exists());
}

#[test]
fn ci_entrypoint_without_a_command_says_what_it_expects() {
    // Fails before it touches anything (it would otherwise adapt mounts and start dockerd).
    let out = kindred(&["ci-entrypoint"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("no command given"), "{err}");
    assert!(err.contains("container's arguments"), "{err}");
}

#[test]
fn usage_errors_exit_with_status_2() {
    let out = kindred(&["create", "cluster", "--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn a_flag_value_that_does_not_parse_exits_2_as_the_readme_says() {
    let out = kindred(&["create", "cluster", "--wait", "abc"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("abc"), "{}", stderr_of(&out));
    // The README's summary line must not promise 1 for every error.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let summary = readme
        .lines()
        .skip_while(|l| !l.starts_with("Exit status is"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        summary.contains("2 for a bad command line") && summary.contains("--wait abc"),
        "README's exit status summary disagrees with the binary: {summary}"
    );
}

/// Kubernetes 1.35 and later refuse cgroup v1: on such a Docker host their node images are
/// refused before anything is created. A stand-in image carrying only the version label is
/// enough, since nothing may be started from it.
#[test]
fn a_kubernetes_1_35_image_on_a_cgroup_v1_host_is_refused_before_anything_is_created() {
    use std::io::Write;
    let image = "kindred-e2e/fake-node:v1.35.4";
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(8);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "kind/version", &b"v1.35.4\n"[..])
        .unwrap();
    let rootfs = archive.into_inner().unwrap();
    let mut import = Command::new("docker")
        .args([
            "import",
            "-c",
            "LABEL io.kindred.kubernetes-version=v1.35.4",
            "-",
            image,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker import");
    import.stdin.take().unwrap().write_all(&rootfs).unwrap();
    assert!(import.wait().unwrap().success(), "docker import failed");

    let cgroup = Command::new("docker")
        .args(["info", "-f", "{{.CgroupVersion}}"])
        .output()
        .unwrap();
    let cgroup_v1 = String::from_utf8_lossy(&cgroup.stdout).trim() == "1";
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let out = kindred(
        &[
            "create",
            "cluster",
            "--name",
            "kindred-e2e-v135",
            "--image",
            image,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    );
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    let err = stderr_of(&out);
    assert!(
        !out.status.success(),
        "a node image without Kubernetes made a cluster: {err}"
    );
    let refused = err.contains("runs Kubernetes v1.35.4, whose kubelet refuses cgroup v1");
    assert_eq!(refused, cgroup_v1, "cgroup v1 host: {cgroup_v1}; {err}");
    if cgroup_v1 {
        assert!(err.contains("--kube-version v1.34"), "{err}");
    }
    assert_eq!(kindred_e2e::containers_of("kindred-e2e-v135"), "");
    assert!(!kubeconfig.exists());
}

#[test]
fn node_commands_on_a_missing_cluster_name_it_and_make_nothing() {
    let cluster = "node-no-such-cluster";
    for args in [
        vec!["create", "node", "--name", cluster],
        vec![
            "delete",
            "node",
            "node-no-such-cluster-worker",
            "--name",
            cluster,
        ],
        vec![
            "restart",
            "node",
            "node-no-such-cluster-worker",
            "--name",
            cluster,
        ],
    ] {
        let out = kindred(&args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("no cluster named {cluster}")) && err.contains("create cluster"),
            "{args:?}: {err}"
        );
    }
    let names = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.kindred.cluster={cluster}"),
        ])
        .output()
        .unwrap();
    assert!(names.stdout.is_empty(), "create node made containers");
}
