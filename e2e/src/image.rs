//! Images for tests: a tiny Go HTTP server built into a `FROM scratch` image through Docker's
//! build API, and the node image's kubectl copied out for a host that has none.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use kindred::provider::Provider;

use crate::text;

/// A static HTTP server on :8080 that says `<greeting> hello listening on :8080` on its log
/// at start, so a test can tell its images apart.
pub fn hello_go(greeting: &str) -> String {
    format!(
        r#"package main

import (
	"fmt"
	"net/http"
)

func main() {{
	fmt.Println("{greeting} hello listening on :8080")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {{ fmt.Fprintln(w, "hello") }})
	if err := http.ListenAndServe(":8080", nil); err != nil {{
		panic(err)
	}}
}}
"#
    )
}

/// A pod running `image` (the hello server) on `node`, pulled by `pull_policy`.
pub fn hello_pod(name: &str, node: &str, image: &str, pull_policy: &str) -> String {
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
    imagePullPolicy: {pull_policy}
"
    )
}

/// Builds `main_go` as a static binary (under `dir`) and returns it.
pub fn build_go_binary(dir: &Path, main_go: &str) -> Vec<u8> {
    let src = dir.join("hello-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.go"), main_go).unwrap();
    std::fs::write(src.join("go.mod"), "module hello\n\ngo 1.21\n").unwrap();
    let go = if Path::new("/usr/local/go/bin/go").exists() {
        "/usr/local/go/bin/go"
    } else {
        "go"
    };
    let out = Command::new(go)
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

/// `FROM scratch` + the hello binary; `variant` (a label) makes images with distinct IDs from
/// the same binary.
pub async fn build_hello_image(binary: &[u8], tag: &str, variant: &str) {
    let dockerfile = "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n";
    build_image(tag, dockerfile, &[("hello", binary)], variant).await;
}

/// Builds `dockerfile` with `files` as its context through Docker's build API, labelled with
/// `variant`; panics with the build log if it fails.
pub async fn build_image(tag: &str, dockerfile: &str, files: &[(&str, &[u8])], variant: &str) {
    let mut context = tar::Builder::new(Vec::new());
    for (name, data) in std::iter::once(&("Dockerfile", dockerfile.as_bytes())).chain(files) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        context.append_data(&mut header, name, *data).unwrap();
    }
    let context = context.into_inner().unwrap();
    let docker = crate::docker().await;
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

/// The node image's kubectl, written to `dir/kubectl`, so the host needs none installed.
pub async fn host_kubectl(dir: &Path) -> PathBuf {
    let docker = crate::docker().await;
    let image = crate::node_image();
    crate::require_image(&docker, &image).await;
    let bytes = docker
        .read_image_file(&image, "/usr/bin/kubectl")
        .await
        .expect("kubectl from the node image");
    let path = dir.join("kubectl");
    crate::write_executable(&path, &bytes);
    path
}
