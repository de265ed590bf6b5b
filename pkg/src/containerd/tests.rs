use super::*;

/// The node image's config, as built.
fn node_config() -> String {
    include_str!("../../../node-image/files/containerd-config.toml")
        .replace("{{SANDBOX_IMAGE}}", "registry.k8s.io/pause:3.10.1")
}

fn table(text: &str) -> Table {
    text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn patched(merge: &[&str], json: &[&str]) -> Result<Table, PatchError> {
    let merge: Vec<String> = merge.iter().map(|s| s.to_string()).collect();
    let json: Vec<String> = json.iter().map(|s| s.to_string()).collect();
    patch(&node_config(), &merge, &json).map(|p| table(&p.config))
}

fn at<'t>(table: &'t Table, path: &[&str]) -> Option<&'t Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(table.get(*first)?, |value, key| value.get(key))
}

#[test]
fn no_patches_keep_every_setting() {
    let result = patched(&[], &[]).unwrap();
    assert_eq!(result, table(&node_config()));
}

#[test]
fn merge_patches_merge_tables_and_replace_values_in_order() {
    let result = patched(
        &[
            r#"[plugins.'io.containerd.cri.v1.images']
  snapshotter = "native"
  max_concurrent_downloads = 5
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
"#,
            // A later patch wins.
            "[plugins.'io.containerd.cri.v1.images']\nmax_concurrent_downloads = 2\n",
        ],
        &[],
    )
    .unwrap();
    let images = at(&result, &["plugins", "io.containerd.cri.v1.images"]).unwrap();
    assert_eq!(images["snapshotter"].as_str(), Some("native"));
    assert_eq!(images["max_concurrent_downloads"].as_integer(), Some(2));
    // Untouched siblings stay.
    assert_eq!(
        images["pinned_images"]["sandbox"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    let cni = at(&result, &["plugins", "io.containerd.cri.v1.runtime", "cni"]).unwrap();
    assert_eq!(
        cni["bin_dirs"],
        Value::Array(vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()])
    );
    assert_eq!(cni["conf_dir"].as_str(), Some("/etc/cni/net.d"));
    assert_eq!(result["version"].as_integer(), Some(3));
    assert_eq!(
        result["imports"],
        Value::Array(vec!["/etc/containerd/conf.d/*.toml".into()])
    );
}

#[test]
fn json6902_patches_edit_the_tree_after_the_merge_patches() {
    let result = patched(
        &["[plugins.'io.containerd.cri.v1.images']\nmax_concurrent_downloads = 5\n"],
        &[
            r#"[{"op": "replace", "path": "/plugins/io.containerd.cri.v1.images/max_concurrent_downloads", "value": 7},
               {"op": "add", "path": "/plugins/io.containerd.cri.v1.runtime/cni/bin_dirs/-", "value": "/extra"}]"#,
            "- op: remove\n  path: /plugins/io.containerd.cri.v1.images/pinned_images\n\
             - op: add\n  path: /plugins/io.containerd.cri.v1.runtime/enable_unprivileged_ports\n  value: true\n",
        ],
    )
    .unwrap();
    let images = at(&result, &["plugins", "io.containerd.cri.v1.images"]).unwrap();
    assert_eq!(images["max_concurrent_downloads"].as_integer(), Some(7));
    assert!(images.get("pinned_images").is_none());
    let runtime = at(&result, &["plugins", "io.containerd.cri.v1.runtime"]).unwrap();
    assert_eq!(runtime["enable_unprivileged_ports"].as_bool(), Some(true));
    assert_eq!(
        runtime["cni"]["bin_dirs"],
        Value::Array(vec!["/opt/cni/bin".into(), "/extra".into()])
    );
}

#[test]
fn kinds_version_2_registry_patch_lands_in_the_version_3_images_plugin() {
    let merge = vec![r#"[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"#
    .to_string()];
    let out = patch(&node_config(), &merge, &[]).unwrap();
    let result = table(&out.config);
    assert_eq!(
        at(&result, &["plugins", CRI_IMAGES, "registry", "config_path"]).and_then(Value::as_str),
        Some("/etc/containerd/certs.d")
    );
    assert!(at(&result, &["plugins", CRI_V2]).is_none());
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(
        out.notes[0].starts_with("containerdConfigPatches[0]: version 2 settings moved"),
        "{:?}",
        out.notes
    );
    assert!(out.notes[0].contains("registry -> io.containerd.cri.v1.images"));
}

#[test]
fn version_2_settings_move_to_their_plugins() {
    let result = patched(
        &[r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "my/pause:1"
  enable_unprivileged_ports = true
  disable_tcp_service = false
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "native"
  default_runtime_name = "crun"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"
"#],
        &[],
    )
    .unwrap();
    assert_eq!(result["version"].as_integer(), Some(3), "stays version 3");
    let plugins = &result["plugins"];
    assert_eq!(
        plugins[CRI_IMAGES]["pinned_images"]["sandbox"].as_str(),
        Some("my/pause:1")
    );
    assert_eq!(plugins[CRI_IMAGES]["snapshotter"].as_str(), Some("native"));
    let runtime = &plugins[CRI_RUNTIME];
    assert_eq!(runtime["enable_unprivileged_ports"].as_bool(), Some(true));
    assert_eq!(
        runtime["containerd"]["default_runtime_name"].as_str(),
        Some("crun")
    );
    assert_eq!(
        runtime["containerd"]["runtimes"]["crun"]["runtime_type"].as_str(),
        Some("io.containerd.runc.v2")
    );
    // The node's runc runtime is still there.
    assert_eq!(
        runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
    assert_eq!(
        plugins[CRI_V2]["disable_tcp_service"].as_bool(),
        Some(false),
        "server settings stay with the grpc plugin"
    );
}

#[test]
fn version_2_patches_are_left_alone_on_a_version_2_config() {
    let base =
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"\"\n";
    let merge = vec![
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/d\"\n".to_string(),
    ];
    let out = patch(base, &merge, &[]).unwrap();
    assert!(out.notes.is_empty());
    let result = table(&out.config);
    assert_eq!(
        at(&result, &["plugins", CRI_V2, "registry", "config_path"]).and_then(Value::as_str),
        Some("/d")
    );
}

#[test]
fn malformed_toml_names_the_patch_line_and_column() {
    let err = patched(&["[ok]\na = 1\n", "[plugins\nb = 2\n"], &[]).unwrap_err();
    assert_eq!(err.patch, "containerdConfigPatches[1]");
    assert!(
        err.message.starts_with("is not valid TOML (line 1 column"),
        "{err}"
    );
    assert!(!err.message.contains('\n'), "one line: {err}");
    let err = patched(&["a = \n"], &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("containerdConfigPatches[0]: is not valid TOML (line 1"),
        "{err}"
    );
}

#[test]
fn bad_json6902_patches_name_the_patch_and_operation() {
    let cases = [
        ("{op: add}", "containerdConfigPatchesJSON6902[0]: is not a list of JSON patch operations"),
        ("[", "containerdConfigPatchesJSON6902[0]: is not valid YAML or JSON"),
        (
            r#"[{"op": "replace", "path": "/plugins/nope/x", "value": 1}]"#,
            "containerdConfigPatchesJSON6902[0]: operation 0 (replace /plugins/nope/x): path /plugins/nope/x does not exist",
        ),
        (
            r#"[{"op": "add", "path": "/version", "value": null}]"#,
            "containerdConfigPatchesJSON6902[0]: leaves /version set to null, which TOML cannot hold",
        ),
        (
            r#"[{"op": "replace", "path": "", "value": [1]}]"#,
            "containerdConfigPatchesJSON6902[0]: leaves a config that is not a table of settings",
        ),
    ];
    for (operations, expected) in cases {
        let err = patched(&[], &[operations]).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{operations}: {err}");
    }
}

#[test]
fn a_broken_node_config_is_reported_as_such() {
    let err = patch("version = [", &[], &[]).unwrap_err();
    assert_eq!(err.patch, CONFIG_PATH);
    assert!(err.message.contains("not valid TOML"), "{err}");
}

#[test]
fn output_keeps_the_key_order() {
    let out = patch(&node_config(), &[], &[]).unwrap().config;
    let version = out.find("version = 3").unwrap();
    let images = out.find("io.containerd.cri.v1.images").unwrap();
    let runtime = out.find("io.containerd.cri.v1.runtime").unwrap();
    assert!(version < images && images < runtime, "{out}");
}

#[test]
fn the_node_images_config_names_the_hosts_directory() {
    let (dir, changed) = registry_config_dir(&node_config()).unwrap();
    assert_eq!(dir, "/etc/containerd/certs.d");
    assert_eq!(
        changed, None,
        "kindred's node image sets config_path itself"
    );
}

#[test]
fn a_config_without_config_path_gets_one() {
    // Node images from before config_path was in kindred's config.
    let old = node_config().replace("config_path = \"/etc/containerd/certs.d\"", "");
    let (dir, changed) = registry_config_dir(&old).unwrap();
    assert_eq!(dir, "/etc/containerd/certs.d");
    let changed = table(&changed.expect("config_path added"));
    assert_eq!(
        at(
            &changed,
            &[
                "plugins",
                "io.containerd.cri.v1.images",
                "registry",
                "config_path"
            ]
        )
        .and_then(Value::as_str),
        Some("/etc/containerd/certs.d")
    );
    // Nothing else changes.
    let without_registry = |mut t: Table| {
        t["plugins"]["io.containerd.cri.v1.images"]
            .as_table_mut()
            .unwrap()
            .remove("registry");
        t
    };
    assert_eq!(without_registry(changed), without_registry(table(&old)));
}

#[test]
fn a_patched_config_path_is_followed_and_version_2_is_understood() {
    let result = patch(
        &node_config(),
        &["[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = \"/etc/my-certs.d:/etc/docker/certs.d\"\n".to_string()],
        &[],
    )
    .unwrap();
    let (dir, changed) = registry_config_dir(&result.config).unwrap();
    assert_eq!((dir.as_str(), changed), ("/etc/my-certs.d", None));

    let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nsnapshotter = \"overlayfs\"\n";
    let (dir, changed) = registry_config_dir(v2).unwrap();
    assert_eq!(dir, "/etc/containerd/certs.d");
    let changed = table(&changed.unwrap());
    assert_eq!(
        at(
            &changed,
            &[
                "plugins",
                "io.containerd.grpc.v1.cri",
                "registry",
                "config_path"
            ]
        )
        .and_then(Value::as_str),
        Some("/etc/containerd/certs.d")
    );
}
