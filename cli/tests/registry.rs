//! The local registry end to end, against the real Docker daemon: bad requests fail before
//! anything is created; a 1 control plane + 1 worker cluster made from a kind config plus
//! `--registry` gets the shared `kindred-registry` container; an image built on the host
//! (`FROM scratch` + a static Go server), tagged `localhost:<port>/hello:v1` and pushed with
//! `docker push` runs on both nodes with `imagePullPolicy: Always`; the cluster carries kind's
//! `local-registry-hosting` ConfigMap; deleting the cluster removes the registry. Then a
//! 1-node cluster from a `kindred.dev/v1alpha4` config with `registry: {keep: true}` pulls a
//! freshly pushed image, and its registry outlives it until `kindred delete registry`.
//!
//! The subtests run in order inside one test function, so the clusters and the registry are
//! deleted at the end whatever happens, and a failing subtest does not hide the others. The
//! registry port is picked free at the start, so the test does not depend on 5001 being free.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

const CLUSTER: &str = "reg-e2e";
const CP: &str = "reg-e2e-control-plane";
const WORKER: &str = "reg-e2e-worker";
/// The 1-node cluster that keeps the registry.
const KEPT: &str = "reg-e2e-kept";
const KEPT_CP: &str = "reg-e2e-kept-control-plane";
/// Names that must never get containers: their creates fail early.
const REFUSED: [&str; 3] = ["reg-e2e-taken", "reg-e2e-other", "reg-e2e-kind"];
const REGISTRY: &str = "kindred-registry";

struct Ctx {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    rt: tokio::runtime::Runtime,
    /// The registry's host port for this run.
    port: u16,
}

impl Ctx {
    fn kindred(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let exe = env!("CARGO_BIN_EXE_kindred");
        let mut cmd = kindred_e2e::kindred(exe, args, &self.kubeconfig);
        output(cmd.current_dir(self.dir.path()), stdin)
    }

    /// Runs kindred, asserts success, returns stderr (what it reports).
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kindred(args, stdin);
        stdout_ok(&out, format_args!("kindred {}", args.join(" ")));
        stderr_of(&out)
    }

    fn image(&self) -> String {
        format!("localhost:{}/hello:v1", self.port)
    }

    /// Deletes this test's clusters, and the registry if it is this run's (its port).
    fn cleanup(&self) {
        for name in [CLUSTER, KEPT].iter().chain(REFUSED.iter()) {
            let _ = self.kindred(&["delete", "cluster", "--name", name], None);
        }
        if registry_label(kindred::registry::PORT_LABEL) == self.port.to_string() {
            let _ = self.kindred(&["delete", "registry"], None);
        }
        let _ = run("docker", &["rmi", &self.image()]);
    }
}

use kindred_e2e::image::{build_go_binary, build_hello_image, hello_go, hello_pod};
use kindred_e2e::{free_port, node_sh, output, run_subtests_into, stderr_of, stdout_ok, text};

fn run(program: &str, args: &[&str]) -> Output {
    kindred_e2e::run(program, args, None)
}

/// `docker inspect -f <format> kindred-registry`, empty if there is no registry.
fn inspect_registry(format: &str) -> String {
    let out = run("docker", &["inspect", "-f", format, REGISTRY]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn registry_label(label: &str) -> String {
    inspect_registry(&format!("{{{{index .Config.Labels \"{label}\"}}}}"))
}

fn registry_exists() -> bool {
    run("docker", &["inspect", REGISTRY]).status.success()
}

fn volume_exists() -> bool {
    run("docker", &["volume", "inspect", REGISTRY])
        .status
        .success()
}

fn kubectl(node: &str, args: &[&str], stdin: Option<&str>) -> Output {
    kindred_e2e::node_kubectl(node, args, stdin)
}

/// `docker push` from the host: Docker treats localhost registries as plain HTTP.
fn push(image: &str) {
    let out = run("docker", &["push", image]);
    assert!(out.status.success(), "docker push {image}:\n{}", text(&out));
}

fn wait_running(cp: &str, pod: &str) {
    let start = Instant::now();
    loop {
        let out = kubectl(
            cp,
            &["get", "pod", pod, "-o", "jsonpath={.status.phase}"],
            None,
        );
        if String::from_utf8_lossy(&out.stdout) == "Running" {
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let describe = kubectl(cp, &["describe", "pod", pod], None);
            panic!("pod {pod} is not Running after 120s:\n{}", text(&describe));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `kindred args`, which must fail with each of `expected` in its error and leave no
/// container of `cluster` and no registry behind.
fn fails_early(ctx: &Ctx, cluster: &str, args: &[&str], stdin: Option<&str>, expected: &[&str]) {
    let registry_before = registry_exists();
    let out = ctx.kindred(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kindred {} did not fail:\n{}",
        args.join(" "),
        text(&out)
    );
    for e in expected {
        assert!(
            err.contains(e),
            "kindred {}: {err:?} lacks {e:?}",
            args.join(" ")
        );
    }
    assert_eq!(kindred_e2e::containers_of(cluster), "", "containers remain");
    assert_eq!(registry_exists(), registry_before, "the registry changed");
}

#[test]
fn the_local_registry() {
    assert!(
        !registry_exists(),
        "a {REGISTRY} container already exists (another cluster uses the local registry?); \
         this test needs the registry to itself"
    );
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        kubeconfig: dir.path().join("kubeconfig"),
        dir,
        rt: tokio::runtime::Runtime::new().unwrap(),
        port: free_port(),
    };
    let on_failure = || {
        if std::env::var_os("KINDRED_ARTIFACTS").is_some() {
            for name in [CLUSTER, KEPT] {
                let _ = ctx.kindred(&["export", "logs", "--name", name], None);
            }
        }
    };
    kindred_e2e::cluster::cleaned_up(
        &[CLUSTER, KEPT],
        || ctx.cleanup(),
        on_failure,
        || run_subtests(&ctx),
    );
    assert!(!registry_exists(), "the registry remains");
}

fn run_subtests(ctx: &Ctx) {
    let started = Instant::now();
    let mut failed = Vec::new();
    run_subtests_into(
        ctx,
        &[("bad requests fail before anything is created", bad_requests)],
        &mut failed,
    );

    // The cluster comes up while the image builds.
    let port = ctx.port.to_string();
    let kubeconfig = ctx.kubeconfig.clone();
    let create = std::thread::spawn(move || {
        let config = kindred_e2e::cluster::ONE_PLUS_ONE;
        let args = [
            "create",
            "cluster",
            "--name",
            CLUSTER,
            "--config",
            "-",
            "--registry",
            "--registry-port",
            &port,
            "--wait",
            "3m",
        ];
        let exe = env!("CARGO_BIN_EXE_kindred");
        output(
            &mut kindred_e2e::kindred(exe, &args, &kubeconfig),
            Some(config),
        )
    });
    let binary = build_go_binary(ctx.dir.path(), &hello_go("registry"));
    ctx.rt
        .block_on(build_hello_image(&binary, &ctx.image(), "registry-e2e"));
    let created = create.join().unwrap();
    stdout_ok(&created, format_args!("create {CLUSTER}"));
    eprintln!("setup took {:.0?}", started.elapsed());

    run_subtests_into(
        ctx,
        &[
            ("the registry container", registry_container),
            (
                "nodes send localhost:<port> to the registry",
                hosts_on_nodes,
            ),
            (
                "an image pushed from the host runs on both nodes",
                push_and_run,
            ),
            ("the local-registry-hosting ConfigMap", configmap),
            (
                "another port is refused while the registry runs",
                another_port_is_refused,
            ),
            (
                "deleting the last cluster removes the registry",
                deleted_with_the_last_cluster,
            ),
            (
                "a kept registry outlives its cluster",
                kept_registry_outlives_its_cluster,
            ),
        ],
        &mut failed,
    );
    assert!(
        failed.is_empty(),
        "{} subtest(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

fn bad_requests(ctx: &Ctx) {
    // A port something else holds.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    fails_early(
        ctx,
        REFUSED[0],
        &[
            "create",
            "cluster",
            "--name",
            REFUSED[0],
            "--registry-port",
            &taken_port,
        ],
        None,
        &[
            &format!("127.0.0.1:{taken_port} is already in use on this host"),
            "nothing was created",
        ],
    );
    drop(taken);
    // kindred's field in a kind config.
    fails_early(
        ctx,
        REFUSED[2],
        &["create", "cluster", "--name", REFUSED[2], "--config", "-"],
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nregistry: {port: 5001}\n"),
        &[
            "registry (line 3) is a kindred field",
            "apiVersion: kindred.dev/v1alpha4",
            "--registry",
        ],
    );
    // Out of range, in kindred's config and as a flag.
    fails_early(
        ctx,
        REFUSED[2],
        &["create", "cluster", "--name", REFUSED[2], "--config", "-"],
        Some("kind: Cluster\napiVersion: kindred.dev/v1alpha4\nregistry: {port: 70000}\n"),
        &["registry.port: 70000 is out of range 1-65535"],
    );
    let out = ctx.kindred(&["create", "cluster", "--registry-port", "0"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!registry_exists());
}

fn registry_container(ctx: &Ctx) {
    assert_eq!(inspect_registry("{{.State.Status}}"), "running");
    assert_eq!(
        inspect_registry("{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert_eq!(
        inspect_registry("{{.Config.Image}}"),
        kindred::registry::image()
    );
    assert_eq!(registry_label(kindred::registry::LABEL), "true");
    assert_eq!(registry_label(kindred::registry::KEEP_LABEL), "false");
    assert_eq!(
        inspect_registry(
            r#"{{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{range $b}}{{.HostIp}}:{{.HostPort}}{{end}}{{end}}"#
        ),
        format!("5000/tcp=127.0.0.1:{}", ctx.port)
    );
    assert_eq!(
        inspect_registry(r#"{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}"#),
        "volume kindred-registry /var/lib/registry"
    );
    // A fixed address on the kindred network, like the nodes.
    let fixed = inspect_registry(
        r#"{{with index .NetworkSettings.Networks "kindred"}}{{.IPAMConfig.IPv4Address}}{{end}}"#,
    );
    let live = inspect_registry(
        r#"{{with index .NetworkSettings.Networks "kindred"}}{{.IPAddress}}{{end}}"#,
    );
    assert!(!fixed.is_empty(), "no fixed address");
    assert_eq!(fixed, live);
    // The nodes are marked as its users.
    for node in [CP, WORKER] {
        let out = run(
            "docker",
            &[
                "inspect",
                "-f",
                "{{index .Config.Labels \"io.kindred.registry-port\"}}",
                node,
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            ctx.port.to_string(),
            "{node}"
        );
    }
    // The registry's API answers on the host port.
    let out = run(
        "curl",
        &["-sf", &format!("http://127.0.0.1:{}/v2/", ctx.port)],
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn hosts_on_nodes(ctx: &Ctx) {
    for node in [CP, WORKER] {
        let dump = node_sh(node, "containerd config dump");
        assert!(
            dump.contains("config_path = '/etc/containerd/certs.d'"),
            "{node}: {dump}"
        );
        for host in [
            format!("localhost:{}", ctx.port),
            format!("127.0.0.1:{}", ctx.port),
            "kindred-registry:5000".to_string(),
        ] {
            let hosts = node_sh(
                node,
                &format!("cat /etc/containerd/certs.d/{host}/hosts.toml"),
            );
            assert!(
                hosts.contains("server = \"http://kindred-registry:5000\""),
                "{node} {host}: {hosts}"
            );
        }
        // The node reaches the registry by its name on the kindred network (no curl in the
        // node image: bash's /dev/tcp).
        let status = node_sh(
            node,
            "exec 3<>/dev/tcp/kindred-registry/5000 && \
             printf 'GET /v2/ HTTP/1.0\\r\\nHost: kindred-registry\\r\\n\\r\\n' >&3 && head -n1 <&3",
        );
        assert!(status.contains(" 200 "), "{node}: {status:?}");
    }
}

fn push_and_run(ctx: &Ctx) {
    push(&ctx.image());
    for (name, node) in [("hello-cp", CP), ("hello-worker", WORKER)] {
        let out = kubectl(
            CP,
            &["apply", "-f", "-"],
            Some(&hello_pod(name, node, &ctx.image(), "Always")),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    for name in ["hello-cp", "hello-worker"] {
        wait_running(CP, name);
        let events = kubectl(
            CP,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
            None,
        );
        let events = String::from_utf8_lossy(&events.stdout);
        assert!(
            events.contains(&format!("Successfully pulled image \"{}\"", ctx.image())),
            "{name}: {events}"
        );
    }
    for node in [CP, WORKER] {
        let images = node_sh(node, "crictl images");
        assert!(
            images.contains(&format!("localhost:{}/hello", ctx.port)),
            "{node}: {images}"
        );
    }
}

fn configmap(ctx: &Ctx) {
    let out = kubectl(
        CP,
        &[
            "-n",
            "kube-public",
            "get",
            "configmap",
            "local-registry-hosting",
            "-o",
            "jsonpath={.data.localRegistryHosting\\.v1}",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let data: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        data["host"].as_str(),
        Some(format!("localhost:{}", ctx.port).as_str())
    );
    assert_eq!(
        data["hostFromClusterNetwork"].as_str(),
        Some("kindred-registry:5000")
    );
}

fn another_port_is_refused(ctx: &Ctx) {
    let other = free_port().to_string();
    fails_early(
        ctx,
        REFUSED[1],
        &[
            "create",
            "cluster",
            "--name",
            REFUSED[1],
            "--registry-port",
            &other,
        ],
        None,
        &[
            &format!("already runs on 127.0.0.1:{}", ctx.port),
            &format!("for the clusters {CLUSTER}"),
            "nothing was created",
        ],
    );
    // Nor is it deleted while a cluster uses it.
    let out = ctx.kindred(&["delete", "registry"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("used by the clusters {CLUSTER}")),
        "{}",
        text(&out)
    );
    assert!(registry_exists());
}

fn deleted_with_the_last_cluster(ctx: &Ctx) {
    let out = ctx.ok(&["delete", "cluster", "--name", CLUSTER], None);
    assert!(
        out.contains("and the registry kindred-registry, which no cluster uses any more"),
        "{out}"
    );
    assert!(!registry_exists(), "the registry remains");
    assert!(!volume_exists(), "the registry's volume remains");
}

fn kept_registry_outlives_its_cluster(ctx: &Ctx) {
    let config = format!(
        "kind: Cluster\napiVersion: kindred.dev/v1alpha4\nregistry:\n  port: {}\n  keep: true\n",
        ctx.port
    );
    ctx.ok(
        &[
            "create", "cluster", "--name", KEPT, "--config", "-", "--wait", "3m",
        ],
        Some(&config),
    );
    assert_eq!(registry_label(kindred::registry::KEEP_LABEL), "true");
    // `start cluster` starts the shared registry when it was stopped.
    let out = run("docker", &["stop", REGISTRY]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ctx.ok(&["start", "cluster", "--name", KEPT, "--wait", "0"], None);
    assert!(
        out.contains("Starting the registry kindred-registry"),
        "{out}"
    );
    assert_eq!(inspect_registry("{{.State.Status}}"), "running");
    // The volume went with the first registry: push again, run it here.
    push(&ctx.image());
    let out = kubectl(
        KEPT_CP,
        &["apply", "-f", "-"],
        Some(&hello_pod("hello-kept", KEPT_CP, &ctx.image(), "Always")),
    );
    assert!(out.status.success(), "{}", text(&out));
    wait_running(KEPT_CP, "hello-kept");

    let out = ctx.ok(&["delete", "cluster", "--name", KEPT], None);
    assert!(!out.contains("and the registry"), "{out}");
    assert_eq!(inspect_registry("{{.State.Status}}"), "running");
    let catalog = run(
        "curl",
        &["-sf", &format!("http://127.0.0.1:{}/v2/_catalog", ctx.port)],
    );
    assert!(
        String::from_utf8_lossy(&catalog.stdout).contains("\"hello\""),
        "{}",
        text(&catalog)
    );
    let out = ctx.ok(&["delete", "registry"], None);
    assert!(
        out.contains("Deleting the registry kindred-registry"),
        "{out}"
    );
    assert!(!registry_exists(), "the kept registry remains");
    assert!(!volume_exists(), "the registry's volume remains");
    // Nothing left to delete.
    let out = ctx.ok(&["delete", "registry"], None);
    assert!(out.contains("no registry, nothing to do"), "{out}");
}
