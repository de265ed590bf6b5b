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

use std::io::Write;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kindred");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kindred(args, stdin);
        assert!(
            out.status.success(),
            "kindred {} failed:\n{}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
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

fn text(out: &Output) -> String {
    kindred_e2e::text(out)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

fn node_sh(node: &str, script: &str) -> String {
    let out = run("docker", &["exec", node, "bash", "-c", script]);
    assert!(
        out.status.success(),
        "`{script}` on {node} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A static HTTP server that says hello on its log at start.
const HELLO_GO: &str = r#"package main

import (
	"fmt"
	"net/http"
)

func main() {
	fmt.Println("registry hello listening on :8080")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	if err := http.ListenAndServe(":8080", nil); err != nil {
		panic(err)
	}
}
"#;

fn build_hello_binary(dir: &Path) -> Vec<u8> {
    let src = dir.join("hello-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.go"), HELLO_GO).unwrap();
    std::fs::write(src.join("go.mod"), "module hello\n\ngo 1.21\n").unwrap();
    let out = Command::new("go")
        .args(["build", "-trimpath", "-ldflags=-s -w", "-o", "hello", "."])
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("the test image needs Go (go build)");
    assert!(out.status.success(), "go build failed:\n{}", text(&out));
    std::fs::read(src.join("hello")).unwrap()
}

/// `FROM scratch` + the binary, through Docker's build API; `variant` (a label) makes images
/// with distinct IDs from the same binary.
async fn build_image(binary: &[u8], tag: &str, variant: &str) {
    let dockerfile = "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n";
    let mut context = tar::Builder::new(Vec::new());
    for (name, data) in [("Dockerfile", dockerfile.as_bytes()), ("hello", binary)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        context.append_data(&mut header, name, data).unwrap();
    }
    let context = context.into_inner().unwrap();
    let docker = kindred_e2e::docker().await;
    let opts = bollard::query_parameters::BuildImageOptions {
        t: Some(tag.to_string()),
        rm: true,
        labels: Some([("io.kindred.e2e.variant".to_string(), variant.to_string())].into()),
        ..Default::default()
    };
    let mut progress =
        docker
            .client()
            .build_image(opts, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    while let Some(msg) = progress.next().await {
        let msg = msg.unwrap_or_else(|e| panic!("building {tag} failed: {e}\n{log}"));
        if let Some(err) = msg.error_detail.and_then(|d| d.message) {
            panic!("building {tag} failed: {err}\n{log}");
        }
        log.push_str(msg.stream.as_deref().unwrap_or_default());
    }
}

/// `docker push` from the host: Docker treats localhost registries as plain HTTP.
fn push(image: &str) {
    let out = run("docker", &["push", image]);
    assert!(out.status.success(), "docker push {image}:\n{}", text(&out));
}

fn pod(name: &str, node: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  containers:
  - name: hello
    image: {image}
    imagePullPolicy: Always
"
    )
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
    ctx.cleanup();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| run_subtests(&ctx)));
    if result.is_err() && std::env::var_os("KINDRED_ARTIFACTS").is_some() {
        for name in [CLUSTER, KEPT] {
            let _ = ctx.kindred(&["export", "logs", "--name", name], None);
        }
    }
    ctx.cleanup();
    assert_eq!(kindred_e2e::containers_of(CLUSTER), "", "nodes remain");
    assert_eq!(kindred_e2e::containers_of(KEPT), "", "nodes remain");
    assert!(!registry_exists(), "the registry remains");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

type Subtest = fn(&Ctx);

fn subtests(ctx: &Ctx, list: &[(&str, Subtest)], failed: &mut Vec<String>) {
    for (name, subtest) in list {
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

fn run_subtests(ctx: &Ctx) {
    let started = Instant::now();
    let mut failed = Vec::new();
    subtests(
        ctx,
        &[("bad requests fail before anything is created", bad_requests)],
        &mut failed,
    );

    // The cluster comes up while the image builds.
    let port = ctx.port.to_string();
    let kubeconfig = ctx.kubeconfig.clone();
    let create = std::thread::spawn(move || {
        let config = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n";
        let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
            .args([
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
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    });
    let binary = build_hello_binary(ctx.dir.path());
    ctx.rt
        .block_on(build_image(&binary, &ctx.image(), "registry-e2e"));
    let created = create.join().unwrap();
    assert!(
        created.status.success(),
        "create {CLUSTER} failed:\n{}",
        text(&created)
    );
    eprintln!("setup took {:.0?}", started.elapsed());

    subtests(
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
            Some(&pod(name, node, &ctx.image())),
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
        Some(&pod("hello-kept", KEPT_CP, &ctx.image())),
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
