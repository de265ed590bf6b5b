//! `kindred bom` on the real default node image: the documents it prints and `bom diff` between
//! the image and an edited copy of its BOM (a newer runc, one package gone, one file added).
//! hack/validate-bom.sh checks the same documents with independent validators.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn kindred(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindred"));
    kindred_e2e::output(cmd.args(args), None)
}

fn json_of(args: &[&str]) -> Value {
    let out = kindred(args);
    assert!(
        out.status.success(),
        "kindred {args:?}: {}",
        kindred_e2e::stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("kindred {args:?}: {e}"))
}

#[tokio::test]
async fn bom_documents_and_a_diff_against_an_edited_copy() {
    let image = kindred_e2e::node_image();
    kindred_e2e::require_image(&kindred_e2e::docker().await, &image).await;

    let bom = json_of(&["bom", &image, "-o", "json"]);
    let components = bom["components"].as_array().unwrap();
    let spdx = json_of(&["bom", &image, "-o", "spdx"]);
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    // The node image itself, then one package per component.
    assert_eq!(
        spdx["packages"].as_array().unwrap().len(),
        components.len() + 1
    );
    let cdx = json_of(&["bom", &image, "-o", "cyclonedx"]);
    assert_eq!(cdx["specVersion"], "1.5");
    assert_eq!(
        cdx["components"].as_array().unwrap().len(),
        components.len()
    );

    // The edited copy: runc one version on, socat gone, a file added.
    let mut edited = bom.clone();
    let list = edited["components"].as_array_mut().unwrap();
    let runc = list.iter_mut().find(|c| c["name"] == "runc").unwrap();
    let runc_version = runc["version"].clone();
    runc["version"] = json!("v9.9.9");
    list.retain(|c| c["name"] != "socat");
    list.push(json!({
        "name": "extra.conf", "kind": "file", "version": "0.1.0", "origin": "kindred",
        "path": "/etc/extra.conf", "sha256": "ab".repeat(32),
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.json");
    std::fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();

    let d = json_of(&["bom", "diff", &image, path.to_str().unwrap(), "-o", "json"]);
    let names = |key: &str| -> Vec<String> {
        d[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("added"), ["extra.conf"], "{d:#}");
    assert_eq!(names("removed"), ["socat"], "{d:#}");
    assert_eq!(names("changed"), ["runc"], "{d:#}");
    assert_eq!(d["changed"][0]["from"]["version"], runc_version);
    assert_eq!(d["changed"][0]["to"]["version"], "v9.9.9");

    // The table says the same, and the same image against itself has no differences.
    let out = kindred(&["bom", "diff", &image, path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains("v9.9.9"), "{table}");
    let same = json_of(&["bom", "diff", &image, &image, "-o", "json"]);
    for key in ["added", "removed", "changed"] {
        assert_eq!(same[key], json!([]), "{same:#}");
    }
}
