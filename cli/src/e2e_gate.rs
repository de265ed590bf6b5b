//! Keeps a plain `cargo test` free of Docker: every file in tests/ is an end-to-end test and
//! must be listed in Cargo.toml as requiring the `e2e` feature. The end-to-end tests run with
//! `hack/test.sh` (`cargo test --workspace --features kindred-cli/e2e`), or one at a time with
//! `cargo test -p kindred-cli --features e2e --test <name>`.

use std::path::Path;

#[test]
fn e2e_tests_need_the_e2e_feature_run_them_with_hack_test_sh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
        .expect("read cli/Cargo.toml")
        .parse()
        .expect("parse cli/Cargo.toml");
    let gated: Vec<&str> = manifest["test"]
        .as_array()
        .expect("[[test]] entries")
        .iter()
        .filter(|t| {
            t.get("required-features")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().any(|f| f.as_str() == Some("e2e")))
        })
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir.join("tests")).expect("read cli/tests") {
        let path = entry.expect("cli/tests entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if !gated.contains(&name.as_str()) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests/{{{}}}.rs would run in a plain `cargo test`, which must not need Docker: add \
         `[[test]] name = \"<name>\" required-features = [\"e2e\"]` to cli/Cargo.toml for each",
        missing.join(",")
    );
    assert!(
        !gated.is_empty(),
        "no end-to-end test is listed in cli/Cargo.toml"
    );
}
