//! `load` sends a node only the layers it lacks, end to end against the real Docker daemon:
//! an image of three layers is loaded into a 1 + 1 cluster, rebuilt with one changed top
//! layer and loaded again, and kindred's own output must say that only that layer went to each
//! node; the same for an archive on disk (`load image-archive`). containerd must then hold the
//! new image, unpacked, on every node.

use std::path::PathBuf;

use kindred::provider::Provider;
use kindred_e2e::image::build_image;
use kindred_e2e::{docker_out, output, stdout_ok};

const CLUSTER: &str = "load-e2e";
const CP: &str = "load-e2e-control-plane";
const WORKER: &str = "load-e2e-worker";
const APP: &str = "load-e2e/app:v1";
const ARCHIVED: &str = "load-e2e/app:archived";

/// Two big layers that never change and a small top layer that does.
const DOCKERFILE: &str = "FROM scratch\nCOPY big /big\nCOPY mid /mid\nCOPY top /top\n";

struct Ctx {
    dir: tempfile::TempDir,
    /// The two layers that stay (8 MiB and 2 MiB).
    big: Vec<u8>,
    mid: Vec<u8>,
    kubeconfig: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// Runs kindred, asserts success, returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let exe = env!("CARGO_BIN_EXE_kindred");
        let out = output(&mut kindred_e2e::kindred(exe, args, &self.kubeconfig), None);
        let stdout = stdout_ok(&out, format_args!("kindred {}", args.join(" ")));
        (stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// The app image with `top` as its top layer's content.
    fn build(&self, tag: &str, top: &str) {
        let files = [
            ("big", &self.big[..]),
            ("mid", &self.mid[..]),
            ("top", top.as_bytes()),
        ];
        let old = kindred_e2e::run("docker", &["image", "inspect", "-f", "{{.Id}}", tag], None);
        self.rt
            .block_on(build_image(tag, DOCKERFILE, &files, "load"));
        // The image this one replaced is left without a name: remove it.
        if old.status.success() {
            let old = String::from_utf8_lossy(&old.stdout);
            let _ = kindred_e2e::run("docker", &["rmi", old.trim()], None);
        }
    }

    fn cleanup(&self) {
        let exe = env!("CARGO_BIN_EXE_kindred");
        let delete = ["delete", "cluster", "--name", CLUSTER];
        let _ = output(
            &mut kindred_e2e::kindred(exe, &delete, &self.kubeconfig),
            None,
        );
        self.rt.block_on(async {
            let docker = kindred_e2e::docker().await;
            for image in [APP, ARCHIVED] {
                docker.remove_image(image).await.expect("remove test image");
            }
        });
    }
}

/// `len` bytes no other image on the nodes shares (xorshift from the clock: no two runs alike).
fn noise(len: usize) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The per-node transfer line kindred prints under its loading step.
fn sent_line<'a>(stderr: &'a str, node: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains(&format!("{node}: ")) && l.contains("layers sent"))
        .unwrap_or_else(|| panic!("no transfer line for {node} in:\n{stderr}"))
}

/// The image ID the node's CRI holds under `name`.
fn node_image_id(node: &str, name: &str) -> String {
    let script = format!("crictl inspecti -o go-template --template '{{{{.status.id}}}}' {name}");
    kindred_e2e::node_sh(node, &script).trim().to_string()
}

#[test]
fn only_missing_layers_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        kubeconfig: dir.path().join("kubeconfig"),
        dir,
        big: noise(8 << 20),
        mid: noise(2 << 20),
        rt: tokio::runtime::Runtime::new().unwrap(),
    };
    kindred_e2e::cluster::cleaned_up(&[CLUSTER], || ctx.cleanup(), || (), || run(&ctx));
}

fn run(ctx: &Ctx) {
    let config = kindred_e2e::cluster::ONE_PLUS_ONE;
    let exe = env!("CARGO_BIN_EXE_kindred");
    let create = ["create", "cluster", "--name", CLUSTER, "--config", "-"];
    let created = output(
        &mut kindred_e2e::kindred(exe, &create, &ctx.kubeconfig),
        Some(config),
    );
    stdout_ok(&created, "create cluster");

    // First load: everything.
    ctx.build(APP, "one");
    let (out, err) = ctx.ok(&["load", "docker-image", APP, "--name", CLUSTER]);
    assert_eq!(out, format!("{CP}: {APP} loaded\n{WORKER}: {APP} loaded\n"));
    for node in [CP, WORKER] {
        let line = sent_line(&err, node);
        assert!(line.contains("3 of 3 layers sent (10.5 MB)"), "{line}");
    }

    // One changed top layer: only that layer travels.
    ctx.build(APP, "two");
    let (out, err) = ctx.ok(&["load", "docker-image", APP, "--name", CLUSTER]);
    assert_eq!(out, format!("{CP}: {APP} loaded\n{WORKER}: {APP} loaded\n"));
    let id = docker_out(&["image", "inspect", "-f", "{{.Id}}", APP]);
    for node in [CP, WORKER] {
        let line = sent_line(&err, node);
        // The top layer is a tar of one 3-byte file: 2 kB.
        assert!(
            line.contains("1 of 3 layers sent (2.0 kB; 2 already there, 10.5 MB)"),
            "{line}"
        );
        assert_eq!(node_image_id(node, &format!("docker.io/{APP}")), id.trim());
    }

    // An archive on disk, rebuilt the same way.
    ctx.build(ARCHIVED, "three");
    let path = ctx.dir.path().join("app.tar");
    docker_out(&["save", ARCHIVED, "-o", path.to_str().unwrap()]);
    let args = [
        "load",
        "image-archive",
        path.to_str().unwrap(),
        "--name",
        CLUSTER,
    ];
    let (out, err) = ctx.ok(&args);
    // Archives name their images as containerd does.
    let full = format!("docker.io/{ARCHIVED}");
    assert_eq!(
        out,
        format!("{CP}: {full} loaded\n{WORKER}: {full} loaded\n")
    );
    let id = docker_out(&["image", "inspect", "-f", "{{.Id}}", ARCHIVED]);
    for node in [CP, WORKER] {
        let line = sent_line(&err, node);
        assert!(
            line.contains("1 of 3 layers sent (2.0 kB; 2 already there"),
            "{line}"
        );
        assert_eq!(
            node_image_id(node, &format!("docker.io/{ARCHIVED}")),
            id.trim()
        );
    }
}
