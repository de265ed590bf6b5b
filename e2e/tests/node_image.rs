//! Smoke test of a built node image against the real Docker daemon: the node boots systemd
//! (privileged where the host allows, the restricted profile otherwise), containerd runs with
//! every image kubeadm needs preloaded, and kubelet runs a static pod from a preloaded image
//! without pulling anything.

use kindred::provider::Provider;
use std::time::Duration;

use kindred_e2e::{docker, node_image, require_image, with_node, Node};
use kindred_node_image::bom::{self, Kind, LABEL_BOM_SHA256, LABEL_KUBE_VERSION};

const JOURNALS: &str =
    "systemctl --failed --no-legend; journalctl -u containerd -u kubelet --no-pager | tail -40";

async fn wait_for_systemd(node: &Node) {
    let state = node
        .wait_until(
            "systemd finished booting",
            Duration::from_secs(90),
            "s=$(systemctl is-system-running); echo $s; [ \"$s\" = running ] || [ \"$s\" = degraded ]",
            JOURNALS,
        )
        .await;
    let failed = node.sh("systemctl --failed --no-legend --plain").await;
    assert_eq!(
        state.trim(),
        "running",
        "systemd is {state}; failed units:\n{failed}"
    );
}

#[tokio::test]
async fn node_boots_runs_containerd_and_has_every_kubeadm_image() {
    let image = node_image();
    with_node(&image, "kindred-e2e-smoke", |node| async move {
        eprintln!("node started with the {} profile", node.security.name());
        wait_for_systemd(&node).await;
        node.wait_until("containerd is active", Duration::from_secs(30), "systemctl is-active containerd", JOURNALS)
            .await;

        let version = node.sh("cat /kind/version").await.trim().to_string();
        assert_eq!(node.sh("kubeadm version -o short").await.trim(), version);
        assert_eq!(node.sh("kubelet --version").await.trim(), format!("Kubernetes {version}"));

        let wanted = node.sh(&format!("kubeadm config images list --kubernetes-version {version}")).await;
        let have = node.sh("ctr -n k8s.io images ls -q").await;
        // crictl is configured for containerd (no endpoint guessing) and sees the same images.
        let crictl = node.exec(&["crictl", "images", "-o", "json"]).await;
        assert_eq!(crictl.code, 0, "crictl images failed: {}", crictl.stderr);
        assert!(!crictl.stderr.contains("does not exist"), "crictl has no config: {}", crictl.stderr);
        for img in wanted.lines().filter(|l| !l.trim().is_empty()) {
            assert!(have.lines().any(|l| l == img), "{img} is not preloaded; containerd has:\n{have}");
            assert!(crictl.stdout.contains(&format!("\"{img}\"")), "crictl does not list {img}");
        }

        // kubelet, standalone: a static etcd pod from the preloaded image, never pulled.
        let etcd = wanted.lines().find(|l| l.contains("/etcd:")).expect("kubeadm lists etcd").to_string();
        node.sh(KUBELET_STANDALONE).await;
        node.sh(&format!("cat > /etc/kubernetes/manifests/smoke-etcd.yaml <<'END'\n{}END", static_etcd_pod(&etcd)))
            .await;
        node.sh("systemctl daemon-reload && systemctl start kubelet").await;
        let health = node
            .wait_until(
                "the static etcd pod answers",
                Duration::from_secs(120),
                // etcd's /health over bash's /dev/tcp: the node has no HTTP client, and the
                // image's etcdctl is optional.
                "bash -c 'exec 3<>/dev/tcp/127.0.0.1/23790 && printf \"GET /health HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3'",
                JOURNALS,
            )
            .await;
        assert!(health.contains(r#""health":"true""#), "{health}");
        let pulls = node.sh("journalctl -u containerd --no-pager | grep -c 'PullImage' || true").await;
        assert_eq!(pulls.trim(), "0", "containerd pulled an image; everything must be preloaded");
        // The kubelet log line a node without a cluster is expected to show, not a cgroup error.
        let kubelet_log = node.sh("journalctl -u kubelet --no-pager").await;
        assert!(!kubelet_log.contains("failed to run Kubelet"), "kubelet failed to run:\n{kubelet_log}");
    })
    .await;
}

/// The default node image (which must be built) and the BOM stored in it.
async fn default_image_and_bom() -> (kindred::provider::Docker, String, bom::Bom) {
    let docker = docker().await;
    let image = node_image();
    require_image(&docker, &image).await;
    let bom = kindred_node_image::read_bom(&docker, &image)
        .await
        .expect("read the BOM");
    (docker, image, bom)
}

#[tokio::test]
async fn bom_lists_every_component_with_sha256_and_matches_the_label() {
    let (docker, image, bom) = default_image_and_bom().await;
    let labels = docker.image_labels(&image).await.expect("labels");
    assert_eq!(
        labels.get(LABEL_BOM_SHA256),
        Some(&bom.to_json().1),
        "label and BOM content disagree"
    );
    assert_eq!(
        labels.get(LABEL_KUBE_VERSION),
        Some(&bom.kubernetes_version)
    );
    for c in &bom.components {
        assert!(
            c.sha256.len() == 64 && c.sha256.chars().all(|ch| ch.is_ascii_hexdigit()),
            "{} has no sha256: {:?}",
            c.name,
            c.sha256
        );
    }
    let binaries: Vec<&str> = bom
        .components
        .iter()
        .filter(|c| c.kind == Kind::Binary)
        .map(|c| c.name.as_str())
        .collect();
    for b in [
        "kubeadm",
        "kubelet",
        "kubectl",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "ptp",
        "host-local",
        "portmap",
        "loopback",
        "bridge",
    ] {
        assert!(binaries.contains(&b), "BOM lacks binary {b}: {binaries:?}");
    }
    assert_eq!(
        bom.components
            .iter()
            .filter(|c| c.kind == Kind::Image)
            .count(),
        8,
        "kubeadm's seven images and the kindred agent"
    );
    assert!(bom
        .components
        .iter()
        .any(|c| c.kind == Kind::Image && c.name == kindred::agent::IMAGE));
    assert!(bom
        .components
        .iter()
        .any(|c| c.kind == Kind::DebianPackage && c.name == "systemd"));
}

/// The image says when and from what it was made: its creation time is the newest upstream
/// release it is built from (not 1970, not the build's clock), repeated in the OCI label, and
/// the SPDX and CycloneDX documents it stores are exactly what `kindred bom -o ...` prints.
#[tokio::test]
async fn image_metadata_and_stored_sboms_match_the_bom() {
    let (docker, image, bom) = default_image_and_bom().await;
    let released = bom
        .released
        .clone()
        .expect("the BOM records a release time");
    assert!(
        released.as_str() > "2020-01-01T00:00:00Z" && released.ends_with('Z'),
        "release time {released}"
    );
    let created = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Created}}", &image])
        .output()
        .expect("docker image inspect");
    let created = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let expected = bom::created(&bom).expect("creation time");
    assert_eq!(created, expected, "the image's creation time");
    let labels = docker.image_labels(&image).await.expect("labels");
    assert_eq!(
        labels.get("org.opencontainers.image.created"),
        Some(&expected)
    );
    assert_eq!(
        labels.get("org.opencontainers.image.version"),
        Some(&bom.kubernetes_version)
    );
    assert_eq!(
        labels.get(bom::LABEL_KINDRED_VERSION),
        Some(&bom.kindred_version)
    );
    assert!(labels
        .get(bom::LABEL_KUBE_SOURCE)
        .is_some_and(|s| !s.is_empty()));
    for (path, made) in [
        (bom::SPDX_PATH, bom::spdx_json(&bom, &image).unwrap()),
        (
            bom::CYCLONEDX_PATH,
            bom::cyclonedx_json(&bom, &image).unwrap(),
        ),
    ] {
        let stored = docker
            .read_image_file(&image, path)
            .await
            .unwrap_or_else(|e| panic!("{path} in {image}: {e}"));
        assert!(
            stored == made,
            "{path} differs from what `kindred bom {image}` prints"
        );
    }
}

const KUBELET_STANDALONE: &str = "cat > /var/lib/kubelet/config.yaml <<'END'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failSwapOn: false
failCgroupV1: false
staticPodPath: /etc/kubernetes/manifests
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
evictionHard:
  imagefs.available: \"0%\"
  nodefs.available: \"0%\"
  nodefs.inodesFree: \"0%\"
imageGCHighThresholdPercent: 100
END
mkdir -p /etc/systemd/system/kubelet.service.d
cat > /etc/systemd/system/kubelet.service.d/20-standalone.conf <<'END'
[Service]
ExecStart=
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml
END
";

fn static_etcd_pod(image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: smoke-etcd
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: etcd
    image: {image}
    imagePullPolicy: Never
    command:
    - etcd
    - --data-dir=/tmp/smoke-etcd
    - --listen-client-urls=http://127.0.0.1:23790
    - --advertise-client-urls=http://127.0.0.1:23790
    - --listen-peer-urls=http://127.0.0.1:23800
    - --initial-advertise-peer-urls=http://127.0.0.1:23800
    - --initial-cluster=default=http://127.0.0.1:23800
"
    )
}
