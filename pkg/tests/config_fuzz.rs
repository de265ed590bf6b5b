//! Property-based fuzzing of cluster config decoding (issue 13): arbitrary text, YAML-ish token
//! soup, and structured mutations of the valid configs in `tests/fuzz-seeds/` go through the
//! whole config pipeline (`config::load` -> defaults -> host paths -> `validate`), which must
//! never panic and never take longer than [`CASE_TIME_LIMIT`] (plus a little per KiB) on one
//! input.
//!
//! CI runs a modest number of cases (`PROPTEST_CASES`, default [`DEFAULT_CASES`]) plus every
//! input in `config_fuzz.proptest-regressions` (proptest's corpus of past findings, checked in);
//! `hack/fuzz-config.sh MINUTES` runs it for a long time with fresh random seeds.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use kindred::config::{self, ConfigError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_yaml::Value;

/// Cases per strategy when `PROPTEST_CASES` is not set: a few seconds in a debug build.
const DEFAULT_CASES: u32 = 300;
/// One input taking longer than this, plus [`TIME_PER_KIB`] per KiB of input, counts as a hang.
/// Decoding is linear in the input's size (a 1.6 MB config of 3004 nodes: 0.17 s in a release
/// build), but a debug build on a loaded 2-core machine is ~100 times slower: a fixed bound
/// flagged that input once, in the first long run.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(10);
const TIME_PER_KIB: Duration = Duration::from_millis(25);

thread_local! {
    /// Inputs this test (thread) ran through the pipeline, printed at its end for the hack
    /// script's count.
    static CASES_RUN: Cell<u64> = const { Cell::new(0) };
    /// Of those, the ones that decoded and so went on to `validate`.
    static CASES_DECODED: Cell<u64> = const { Cell::new(0) };
}

/// Fragments that make a decoder take unusual paths: kind's keys and values, YAML syntax
/// (anchors, aliases, merge keys, tags, block scalars, flow collections, documents), numbers at
/// the edges of their types, addresses and paths.
const TOKENS: &[&str] = &[
    "kind: ",
    "Cluster",
    "apiVersion: ",
    "kind.x-k8s.io/v1alpha4",
    "kindred.dev/v1alpha4",
    "name: ",
    "nodes:",
    "role: ",
    "control-plane",
    "worker",
    "image: ",
    "labels:",
    "networking:",
    "ipFamily: ",
    "dual",
    "ipv6",
    "podSubnet: ",
    "serviceSubnet: ",
    "apiServerAddress: ",
    "apiServerPort: ",
    "kubeProxyMode: ",
    "dnsSearch: ",
    "extraMounts:",
    "hostPath: ",
    "containerPath: ",
    "propagation: ",
    "extraPortMappings:",
    "containerPort: ",
    "hostPort: ",
    "listenAddress: ",
    "protocol: ",
    "registry:",
    "port: ",
    "enabled: ",
    "featureGates:",
    "runtimeConfig:",
    "kubeadmConfigPatches:",
    "kubeadmConfigPatchesJSON6902:",
    "containerdConfigPatches:",
    "containerdConfigPatchesJSON6902:",
    "patch: ",
    "op: ",
    "path: ",
    "- ",
    "\n",
    "  ",
    "    ",
    "\t",
    ": ",
    ":",
    ",",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!map ",
    "!custom ",
    "|",
    "|-",
    ">",
    "'",
    "\"",
    "\\",
    "# c",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "no",
    "-1",
    "0",
    "65535",
    "65536",
    "4294967296",
    "99999999999999999999",
    "-9223372036854775809",
    "1e309",
    ".nan",
    ".inf",
    "0x1F",
    "0o17",
    "::1",
    "0.0.0.0",
    "127.0.0.1",
    "10.0.0.0/8",
    "10.244.0.0/33",
    "fd00::/200",
    "fd00:10:244::/56",
    "/",
    "/var",
    "../..",
    "./data",
    "[{\"op\":\"add\"}]",
    "[plugins]",
    "\u{feff}",
    "\0",
    "\u{85}",
    "é",
    "🦀",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // Keeps every failing input next to this file (the regression corpus), and replays
        // the ones kept there before generating new ones.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    })
}

/// The seed configs: valid kind v1alpha4 configs, one feature area each.
fn seeds() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-seeds");
    let mut seeds: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("seed directory entry").path();
            let text = std::fs::read_to_string(&path).expect("seed file");
            (path, text)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seed configs in {}", dir.display());
    seeds
}

/// What a command does with a config file, start to end. Errors are fine; they must render.
/// Returns whether the file decoded (and so was validated).
fn pipeline(path: &Path) -> bool {
    match config::load(path.to_str().expect("utf-8 temp path")) {
        Ok((cluster, dir)) => {
            let dir = dir.expect("a file has a directory");
            let cluster = cluster.with_defaults().resolve_host_paths(&dir);
            if let Err(e) = cluster.validate() {
                assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
                assert!(!e.to_string().is_empty());
            }
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

/// Runs [`pipeline`] on `text` in its own thread, so that a hang is reported (with the input)
/// instead of stalling the test, and a panic fails the case with its input.
fn check(text: &[u8]) -> Result<(), TestCaseError> {
    CASES_RUN.set(CASES_RUN.get() + 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, text).expect("write config");
    let (done_tx, done_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done_tx.send(pipeline(&path));
    });
    let limit =
        CASE_TIME_LIMIT + TIME_PER_KIB * u32::try_from(text.len() / 1024).unwrap_or(u32::MAX);
    match done_rx.recv_timeout(limit) {
        Ok(decoded) => {
            CASES_DECODED.set(CASES_DECODED.get() + u64::from(decoded));
            worker.join().expect("pipeline thread");
            Ok(())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let panic = worker.join().expect_err("thread ended without answering");
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(TestCaseError::fail(format!(
                "the config pipeline panicked ({message}) on {:?}",
                String::from_utf8_lossy(text)
            )))
        }
        // The thread is left running; the test process ends soon after the failure.
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "the config pipeline took over {limit:?} on {:?}",
            String::from_utf8_lossy(text)
        ))),
    }
}

fn token_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
}

/// Any YAML value, biased to the scalars a config mistake produces.
fn yaml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|n| Value::Number(n.into())),
        proptest::sample::select(TOKENS).prop_map(|t| Value::String(t.trim().to_string())),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Sequence),
            prop::collection::vec((inner.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Mapping(pairs.into_iter().collect())),
        ]
    })
}

/// One structural change to a decoded seed, applied to its `at`-th node (pre-order).
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    RemoveChild(Index, Index),
    /// Repeats one element of a list: the "3000 workers" shape, among others.
    RepeatChild(Index, Index, usize),
    InsertKey(Index, Value, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), yaml_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, i)| Mutation::RemoveChild(at, i)),
        1 => (any::<Index>(), any::<Index>(), prop_oneof![1..5usize, 90..120usize, 2990..3010usize])
            .prop_map(|(at, i, n)| Mutation::RepeatChild(at, i, n)),
        2 => (any::<Index>(), yaml_value(), yaml_value())
            .prop_map(|(at, k, v)| Mutation::InsertKey(at, k, v)),
    ]
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Sequence(items) => items.iter().map(count_nodes).sum(),
        Value::Mapping(map) => map.values().map(count_nodes).sum(),
        Value::Tagged(tagged) => count_nodes(&tagged.value),
        _ => 0,
    }
}

/// The `n`-th node of `value` in pre-order (`n` counts down as nodes are passed).
fn nth_node<'a>(value: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(value);
    }
    *n -= 1;
    match value {
        Value::Sequence(items) => items.iter_mut().find_map(|v| nth_node(v, n)),
        Value::Mapping(map) => map.values_mut().find_map(|v| nth_node(v, n)),
        Value::Tagged(tagged) => nth_node(&mut tagged.value, n),
        _ => None,
    }
}

fn apply(root: &mut Value, mutation: &Mutation) {
    let at = match mutation {
        Mutation::Replace(at, ..)
        | Mutation::RemoveChild(at, _)
        | Mutation::RepeatChild(at, ..)
        | Mutation::InsertKey(at, ..) => at.index(count_nodes(root)),
    };
    let mut n = at;
    let Some(node) = nth_node(root, &mut n) else {
        return;
    };
    match (mutation, node) {
        (Mutation::Replace(_, v), node) => *node = v.clone(),
        (Mutation::RemoveChild(_, i), Value::Sequence(items)) if !items.is_empty() => {
            items.remove(i.index(items.len()));
        }
        (Mutation::RemoveChild(_, i), Value::Mapping(map)) if !map.is_empty() => {
            let key = map.keys().nth(i.index(map.len())).cloned();
            if let Some(key) = key {
                map.remove(&key);
            }
        }
        (&Mutation::RepeatChild(_, ref i, times), Value::Sequence(items)) if !items.is_empty() => {
            let item = items[i.index(items.len())].clone();
            items.extend(std::iter::repeat_n(item, times));
        }
        (Mutation::InsertKey(_, k, v), Value::Mapping(map)) => {
            map.insert(k.clone(), v.clone());
        }
        _ => {}
    }
}

/// One change to a seed's text, for what a value-level change cannot express (broken
/// indentation, cut documents, stray syntax).
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, String),
    Delete(Index, usize),
    DuplicateLine(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<Index>(),
            token_soup().prop_map(|s| s.chars().take(12).collect())
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<Index>(), 1..40usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<Index>().prop_map(Edit::DuplicateLine),
    ]
}

fn apply_edit(text: &mut String, edit: &Edit) {
    let boundary = |text: &str, at: &Index| {
        let mut i = at.index(text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match edit {
        Edit::Insert(at, s) => {
            let i = boundary(text, at);
            text.insert_str(i, s);
        }
        Edit::Delete(at, n) => {
            let start = boundary(text, at);
            let mut end = (start + n).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(start..end, "");
        }
        Edit::DuplicateLine(at) => {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = at.index(lines.len());
                let mut out = lines[..=i].join("\n");
                out.push('\n');
                out.push_str(&lines[i..].join("\n"));
                *text = out;
            }
        }
    }
}

fn report(name: &str) {
    eprintln!(
        "config_fuzz {name}: {} inputs checked, {} of them decoded and validated",
        CASES_RUN.get(),
        CASES_DECODED.get()
    );
}

/// Bytes, not only text: a config file may hold anything, and `load` must say it is not UTF-8.
#[test]
fn arbitrary_bytes_and_text_never_panic_or_hang() {
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,300}".prop_map(String::into_bytes),
        token_soup().prop_map(String::into_bytes),
    ];
    runner()
        .run(&strategy, |bytes| check(&bytes))
        .unwrap_or_else(|e| panic!("{e}"));
    report("arbitrary");
}

#[test]
fn mutated_seed_values_never_panic_or_hang() {
    let seeds = seeds();
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..6));
    runner()
        .run(&strategy, |(seed, mutations)| {
            let (path, text) = &seeds[seed.index(seeds.len())];
            let mut value: Value = serde_yaml::from_str(text)
                .unwrap_or_else(|e| panic!("seed {}: {e}", path.display()));
            for m in &mutations {
                apply(&mut value, m);
            }
            // serde_yaml cannot write some values (a list as a map key); such a mutation is
            // no input at all.
            match serde_yaml::to_string(&value) {
                Ok(yaml) => check(yaml.as_bytes()),
                Err(_) => Ok(()),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    report("mutated values");
}

#[test]
fn edited_seed_text_never_panics_or_hangs() {
    let seeds = seeds();
    let strategy = (any::<Index>(), prop::collection::vec(edit(), 1..8));
    runner()
        .run(&strategy, |(seed, edits)| {
            let mut text = seeds[seed.index(seeds.len())].1.clone();
            for e in &edits {
                apply_edit(&mut text, e);
            }
            check(text.as_bytes())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    report("edited text");
}

/// Every seed is a valid config: mutations start from something the pipeline accepts.
#[test]
fn every_seed_is_accepted() {
    for (path, _) in seeds() {
        let (cluster, dir) = config::load(path.to_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cluster
            .with_defaults()
            .resolve_host_paths(&dir.unwrap())
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
