//! Node image build modes and reproducibility, against the real Docker daemon and the Go
//! module proxy. They reuse the default build's cache (hack/test.sh builds it first), so each
//! only does the work its mode adds.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kindred::provider::Provider;
use kindred::ui::Ui;
use kindred_node_image::base::{ensure_base, BaseOptions};
use kindred_node_image::gobuild::GoEnv;
use kindred_node_image::kube::{self, KubeSource, KUBE_BINARIES};
use kindred_node_image::{bom, images, BuildOptions};

/// The default Kubernetes binaries, from the cache the default image build filled.
async fn default_kube(go: &GoEnv) -> kube::KubeBinaries {
    let step = Ui::quiet().step("kubernetes");
    let k = kube::resolve(
        &KubeSource::Version(kindred::defaults::KUBERNETES_VERSION.into()),
        go,
        false,
        &step,
    )
    .await
    .expect("default Kubernetes binaries (built by `kindred build node-image`)");
    step.done();
    k
}

async fn go_env() -> GoEnv {
    GoEnv::detect(&kindred::cache::cache_dir())
        .await
        .expect("Go toolchain")
}

#[tokio::test]
async fn kube_tarball_is_read_from_an_http_url_on_loopback() {
    let go = go_env().await;
    let kube = default_kube(&go).await;
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("kubernetes-server-linux-amd64.tar.gz");
    server_tarball(&kube.dir, &tarball);

    let (url, server) = serve_once(tarball.clone());
    let scratch = GoEnv {
        cache_root: work.path().join("cache"),
        go_version: go.go_version.clone(),
    };
    let step = Ui::quiet().step("tarball");
    let from_url = kube::resolve(&KubeSource::Tarball(url.clone()), &scratch, false, &step)
        .await
        .expect("resolve tarball URL");
    step.done();
    server.join().expect("server thread");

    assert_eq!(from_url.version, kube.version);
    assert!(from_url.origin.contains(&url), "{}", from_url.origin);
    for b in KUBE_BINARIES {
        assert_eq!(
            bom::sha256_file(&from_url.path(b)).unwrap(),
            bom::sha256_file(&kube.path(b)).unwrap(),
            "{b} differs after the round trip through the tarball"
        );
    }
}

#[tokio::test]
async fn kube_binaries_dir_builds_a_node_image() {
    let go = go_env().await;
    let kube = default_kube(&go).await;
    let image = "kindred/node:e2e-kube-binaries".to_string();
    let opts = BuildOptions {
        kube: KubeSource::Binaries(kube.dir.clone()),
        image: Some(image.clone()),
        base: BaseOptions::default(),
        cache_dir: kindred::cache::cache_dir(),
        no_cache: false,
        agent_binary: kindred_e2e::kindred_binary(),
    };
    let result = kindred_node_image::build(&opts, &Ui::quiet())
        .await
        .expect("build from --kube-binaries");
    let docker = kindred_e2e::docker().await;
    let labels = docker.image_labels(&image).await.expect("image exists");
    let bom = kindred_node_image::read_bom(&docker, &image)
        .await
        .expect("BOM");
    docker
        .remove_image(&image)
        .await
        .expect("remove test image");

    assert_eq!(result.kube_version, kube.version);
    assert_eq!(labels.get(bom::LABEL_KUBE_VERSION), Some(&kube.version));
    let kubelet = bom
        .components
        .iter()
        .find(|c| c.name == "kubelet")
        .expect("kubelet in BOM");
    assert!(
        kubelet.origin.starts_with("binaries from"),
        "{}",
        kubelet.origin
    );
}

#[tokio::test]
async fn control_plane_images_rebuild_to_identical_digests() {
    let go = go_env().await;
    let kube = default_kube(&go).await;
    let step = Ui::quiet().step("inputs");
    let base = ensure_base(&BaseOptions::default(), &go.cache_root, false, &step)
        .await
        .expect("cached base");
    let parts = images::build_components(&kube, &go, false, &step)
        .await
        .expect("cached image components");
    // The default image packs the kindred binary this test run was built with (hack/test.sh
    // builds the image with it first), so the agent image must match too.
    let agent = kindred_node_image::agent_binary::prepare(
        &kindred_e2e::kindred_binary(),
        &go.cache_root,
        &step,
    )
    .await
    .expect("agent binary");
    let inputs = parts.inputs(&kube, &base, &agent);
    let names = &parts.names;

    // Rebuilt from scratch into an empty directory, the digests must match the default image's.
    let scratch = tempfile::tempdir().unwrap();
    let rebuilt =
        images::build_all(names, &inputs, scratch.path(), true, &step).expect("rebuild images");
    step.done();

    let docker = kindred_e2e::docker().await;
    let image = kindred_e2e::node_image();
    kindred_e2e::require_image(&docker, &image).await;
    let bom = kindred_node_image::read_bom(&docker, &image)
        .await
        .expect("BOM");
    for img in &rebuilt.images {
        let in_bom = bom
            .components
            .iter()
            .find(|c| c.name == img.name)
            .expect("image listed in the BOM");
        assert_eq!(
            format!("sha256:{}", in_bom.sha256),
            img.manifest_digest,
            "{} is not reproducible",
            img.name
        );
    }
    assert_eq!(rebuilt.images.len(), 8);
}

/// Writes kubernetes/server/bin/<binary> for each binary, like an upstream server tarball.
fn server_tarball(bin_dir: &Path, out: &Path) {
    let file = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for b in KUBE_BINARIES {
        tar.append_path_with_name(bin_dir.join(b), format!("kubernetes/server/bin/{b}"))
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// Serves one file to one GET request on 127.0.0.1 and stops.
fn serve_once(file: PathBuf) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/kubernetes-server-linux-amd64.tar.gz",
        listener.local_addr().unwrap()
    );
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        let body = std::fs::read(&file).unwrap();
        write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n", body.len()).unwrap();
        conn.write_all(&body).unwrap();
    });
    (url, handle)
}
