//! containerd's config on a node (`/etc/containerd/config.toml`) and the cluster config's patches
//! to it, applied as kind applies them: every `containerdConfigPatches` entry (a TOML fragment)
//! merged in order, then every `containerdConfigPatchesJSON6902` entry (a YAML or JSON list of
//! RFC 6902 operations) applied to the config as a document tree.
//!
//! Merging follows JSON merge patch rules on TOML: tables merge key by key, anything else
//! (strings, numbers, arrays) replaces what was there.
//!
//! kindred's node images carry a version 3 config (containerd 2.x). Patches written for kind's
//! version 2 layout, where the CRI settings live under `plugins."io.containerd.grpc.v1.cri"`,
//! are moved to their version 3 plugins first (as containerd itself migrates a version 2
//! file), so kind's documented patches (e.g. a registry `config_path`) keep working.

use serde_yaml::Value as Yaml;
use toml::{Table, Value};

/// Where containerd reads its config inside a node.
pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";

/// A patch that cannot be read or applied; `patch` names it, e.g. `containerdConfigPatches[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{patch}: {message}")]
pub struct PatchError {
    pub patch: String,
    pub message: String,
}

/// The patched config, and what kindred did beyond the patches themselves (for `-v` output).
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    pub config: String,
    pub notes: Vec<String>,
}

/// containerd 1.x's CRI plugin: in version 2 configs it holds every CRI setting; in version 3
/// only the streaming server's.
const CRI_V2: &str = "io.containerd.grpc.v1.cri";
const CRI_IMAGES: &str = "io.containerd.cri.v1.images";
const CRI_RUNTIME: &str = "io.containerd.cri.v1.runtime";
/// Settings that stay with `io.containerd.grpc.v1.cri` in version 3.
const SERVER_KEYS: [&str; 6] = [
    "disable_tcp_service",
    "stream_server_address",
    "stream_server_port",
    "stream_idle_timeout",
    "enable_tls_streaming",
    "x509_key_pair_streaming",
];
/// Settings that move to the images plugin (under the same name).
const IMAGE_KEYS: [&str; 6] = [
    "registry",
    "image_decryption",
    "max_concurrent_downloads",
    "image_pull_progress_timeout",
    "image_pull_with_sync_fs",
    "stats_collect_period",
];
/// `containerd.<key>` settings that move to the images plugin's top level.
const IMAGE_CONTAINERD_KEYS: [&str; 2] = ["snapshotter", "discard_unpacked_layers"];

/// Applies the merge patches, then the JSON 6902 patches, to a containerd config.
pub fn patch(
    config: &str,
    merge_patches: &[String],
    json_patches: &[String],
) -> Result<Patched, PatchError> {
    let mut table: Table = config.parse().map_err(|e: toml::de::Error| PatchError {
        patch: CONFIG_PATH.to_string(),
        message: format!(
            "the node's containerd config is not valid TOML: {}",
            toml_error(config, &e)
        ),
    })?;
    let version = table
        .get("version")
        .and_then(Value::as_integer)
        .unwrap_or(1);
    let mut notes = Vec::new();
    for (i, text) in merge_patches.iter().enumerate() {
        let name = format!("containerdConfigPatches[{i}]");
        let mut fragment = parse_merge_patch(text).map_err(|message| PatchError {
            patch: name.clone(),
            message,
        })?;
        if version >= 3 {
            if let Some(note) = migrate_v2(&mut fragment) {
                notes.push(format!("{name}: {note}"));
            }
        }
        merge(&mut table, fragment);
    }
    for (i, text) in json_patches.iter().enumerate() {
        let fail = |message: String| PatchError {
            patch: format!("containerdConfigPatchesJSON6902[{i}]"),
            message,
        };
        let operations = parse_operations(text).map_err(fail)?;
        let mut document = serde_yaml::to_value(&table)
            .map_err(|e| fail(format!("cannot read the config as a tree: {e}")))?;
        crate::json_patch::apply(&mut document, &operations).map_err(fail)?;
        table = from_tree(document).map_err(fail)?;
    }
    let config = toml::to_string(&table).map_err(|e| PatchError {
        patch: CONFIG_PATH.to_string(),
        message: format!("cannot write the patched config as TOML: {e}"),
    })?;
    Ok(Patched { config, notes })
}

/// Where containerd's CRI looks for registry hosts directories (`hosts.toml`): the first
/// directory of its `config_path`. A config without one gets
/// [`crate::registry::DEFAULT_CERTS_DIR`]; the changed config is returned with it, to be
/// written before containerd is restarted.
pub fn registry_config_dir(config: &str) -> Result<(String, Option<String>), PatchError> {
    let fail = |message: String| PatchError {
        patch: CONFIG_PATH.to_string(),
        message,
    };
    let mut table: Table = config.parse().map_err(|e: toml::de::Error| {
        fail(format!(
            "the node's containerd config is not valid TOML: {}",
            toml_error(config, &e)
        ))
    })?;
    let version = table
        .get("version")
        .and_then(Value::as_integer)
        .unwrap_or(1);
    // Version 2 (containerd 1.x) keeps the registry settings in the CRI plugin itself.
    let plugin = if version >= 3 { CRI_IMAGES } else { CRI_V2 };
    let current = table
        .get("plugins")
        .and_then(|p| p.get(plugin))
        .and_then(|p| p.get("registry"))
        .and_then(|r| r.get("config_path"))
        .and_then(Value::as_str)
        .and_then(crate::registry::first_config_dir);
    if let Some(dir) = current {
        return Ok((dir.to_string(), None));
    }
    let dir = crate::registry::DEFAULT_CERTS_DIR;
    let mut registry = Table::new();
    registry.insert("config_path".into(), Value::String(dir.into()));
    let mut settings = Table::new();
    settings.insert("registry".into(), Value::Table(registry));
    let mut plugins = Table::new();
    plugins.insert(plugin.into(), Value::Table(settings));
    merge(
        &mut table,
        Table::from_iter([("plugins".to_string(), Value::Table(plugins))]),
    );
    let text = toml::to_string(&table)
        .map_err(|e| fail(format!("cannot write the config as TOML: {e}")))?;
    Ok((dir.to_string(), Some(text)))
}

/// Reads one `containerdConfigPatches` entry: a TOML document (a table).
pub fn parse_merge_patch(text: &str) -> Result<Table, String> {
    text.parse::<Table>()
        .map_err(|e| format!("is not valid TOML ({})", toml_error(text, &e)))
}

/// Reads one `containerdConfigPatchesJSON6902` entry: a YAML or JSON list of operations.
pub fn parse_operations(text: &str) -> Result<Vec<Yaml>, String> {
    match serde_yaml::from_str::<Yaml>(text) {
        Ok(Yaml::Sequence(operations)) => Ok(operations),
        Ok(_) => Err(r#"is not a list of JSON patch operations, e.g. [{"op": "add", "path": "/a", "value": 1}]"#.to_string()),
        Err(e) => Err(format!("is not valid YAML or JSON: {e}")),
    }
}

/// `line L column C: message`, on one line (toml's own text spans several, with a snippet).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let lines: Vec<&str> = error.message().lines().map(str::trim).collect();
    let message = lines.join("; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line} column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// JSON merge patch on TOML: tables merge recursively, other values replace.
fn merge(target: &mut Table, patch: Table) {
    for (key, value) in patch {
        match (target.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(fragment)) => merge(existing, fragment),
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

/// Back from the patched tree to TOML, which has no null and only tables at the top.
fn from_tree(document: Yaml) -> Result<Table, String> {
    if let Some(path) = find_null(&document, String::new()) {
        return Err(format!(
            "leaves {} set to null, which TOML cannot hold; use a `remove` operation to \
             delete a setting",
            if path.is_empty() { "/" } else { &path }
        ));
    }
    if !document.is_mapping() {
        return Err("leaves a config that is not a table of settings".to_string());
    }
    serde_yaml::from_value(document).map_err(|e| format!("leaves a config TOML cannot hold: {e}"))
}

fn find_null(value: &Yaml, at: String) -> Option<String> {
    match value {
        Yaml::Null => Some(at),
        Yaml::Mapping(map) => map.iter().find_map(|(k, v)| {
            let key = k
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{k:?}"));
            find_null(
                v,
                format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
            )
        }),
        Yaml::Sequence(list) => list
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_null(v, format!("{at}/{i}"))),
        _ => None,
    }
}

/// Moves a version 2 patch's CRI settings to their version 3 plugins, and drops its
/// `version = 2` (the node's file stays version 3). Says what it did, if anything.
fn migrate_v2(patch: &mut Table) -> Option<String> {
    let declared_v2 = match patch.get("version").and_then(Value::as_integer) {
        Some(2) => patch.remove("version").is_some(),
        _ => false,
    };
    let cri = match patch.get_mut("plugins") {
        Some(Value::Table(plugins)) => match plugins.remove(CRI_V2) {
            Some(Value::Table(cri)) => Some(cri),
            Some(other) => {
                plugins.insert(CRI_V2.to_string(), other);
                None
            }
            None => None,
        },
        _ => None,
    };
    let Some(cri) = cri else {
        return declared_v2
            .then(|| "`version = 2` dropped: the node's containerd config is version 3".into());
    };
    let (mut server, mut images, mut runtime) = (Table::new(), Table::new(), Table::new());
    let mut moved = Vec::new();
    for (key, value) in cri {
        match (key.as_str(), value) {
            (k, v) if SERVER_KEYS.contains(&k) => {
                server.insert(key, v);
            }
            (k, v) if IMAGE_KEYS.contains(&k) => {
                moved.push(format!("{key} -> {CRI_IMAGES}"));
                images.insert(key, v);
            }
            ("sandbox_image", v) => {
                moved.push(format!(
                    "sandbox_image -> {CRI_IMAGES}.pinned_images.sandbox"
                ));
                let mut pinned = Table::new();
                pinned.insert("sandbox".to_string(), v);
                merge(
                    &mut images,
                    Table::from_iter([("pinned_images".to_string(), Value::Table(pinned))]),
                );
            }
            ("containerd", Value::Table(mut containerd)) => {
                for k in IMAGE_CONTAINERD_KEYS {
                    if let Some(v) = containerd.remove(k) {
                        moved.push(format!("containerd.{k} -> {CRI_IMAGES}.{k}"));
                        images.insert(k.to_string(), v);
                    }
                }
                if !containerd.is_empty() {
                    moved.push(format!("containerd -> {CRI_RUNTIME}"));
                    runtime.insert(key, Value::Table(containerd));
                }
            }
            (_, v) => {
                moved.push(format!("{key} -> {CRI_RUNTIME}"));
                runtime.insert(key, v);
            }
        }
    }
    let Some(Value::Table(plugins)) = patch.get_mut("plugins") else {
        unreachable!("plugins was a table above");
    };
    for (name, settings) in [
        (CRI_V2, server),
        (CRI_IMAGES, images),
        (CRI_RUNTIME, runtime),
    ] {
        if !settings.is_empty() {
            merge(
                plugins,
                Table::from_iter([(name.to_string(), Value::Table(settings))]),
            );
        }
    }
    if moved.is_empty() {
        return declared_v2
            .then(|| "`version = 2` dropped: the node's containerd config is version 3".into());
    }
    Some(format!(
        "version 2 settings moved to containerd's version 3 plugins: {}",
        moved.join(", ")
    ))
}

#[cfg(test)]
mod tests;
