//! `merge` and `remove` against real files in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_yaml::Value;

use super::{merge, remove, Entry, KubeconfigError};

const EXISTING: &str = include_str!("testdata/existing-kubeconfig.yaml");

fn entry(cluster: &str, server: &str) -> Entry {
    Entry {
        cluster_name: cluster.to_string(),
        server: server.to_string(),
        certificate_authority_data: format!("Q0Egb2Yg{cluster}"),
        client_certificate_data: format!("Y2VydCBvZiB{cluster}"),
        client_key_data: format!("a2V5IG9mIH{cluster}"),
    }
}

fn parse(path: &Path) -> Value {
    serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn names(document: &Value, list: &str) -> Vec<String> {
    document[list]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_string())
        .collect()
}

fn named<'a>(document: &'a Value, list: &str, name: &str) -> &'a Value {
    document[list]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[test]
fn merge_into_missing_file_creates_it_private_with_current_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("home/.kube/config");

    merge(&path, &entry("demo", "https://127.0.0.1:38211")).unwrap();

    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let document = parse(&path);
    assert_eq!(document["apiVersion"], "v1");
    assert_eq!(document["kind"], "Config");
    assert_eq!(document["current-context"], "kindred-demo");
    let cluster = named(&document, "clusters", "kindred-demo");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:38211");
    assert_eq!(
        cluster["cluster"]["certificate-authority-data"],
        "Q0Egb2Ygdemo"
    );
    let user = named(&document, "users", "kindred-demo");
    assert_eq!(user["user"]["client-certificate-data"], "Y2VydCBvZiBdemo");
    assert_eq!(user["user"]["client-key-data"], "a2V5IG9mIHdemo");
    let context = named(&document, "contexts", "kindred-demo");
    assert_eq!(context["context"]["cluster"], "kindred-demo");
    assert_eq!(context["context"]["user"], "kindred-demo");
    // Neither the lock file nor a temporary file is left behind.
    let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn merge_keeps_every_other_entry_and_unknown_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).unwrap();

    let new = entry("demo", "https://127.0.0.1:38211");
    merge(&path, &new).unwrap();

    // Expected: the original document, plus our three items at the ends of the lists, with
    // current-context switched; nothing else may differ.
    let mut expected: Value = serde_yaml::from_str(EXISTING).unwrap();
    for (list, item) in new.items() {
        expected[list].as_sequence_mut().unwrap().push(item);
    }
    expected["current-context"] = "kindred-demo".into();
    let merged = parse(&path);
    assert_eq!(merged, expected);
    // Spot checks on what a lossy model would drop.
    assert_eq!(merged["preferences"]["colors"], true);
    assert_eq!(merged["x-written-by"], "some-other-tool");
    assert_eq!(merged["extensions"][0]["name"], "some-tool/last-used");
    assert_eq!(
        named(&merged, "users", "prod-sso")["user"]["exec"]["args"][2],
        "prod"
    );
}

#[test]
fn merging_the_same_cluster_twice_replaces_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    merge(&path, &entry("demo", "https://127.0.0.1:1111")).unwrap();
    merge(&path, &entry("other", "https://127.0.0.1:2222")).unwrap();

    merge(&path, &entry("demo", "https://127.0.0.1:3333")).unwrap();

    let document = parse(&path);
    for list in ["clusters", "users", "contexts"] {
        assert_eq!(names(&document, list), ["kindred-demo", "kindred-other"]);
    }
    let cluster = named(&document, "clusters", "kindred-demo");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:3333");
    assert_eq!(document["current-context"], "kindred-demo");
}

#[test]
fn remove_deletes_only_its_entries_and_unsets_current_context_pointing_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).unwrap();
    merge(&path, &entry("a", "https://127.0.0.1:1111")).unwrap();
    merge(&path, &entry("b", "https://127.0.0.1:2222")).unwrap();
    let before_b = parse(&path);

    // current-context is kindred-b: removing a leaves it alone.
    assert!(remove(&path, "a").unwrap());
    let document = parse(&path);
    assert_eq!(document["current-context"], "kindred-b");
    assert_eq!(names(&document, "clusters"), ["prod", "lab", "kindred-b"]);
    assert_eq!(
        names(&document, "users"),
        ["prod-sso", "lab-admin", "kindred-b"]
    );
    assert_eq!(names(&document, "contexts"), ["prod", "lab", "kindred-b"]);
    assert_eq!(
        named(&document, "clusters", "kindred-b"),
        named(&before_b, "clusters", "kindred-b")
    );

    // Removing b, the current context, unsets it to "" as kubectl does.
    assert!(remove(&path, "b").unwrap());
    let mut expected: Value = serde_yaml::from_str(EXISTING).unwrap();
    expected["current-context"] = "".into();
    assert_eq!(parse(&path), expected);
}

#[test]
fn remove_of_an_absent_cluster_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).unwrap();

    assert!(!remove(&path, "demo").unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap(), EXISTING);

    let missing = dir.path().join("nowhere/config");
    assert!(!remove(&missing, "demo").unwrap());
    assert!(!missing.exists());
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn concurrent_merges_of_different_clusters_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).unwrap();

    std::thread::scope(|scope| {
        for i in 0..8 {
            let path = &path;
            scope.spawn(move || {
                let server = format!("https://127.0.0.1:{}", 40000 + i);
                merge(path, &entry(&format!("c{i}"), &server)).unwrap();
            });
        }
    });

    let document = parse(&path);
    for list in ["clusters", "users", "contexts"] {
        let mut kindred: Vec<_> = names(&document, list)
            .into_iter()
            .filter(|n| n.starts_with("kindred-"))
            .collect();
        kindred.sort();
        let expected: Vec<_> = (0..8).map(|i| format!("kindred-c{i}")).collect();
        assert_eq!(kindred, expected, "{list}");
    }
    assert_eq!(names(&document, "clusters")[..2], ["prod", "lab"]);
}

#[test]
fn corrupt_file_is_reported_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let broken = "apiVersion: v1\nclusters:\n- name: prod\n  cluster: {server: [\n";
    fs::write(&path, broken).unwrap();

    let error = merge(&path, &entry("demo", "https://127.0.0.1:1")).unwrap_err();
    assert!(matches!(error, KubeconfigError::NotAKubeconfig { .. }));
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("is not a kubeconfig"), "{message}");
    assert!(message.contains("kindred did not change it"), "{message}");
    assert!(remove(&path, "demo").is_err());
    assert_eq!(fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn yaml_that_is_not_a_kubeconfig_is_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (text, reason) in [
        (
            "apiVersion: apps/v1\nkind: Deployment\n",
            "its kind is Deployment",
        ),
        ("- just\n- a list\n", "a kubeconfig is a YAML map"),
        ("clusters: {prod: {}}\n", "`clusters` is not a list"),
    ] {
        let path = dir.path().join("config");
        fs::write(&path, text).unwrap();
        let error = merge(&path, &entry("demo", "https://127.0.0.1:1")).unwrap_err();
        assert!(error.to_string().contains(reason), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}

#[test]
fn empty_file_and_null_lists_are_an_empty_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    for text in ["", "clusters: null\nusers: null\ncontexts: null\n"] {
        fs::write(&path, text).unwrap();
        merge(&path, &entry("demo", "https://127.0.0.1:1")).unwrap();
        let document = parse(&path);
        for list in ["clusters", "users", "contexts"] {
            assert_eq!(names(&document, list), ["kindred-demo"]);
        }
    }
}

#[test]
fn symlinked_kubeconfig_is_written_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles-kubeconfig");
    let link = dir.path().join("config");
    fs::write(&real, EXISTING).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();

    merge(&link, &entry("demo", "https://127.0.0.1:1")).unwrap();

    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(parse(&real)["current-context"], "kindred-demo");
}
