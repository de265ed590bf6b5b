//! The daily loop end to end, against the real Docker daemon: build an image locally, load it
//! into a cluster, run it, look at the cluster from scripts, export its logs. One 1 control
//! plane + 1 worker cluster serves every subtest (creating it is the slow part); the subtests
//! run in order inside one test function so the cluster is deleted at the end whatever
//! happens, and a failing subtest does not hide the others.

use kindred::provider::Provider;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

const CLUSTER: &str = "daily-e2e";
const CP: &str = "daily-e2e-control-plane";
const WORKER: &str = "daily-e2e-worker";
/// Built from scratch with a static Go HTTP server.
const HELLO: &str = "daily-e2e/hello:v1";
/// Another name for the same image.
const HELLO_V2: &str = "daily-e2e/hello:v2";
/// Same binary, another label: another image ID, for loading into one node.
const HELLO_ONE: &str = "daily-e2e/hello-one:v1";
/// Another variant, loaded from an archive.
const HELLO_ARCHIVE: &str = "daily-e2e/hello-archive:v1";

const CONFIG: &str = kindred_e2e::cluster::ONE_PLUS_ONE;

struct Ctx {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Ctx {
    fn kindred(&self, args: &[&str]) -> Output {
        self.kindred_env(args, &[])
    }

    fn kindred_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let exe = env!("CARGO_BIN_EXE_kindred");
        let mut cmd = kindred_e2e::kindred(exe, args, &self.kubeconfig);
        output(cmd.envs(envs.iter().copied()), None)
    }

    /// Runs kindred, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(
            &self.kindred(args),
            format_args!("kindred {}", args.join(" ")),
        )
    }

    fn cleanup(&self) {
        let _ = self.kindred(&["delete", "cluster", "--name", CLUSTER]);
        self.rt.block_on(async {
            let docker = kindred_e2e::docker().await;
            for image in [HELLO, HELLO_V2, HELLO_ONE, HELLO_ARCHIVE] {
                docker.remove_image(image).await.expect("remove test image");
            }
        });
    }
}

use kindred_e2e::image::{build_go_binary, build_hello_image, build_image, hello_go, hello_pod};
use kindred_e2e::{docker_out, output, stdout_ok, text};

/// kubectl on the control plane (the host has none).
fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    kindred_e2e::node_kubectl(CP, args, stdin)
}

/// `crictl images` on a node.
fn node_images(node: &str) -> String {
    docker_out(&["exec", node, "crictl", "images"])
}

#[test]
fn the_daily_loop() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        kubeconfig: dir.path().join("kubeconfig"),
        dir,
        rt: tokio::runtime::Runtime::new().unwrap(),
    };
    let on_failure = || {
        // Logs of the failed run, when a CI job keeps $KINDRED_ARTIFACTS.
        if std::env::var_os("KINDRED_ARTIFACTS").is_some() {
            let _ = ctx.kindred(&["export", "logs", "--name", CLUSTER]);
        }
    };
    kindred_e2e::cluster::cleaned_up(
        &[CLUSTER],
        || ctx.cleanup(),
        on_failure,
        || run_subtests(&ctx),
    );
}

fn run_subtests(ctx: &Ctx) {
    let started = Instant::now();
    // The cluster comes up while the image builds.
    let kubeconfig = ctx.kubeconfig.clone();
    let create = std::thread::spawn(move || {
        let args = [
            "create", "cluster", "--name", CLUSTER, "--config", "-", "--wait", "3m",
        ];
        let exe = env!("CARGO_BIN_EXE_kindred");
        output(
            &mut kindred_e2e::kindred(exe, &args, &kubeconfig),
            Some(CONFIG),
        )
    });
    let binary = build_go_binary(ctx.dir.path(), &hello_go("daily"));
    ctx.rt.block_on(async {
        build_hello_image(&binary, HELLO, "hello").await;
        build_hello_image(&binary, HELLO_ONE, "one").await;
        build_hello_image(&binary, HELLO_ARCHIVE, "archive").await;
    });
    let created = create.join().unwrap();
    stdout_ok(&created, format_args!("create {CLUSTER}"));
    eprintln!("setup took {:.0?}", started.elapsed());

    let subtests: [kindred_e2e::Subtest<Ctx>; 7] = [
        ("get nodes and clusters for scripts", get_for_scripts),
        ("load docker-image, run it, load again", load_docker_image),
        ("load into one node with --nodes", load_into_one_node),
        ("load image-archive", load_image_archive),
        ("bad input is explained", bad_input),
        ("export logs", export_logs),
        (
            "export logs from a stopped node",
            export_logs_from_a_stopped_node,
        ),
    ];
    kindred_e2e::run_subtests(ctx, &subtests);
}

fn get_for_scripts(ctx: &Ctx) {
    let clusters: serde_json::Value =
        serde_json::from_str(&ctx.ok(&["get", "clusters", "-o", "json"])).unwrap();
    assert!(
        clusters
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str() == Some(CLUSTER)),
        "{clusters}"
    );
    // The default output stays one name per line.
    assert_eq!(
        ctx.ok(&["get", "nodes", "--name", CLUSTER]),
        format!("{CP}\n{WORKER}\n")
    );

    let json: serde_json::Value =
        serde_json::from_str(&ctx.ok(&["get", "nodes", "--name", CLUSTER, "-o", "json"])).unwrap();
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&ctx.ok(&["get", "nodes", "--name", CLUSTER, "-o", "yaml"])).unwrap();
    let version = kindred_e2e::host_default().version;
    for (i, (name, role)) in [(CP, "control-plane"), (WORKER, "worker")]
        .into_iter()
        .enumerate()
    {
        let ip = docker_ip(name);
        let j = &json[i];
        assert_eq!(j["name"], name, "{json}");
        assert_eq!(j["cluster"], CLUSTER);
        assert_eq!(j["role"], role);
        assert_eq!(j["status"], "running");
        assert_eq!(j["ip"], ip.as_str());
        assert_eq!(j["kubernetesVersion"], version);
        assert!(j["image"].as_str().unwrap().len() > 5, "{json}");
        let y = &yaml[i];
        assert_eq!(y["name"].as_str(), Some(name));
        assert_eq!(y["role"].as_str(), Some(role));
        assert_eq!(y["ip"].as_str(), Some(ip.as_str()));
    }
    let wide = ctx.ok(&["get", "nodes", "--name", CLUSTER, "-o", "wide"]);
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(lines.len(), 3, "{wide}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("IP"),
        "{wide}"
    );
    for (line, (name, role)) in lines[1..]
        .iter()
        .zip([(CP, "control-plane"), (WORKER, "worker")])
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], name, "{wide}");
        assert_eq!(cols[2], role, "{wide}");
        assert_eq!(cols[4], docker_ip(name), "{wide}");
        assert_eq!(cols[6], version, "{wide}");
    }
}

/// The node's address on the kindred network, as the docker CLI sees it.
fn docker_ip(node: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"kindred\").IPAddress}}",
            node,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_running(pod: &str) {
    let start = Instant::now();
    loop {
        let out = kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"], None);
        if String::from_utf8_lossy(&out.stdout) == "Running" {
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let describe = kubectl(&["describe", "pod", pod], None);
            panic!("pod {pod} is not Running after 120s:\n{}", text(&describe));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn load_docker_image(ctx: &Ctx) {
    let out = ctx.ok(&["load", "docker-image", HELLO, "--name", CLUSTER]);
    assert_eq!(
        out,
        format!("{CP}: {HELLO} loaded\n{WORKER}: {HELLO} loaded\n")
    );
    // Pods on both nodes from the loaded image, never pulled.
    for (pod, node) in [("hello-cp", CP), ("hello-worker", WORKER)] {
        let applied = kubectl(
            &["apply", "-f", "-"],
            Some(&hello_pod(pod, node, HELLO, "Never")),
        );
        assert!(applied.status.success(), "{}", text(&applied));
    }
    wait_running("hello-cp");
    wait_running("hello-worker");

    // Again: nothing to do anywhere.
    let out = ctx.ok(&["load", "docker-image", HELLO, "--name", CLUSTER]);
    assert_eq!(
        out,
        format!("{CP}: {HELLO} already present\n{WORKER}: {HELLO} already present\n")
    );

    // A new name for the same image is only a tag on the nodes.
    docker_out(&["tag", HELLO, HELLO_V2]);
    let out = ctx.ok(&["load", "docker-image", HELLO_V2, "--name", CLUSTER]);
    let full = format!("docker.io/{HELLO_V2}");
    assert_eq!(
        out,
        format!("{CP}: {HELLO_V2} retagged ({full})\n{WORKER}: {HELLO_V2} retagged ({full})\n")
    );
    for node in [CP, WORKER] {
        let images = node_images(node);
        assert!(
            images.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&"docker.io/daily-e2e/hello") && cols.get(1) == Some(&"v2")
            }),
            "{node} lacks {HELLO_V2}:\n{images}"
        );
    }
}

fn load_into_one_node(ctx: &Ctx) {
    let load_into_worker = || {
        let args = [
            "load",
            "docker-image",
            HELLO_ONE,
            "--name",
            CLUSTER,
            "--nodes",
            WORKER,
        ];
        ctx.ok(&args)
    };
    let out = load_into_worker();
    assert_eq!(out, format!("{WORKER}: {HELLO_ONE} loaded\n"));
    assert!(node_images(WORKER).contains("daily-e2e/hello-one"));
    assert!(
        !node_images(CP).contains("daily-e2e/hello-one"),
        "--nodes {WORKER} loaded into {CP} too"
    );

    // Rebuilt under the same name (the daily loop): the new image replaces the old one.
    let old_id = image_id(ctx, HELLO_ONE);
    ctx.rt.block_on(build_image(
        HELLO_ONE,
        &format!("FROM {HELLO_ONE}\nLABEL rebuilt=yes\n"),
        &[],
        "one-rebuilt",
    ));
    let new_id = image_id(ctx, HELLO_ONE);
    assert_ne!(old_id, new_id);
    let out = load_into_worker();
    assert_eq!(out, format!("{WORKER}: {HELLO_ONE} loaded\n"));
    let inspected = Command::new("docker")
        .args([
            "exec", WORKER, "crictl", "inspecti", "-o", "json", HELLO_ONE,
        ])
        .output()
        .unwrap();
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["status"]["id"], new_id.as_str());

    // By (short) ID: no name to give it, the node still gets the image.
    let short = &new_id[7..19];
    let out = ctx.ok(&[
        "load",
        "docker-image",
        short,
        "--name",
        CLUSTER,
        "--nodes",
        CP,
    ]);
    assert_eq!(out, format!("{CP}: {short} loaded\n"));
    docker_out(&["exec", CP, "crictl", "inspecti", &new_id]);
    let out = ctx.ok(&["load", "docker-image", short, "--name", CLUSTER]);
    assert_eq!(
        out,
        format!("{CP}: {short} already present\n{WORKER}: {short} already present\n")
    );
}

fn image_id(ctx: &Ctx, image: &str) -> String {
    ctx.rt.block_on(async {
        kindred_e2e::docker()
            .await
            .image_id(image)
            .await
            .unwrap()
            .expect("image exists")
    })
}

fn load_image_archive(ctx: &Ctx) {
    let archive = ctx.dir.path().join("hello-archive.tar");
    ctx.rt.block_on(async {
        let docker = kindred_e2e::docker().await;
        let mut stream = docker.export_images(&[HELLO_ARCHIVE.to_string()]);
        let mut file = std::fs::File::create(&archive).unwrap();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.expect("docker save")).unwrap();
        }
    });
    let path = archive.to_str().unwrap();
    let full = format!("docker.io/{HELLO_ARCHIVE}");
    let out = ctx.ok(&["load", "image-archive", path, "--name", CLUSTER]);
    assert_eq!(
        out,
        format!("{CP}: {full} loaded\n{WORKER}: {full} loaded\n")
    );
    for node in [CP, WORKER] {
        assert!(node_images(node).contains("daily-e2e/hello-archive"));
    }
    let out = ctx.ok(&["load", "image-archive", path, "--name", CLUSTER]);
    assert_eq!(
        out,
        format!("{CP}: {full} already present\n{WORKER}: {full} already present\n")
    );
}

fn fails_with(ctx: &Ctx, args: &[&str], expected: &[&str]) {
    let out = ctx.kindred(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kindred {} succeeded",
        args.join(" ")
    );
    assert_eq!(out.status.code(), Some(1));
    for e in expected {
        assert!(
            err.contains(e),
            "kindred {}: {err:?} lacks {e:?}",
            args.join(" ")
        );
    }
}

fn bad_input(ctx: &Ctx) {
    fails_with(
        ctx,
        &[
            "load",
            "docker-image",
            "daily-e2e/no-such-image:v9",
            "--name",
            CLUSTER,
        ],
        &[
            "image daily-e2e/no-such-image:v9 not found in the local Docker",
            "docker pull",
            "docker build",
        ],
    );
    fails_with(
        ctx,
        &[
            "load",
            "docker-image",
            HELLO,
            "--name",
            CLUSTER,
            "--nodes",
            "daily-e2e-worker7",
        ],
        &[
            "no node named daily-e2e-worker7",
            &format!("its nodes are: {CP}, {WORKER}"),
        ],
    );
    fails_with(
        ctx,
        &[
            "load",
            "image-archive",
            "/no/such/archive.tar",
            "--name",
            CLUSTER,
        ],
        &["image archive /no/such/archive.tar does not exist"],
    );
    let not_tar = ctx.dir.path().join("not-an-archive.tar");
    std::fs::write(&not_tar, "just text").unwrap();
    fails_with(
        ctx,
        &[
            "load",
            "image-archive",
            not_tar.to_str().unwrap(),
            "--name",
            CLUSTER,
        ],
        &["is not a tar archive", "docker save"],
    );
    fails_with(
        ctx,
        &["load", "docker-image", HELLO, "--name", "daily-e2e-nope"],
        &["no cluster named daily-e2e-nope", CLUSTER],
    );
    // Refused before its default (temporary) directory is made: nothing left behind.
    let tmp = tempfile::tempdir().unwrap();
    let out = ctx.kindred_env(
        &["export", "logs", "--name", "daily-e2e-nope"],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no cluster named daily-e2e-nope"),
        "{}",
        text(&out)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "export logs left {left:?}");
}

fn non_empty(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    assert!(!text.trim().is_empty(), "{} is empty", path.display());
    text
}

fn export_logs(ctx: &Ctx) {
    let dir = ctx.dir.path().join("logs");
    let printed = ctx.ok(&["export", "logs", dir.to_str().unwrap(), "--name", CLUSTER]);
    assert_eq!(printed.trim(), dir.to_str().unwrap());
    let errors = std::fs::read_to_string(dir.join("errors.txt")).unwrap_or_default();
    assert_eq!(errors, "", "nothing should fail on a healthy cluster");
    assert!(non_empty(&dir.join("kindred-version.txt")).contains("kindred "));
    let info: serde_json::Value =
        serde_json::from_str(&non_empty(&dir.join("docker-info.json"))).unwrap();
    assert!(info["ServerVersion"].is_string(), "{info}");
    for node in [CP, WORKER] {
        let n = dir.join(node);
        assert!(non_empty(&n.join("journal.log")).contains("systemd"));
        assert!(non_empty(&n.join("kubelet.log")).contains("kubelet"));
        assert!(non_empty(&n.join("containerd.log")).contains("containerd"));
        assert!(non_empty(&n.join("crictl-ps.txt")).contains("hello"));
        assert!(non_empty(&n.join("crictl-images.txt")).contains("daily-e2e/hello"));
        let inspect: serde_json::Value =
            serde_json::from_str(&non_empty(&n.join("inspect.json"))).unwrap();
        assert_eq!(inspect["Name"], format!("/{node}"));
        non_empty(&n.join("container.log"));
        assert_eq!(
            non_empty(&n.join("kubernetes-version.txt")).trim(),
            kindred_e2e::host_default().version
        );
        non_empty(&n.join("kubeadm.conf"));
    }
    // The hello pod's own log, as kubelet keeps it under /var/log/pods.
    let pods = dir.join(WORKER).join("var/log/pods");
    let pod_dir = std::fs::read_dir(&pods)
        .unwrap_or_else(|e| panic!("{}: {e}", pods.display()))
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("default_hello-worker_")
        })
        .unwrap_or_else(|| panic!("no hello-worker pod log under {}", pods.display()));
    assert!(non_empty(&pod_dir.path().join("hello/0.log")).contains("daily hello listening"));
    assert!(dir.join(CP).join("var/log/containers").is_dir());

    // With $KINDRED_ARTIFACTS and no directory, a per-cluster directory under it.
    let artifacts = ctx.dir.path().join("artifacts");
    let art = artifacts.to_str().unwrap();
    let out = ctx.kindred_env(
        &["export", "logs", "--name", CLUSTER],
        &[("KINDRED_ARTIFACTS", art)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let expected = artifacts.join(format!("kindred-logs-{CLUSTER}"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected.to_str().unwrap()
    );
    non_empty(&expected.join(WORKER).join("kubelet.log"));
}

/// A half-broken cluster is when logs matter most: with the worker stopped, everything that can
/// be collected still is, and errors.txt says what could not.
fn export_logs_from_a_stopped_node(ctx: &Ctx) {
    docker_out(&["stop", "-t", "5", WORKER]);
    let dir = ctx.dir.path().join("logs-broken");
    ctx.ok(&["export", "logs", dir.to_str().unwrap(), "--name", CLUSTER]);
    non_empty(&dir.join(CP).join("journal.log"));
    non_empty(&dir.join(WORKER).join("inspect.json"));
    non_empty(&dir.join(WORKER).join("kubernetes-version.txt"));
    assert!(dir.join(WORKER).join("var/log/pods").is_dir());
    let errors = non_empty(&dir.join("errors.txt"));
    assert!(
        errors.contains(&format!("{WORKER}/journal.log")),
        "{errors}"
    );
    assert!(!errors.contains(&format!("{CP}/")), "{errors}");
    assert!(!dir.join(WORKER).join("journal.log").exists());
}

/// The stdin plumbing under `load`: every byte arrives and EOF follows; a command that exits
/// without reading everything neither hangs kindred nor hides its exit code.
#[test]
fn exec_streams_stdin_and_survives_an_early_exit() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = kindred_e2e::docker().await;
        let image = kindred_e2e::node_image();
        kindred_e2e::require_image(&docker, &image).await;
        let name = "daily-e2e-exec";
        docker.remove_container(name).await.unwrap();
        let spec = kindred::provider::ContainerSpec {
            name: name.into(),
            image,
            entrypoint: Some(vec!["sleep".into(), "300".into()]),
            labels: [(kindred_e2e::E2E_LABEL.to_string(), "true".to_string())].into(),
            ..Default::default()
        };
        docker.run(&spec).await.unwrap();
        let result = AssertUnwindSafe(async {
            // 64 MiB in 1 MiB chunks.
            let chunks = || {
                futures_util::stream::iter(
                    (0..64).map(|_| Ok(bytes::Bytes::from(vec![b'x'; 1 << 20]))),
                )
                .boxed()
            };
            let out = docker
                .exec_with_input(name, &["sh", "-c", "wc -c"], chunks())
                .await
                .unwrap();
            assert_eq!((out.code, out.stdout.trim()), (0, "67108864"), "{out:?}");

            let started = Instant::now();
            let out = docker
                .exec_with_input(
                    name,
                    &["sh", "-c", "head -c 10 >/dev/null; echo bye >&2; exit 3"],
                    chunks(),
                )
                .await
                .unwrap();
            assert_eq!(out.code, 3, "{out:?}");
            assert_eq!(out.stderr.trim(), "bye");
            assert!(started.elapsed() < Duration::from_secs(30));

            // A source that breaks midway: the command sees EOF and kindred the error.
            let broken = futures_util::stream::iter(vec![
                Ok(bytes::Bytes::from_static(b"abc")),
                Err(std::io::Error::other("source broke")),
            ])
            .boxed();
            let out = docker
                .exec_with_input(name, &["sh", "-c", "wc -c"], broken)
                .await;
            let err = out.expect_err("a broken source is an error").to_string();
            assert!(err.contains("source broke"), "{err}");
        })
        .catch_unwind()
        .await;
        docker.remove_container(name).await.unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}
