//! Image archives: OCI image layout tars (for `ctr images import`) and
//! `docker save` tars (for `docker load` / `POST /images/load`).
//!
//! Everything written is deterministic: JSON comes from structs with a fixed
//! field order and BTreeMaps, the outer tar is written by [`LayerBuilder`]
//! (sorted, mtime 0), so the same layers and config give the same digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::layer::{self, LayerBlob, LayerBuilder};

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Annotation containerd uses as the image name on import.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Standard OCI annotation carrying the tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("layer blob {}: {reason}", path.display())]
    BadLayer { path: PathBuf, reason: String },
    #[error("no images given for {}", path.display())]
    NoImages { path: PathBuf },
    #[error("encoding image JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The runtime part of an image config. Empty fields are omitted from the
/// JSON, as docker and buildkit do.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// "KEY=value" strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    /// Container paths, e.g. "/var/lib/etcd".
    pub volumes: Vec<String>,
    pub user: Option<String>,
}

/// One linux/amd64 image to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Full reference with a tag, e.g. "registry.k8s.io/kube-apiserver:v1.34.12".
    pub name: String,
    pub config: ImageConfig,
    /// Gzip layer blobs, bottom layer first.
    pub layers: Vec<LayerBlob>,
    /// RFC 3339 timestamp; fixed by the caller for reproducible digests.
    pub created: String,
}

/// Digests ("sha256:<hex>") of what an OCI archive contains. `config` is
/// also the image ID docker reports for the same image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigests {
    pub manifest: String,
    pub config: String,
}

// --- JSON documents. Field order in these structs is the order in the
// --- output, which is part of the digests: do not reorder casually.

#[derive(Serialize)]
struct ConfigFile<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    config: RuntimeConfig<'a>,
    rootfs: RootFs<'a>,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cmd: &'a [String],
    /// Docker and OCI both encode volumes as a map to empty objects.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<&'a str, Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'static str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, &'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: &'static str,
}

/// One entry of a `docker save` manifest.json.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest<'a> {
    config: String,
    repo_tags: Vec<&'a str>,
    layers: Vec<String>,
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// "sha256:<hex>" -> "blobs/sha256/<hex>"; None unless it is a well-formed
/// sha256 digest (so a digest can never smuggle in a path).
fn blob_path(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| format!("blobs/sha256/{hex}"))
}

/// The tag of a reference like "registry:5000/ns/name:tag".
fn tag_of(name: &str) -> Result<&str> {
    let bad = |reason| Error::BadName {
        name: name.to_string(),
        reason,
    };
    if name.contains('@') {
        return Err(bad(
            "digest references cannot name an imported image; use a tag",
        ));
    }
    // A ':' before the last '/' is a registry port, not a tag.
    let last_part = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    match last_part.rsplit_once(':') {
        Some((repo, tag)) if !repo.is_empty() && !tag.is_empty() => Ok(tag),
        _ => Err(bad("must include a tag, e.g. name:v1.0")),
    }
}

/// Serializes the image config; its digest is the image ID.
fn config_json(spec: &ImageSpec) -> Result<Vec<u8>> {
    let c = &spec.config;
    let file = ConfigFile {
        created: &spec.created,
        architecture: "amd64",
        os: "linux",
        config: RuntimeConfig {
            user: c.user.as_deref(),
            env: &c.env,
            entrypoint: &c.entrypoint,
            cmd: &c.cmd,
            volumes: c.volumes.iter().map(|v| (v.as_str(), Empty {})).collect(),
            working_dir: c.working_dir.as_deref(),
            labels: &c.labels,
            stop_signal: c.stop_signal.as_deref(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: spec.layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
        history: spec
            .layers
            .iter()
            .map(|_| History {
                created: &spec.created,
                created_by: "kindred",
            })
            .collect(),
    };
    Ok(serde_json::to_vec(&file)?)
}

/// Checks that a layer blob is what the spec claims before it is archived:
/// digest formats and the file's size. (Hashes are not recomputed: that
/// would mean reading every layer again.)
fn check_layer(blob: &LayerBlob) -> Result<String> {
    let bad = |reason: String| Error::BadLayer {
        path: blob.path.clone(),
        reason,
    };
    if blob_path(&blob.diff_id).is_none() {
        return Err(bad(format!(
            "diff_id {:?} is not a sha256 digest",
            blob.diff_id
        )));
    }
    let path = blob_path(&blob.digest)
        .ok_or_else(|| bad(format!("digest {:?} is not a sha256 digest", blob.digest)))?;
    let meta = fs::metadata(&blob.path).map_err(|source| Error::Io {
        action: "stat",
        path: blob.path.clone(),
        source,
    })?;
    if meta.len() != blob.size {
        return Err(bad(format!(
            "file is {} bytes but the blob records {}",
            meta.len(),
            blob.size
        )));
    }
    Ok(path)
}

/// Writes `spec` as an OCI image layout in a single tar (oci-layout,
/// index.json, blobs/sha256/...), importable with
/// `ctr -n k8s.io images import`. The index's manifest descriptor carries
/// the full name (containerd) and the tag (OCI ref.name).
pub fn write_oci_archive(spec: &ImageSpec, out_tar: &Path) -> Result<ImageDigests> {
    let tag = tag_of(&spec.name)?;
    let mut tar = LayerBuilder::new();

    let mut layer_descriptors = Vec::new();
    for blob in &spec.layers {
        let path = check_layer(blob)?;
        tar.add_file_from_disk(&path, 0o644, &blob.path)?;
        layer_descriptors.push(Descriptor {
            media_type: MEDIA_TYPE_LAYER_GZIP,
            digest: &blob.digest,
            size: blob.size,
            annotations: None,
            platform: None,
        });
    }

    let config = config_json(spec)?;
    let config_digest = sha256_of(&config);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST,
        config: Descriptor {
            media_type: MEDIA_TYPE_CONFIG,
            digest: &config_digest,
            size: config.len() as u64,
            annotations: None,
            platform: None,
        },
        layers: layer_descriptors,
    })?;
    let manifest_digest = sha256_of(&manifest);

    let annotations = BTreeMap::from([
        (ANNOTATION_CONTAINERD_NAME, spec.name.as_str()),
        (ANNOTATION_REF_NAME, tag),
    ]);
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: MEDIA_TYPE_INDEX,
        manifests: vec![Descriptor {
            media_type: MEDIA_TYPE_MANIFEST,
            digest: &manifest_digest,
            size: manifest.len() as u64,
            annotations: Some(annotations),
            platform: Some(Platform {
                architecture: "amd64",
                os: "linux",
            }),
        }],
    })?;
    let layout = serde_json::to_vec(&OciLayout {
        image_layout_version: "1.0.0",
    })?;

    tar.add_file(
        blob_path(&config_digest).expect("computed digest"),
        0o644,
        config,
    )?;
    tar.add_file(
        blob_path(&manifest_digest).expect("computed digest"),
        0o644,
        manifest,
    )?;
    tar.add_file("index.json", 0o644, index)?;
    tar.add_file("oci-layout", 0o644, layout)?;
    write_atomically(&tar, out_tar)?;
    Ok(ImageDigests {
        manifest: manifest_digest,
        config: config_digest,
    })
}

/// Writes one or more images as a `docker save` archive (manifest.json plus
/// config and layer blobs) that `docker load` accepts. Layers are stored
/// gzip-compressed as they are; docker decompresses them on load and checks
/// them against the config's diff_ids. Layers shared between images are
/// stored once. Returns each image's config digest, which is its image ID.
pub fn write_docker_archive(specs: &[ImageSpec], out_tar: &Path) -> Result<Vec<String>> {
    if specs.is_empty() {
        return Err(Error::NoImages {
            path: out_tar.to_path_buf(),
        });
    }
    let mut tar = LayerBuilder::new();
    let mut manifests = Vec::new();
    let mut ids = Vec::new();
    for spec in specs {
        tag_of(&spec.name)?;
        let mut layers = Vec::new();
        for blob in &spec.layers {
            let path = check_layer(blob)?;
            tar.add_file_from_disk(&path, 0o644, &blob.path)?;
            layers.push(path);
        }
        let config = config_json(spec)?;
        let config_digest = sha256_of(&config);
        let config_path = blob_path(&config_digest).expect("computed digest");
        tar.add_file(&config_path, 0o644, config)?;
        manifests.push(DockerManifest {
            config: config_path,
            repo_tags: vec![spec.name.as_str()],
            layers,
        });
        ids.push(config_digest);
    }
    tar.add_file("manifest.json", 0o644, serde_json::to_vec(&manifests)?)?;
    write_atomically(&tar, out_tar)?;
    Ok(ids)
}

/// Writes the tar next to `out` and renames it into place, so readers never
/// see a half-written archive.
fn write_atomically(tar: &LayerBuilder, out: &Path) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = out.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = out.with_file_name(tmp_name);
    let result = (|| -> Result<()> {
        let io_err = |action| {
            let path = tmp.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let file = fs::File::create(&tmp).map_err(io_err("create"))?;
        let mut w = BufWriter::new(file);
        tar.write_tar(&mut w)?;
        w.flush().map_err(io_err("write"))?;
        let file = w
            .into_inner()
            .map_err(|e| io_err("write")(e.into_error()))?;
        file.sync_all().map_err(io_err("sync"))?;
        fs::rename(&tmp, out).map_err(|source| Error::Io {
            action: "rename archive to",
            path: out.to_path_buf(),
            source,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn layer_blob(dir: &Path, content: &str) -> LayerBlob {
        let mut l = LayerBuilder::new();
        l.add_file("hello", 0o755, content.as_bytes().to_vec())
            .unwrap();
        l.write_gzip_blob(dir).unwrap()
    }

    fn spec(dir: &Path) -> ImageSpec {
        ImageSpec {
            name: "registry.k8s.io/kube-apiserver:v1.34.12".into(),
            config: ImageConfig {
                entrypoint: vec!["/hello".into()],
                env: vec!["PATH=/usr/local/bin:/usr/bin".into()],
                labels: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
                volumes: vec!["/var/lib/etcd".into()],
                stop_signal: Some("SIGTERM".into()),
                ..Default::default()
            },
            layers: vec![layer_blob(dir, "one"), layer_blob(dir, "two")],
            created: "2025-01-01T00:00:00Z".into(),
        }
    }

    /// path -> contents of every regular file in a tar.
    fn read_tar(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let bytes = fs::read(path).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut out = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            if e.header().entry_type() == tar::EntryType::Regular {
                let name = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                out.insert(name, data);
            }
        }
        out
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn oci_archive_layout_and_determinism() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let out1 = dir.path().join("a.tar");
        let out2 = dir.path().join("b.tar");
        let d1 = write_oci_archive(&spec, &out1).unwrap();
        let d2 = write_oci_archive(&spec, &out2).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(fs::read(&out1).unwrap(), fs::read(&out2).unwrap());

        let files = read_tar(&out1);
        assert_eq!(
            json(&files["oci-layout"]),
            serde_json::json!({"imageLayoutVersion": "1.0.0"})
        );
        let index = json(&files["index.json"]);
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], MEDIA_TYPE_INDEX);
        let desc = &index["manifests"][0];
        assert_eq!(desc["digest"], d1.manifest.as_str());
        assert_eq!(desc["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(
            desc["platform"],
            serde_json::json!({"architecture": "amd64", "os": "linux"})
        );
        assert_eq!(
            desc["annotations"],
            serde_json::json!({
                "io.containerd.image.name": "registry.k8s.io/kube-apiserver:v1.34.12",
                "org.opencontainers.image.ref.name": "v1.34.12",
            })
        );

        // Every blob is stored under its own digest.
        for (name, data) in &files {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(hex, hex::encode(Sha256::digest(data)), "{name}");
            }
        }
        let manifest_bytes = &files[&blob_path(&d1.manifest).unwrap()];
        assert_eq!(desc["size"], manifest_bytes.len() as u64);
        let manifest = json(manifest_bytes);
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        assert_eq!(manifest["config"]["digest"], d1.config.as_str());
        assert_eq!(manifest["layers"][1]["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        assert_eq!(
            manifest["layers"][1]["digest"],
            spec.layers[1].digest.as_str()
        );
        assert_eq!(manifest["layers"][1]["size"], spec.layers[1].size);

        let config = json(&files[&blob_path(&d1.config).unwrap()]);
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            spec.layers[0].diff_id.as_str()
        );
        assert_eq!(
            config["config"]["Volumes"],
            serde_json::json!({"/var/lib/etcd": {}})
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/hello"])
        );
        assert!(
            config["config"].get("Cmd").is_none(),
            "empty fields are omitted"
        );
        assert_eq!(config["architecture"], "amd64");
    }

    #[test]
    fn config_json_is_stable() {
        let spec = ImageSpec {
            name: "x:y".into(),
            config: ImageConfig {
                cmd: vec!["sh".into()],
                labels: BTreeMap::from([("z".into(), "1".into()), ("a".into(), "2".into())]),
                working_dir: Some("/".into()),
                user: Some("0".into()),
                ..Default::default()
            },
            layers: vec![],
            created: "1970-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            String::from_utf8(config_json(&spec).unwrap()).unwrap(),
            r#"{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"0","Cmd":["sh"],"WorkingDir":"/","Labels":{"a":"2","z":"1"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}"#
        );
    }

    #[test]
    fn docker_archive_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let a = spec(dir.path());
        let mut b = a.clone();
        b.name = "localhost:5000/kindred/other:dev".into();
        b.layers.truncate(1);
        let out = dir.path().join("d.tar");
        let ids = write_docker_archive(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(
            ids[0],
            write_oci_archive(&a, &dir.path().join("o.tar"))
                .unwrap()
                .config
        );

        let files = read_tar(&out);
        let manifest = json(&files["manifest.json"]);
        assert_eq!(
            manifest[0]["RepoTags"],
            serde_json::json!(["registry.k8s.io/kube-apiserver:v1.34.12"])
        );
        assert_eq!(
            manifest[1]["RepoTags"],
            serde_json::json!(["localhost:5000/kindred/other:dev"])
        );
        assert_eq!(manifest[0]["Config"], blob_path(&ids[0]).unwrap().as_str());
        assert_eq!(
            manifest[0]["Layers"][0], manifest[1]["Layers"][0],
            "shared layer"
        );
        assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 2);
        // Shared layer stored once: 2 layers + 2 configs + manifest.json.
        assert_eq!(files.len(), 5);
        let config = json(&files[manifest[1]["Config"].as_str().unwrap()]);
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([b.layers[0].diff_id])
        );
    }

    #[test]
    fn names_need_tags() {
        assert_eq!(tag_of("registry.k8s.io/pause:3.10").unwrap(), "3.10");
        assert_eq!(tag_of("localhost:5000/a/b:dev").unwrap(), "dev");
        assert!(tag_of("localhost:5000/a/b").is_err());
        assert!(tag_of("busybox@sha256:abcd").is_err());
        assert!(tag_of("busybox:").is_err());
    }

    #[test]
    fn rejects_bad_layers() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path());
        s.layers[0].size += 1;
        let err = write_oci_archive(&s, &dir.path().join("x.tar")).unwrap_err();
        assert!(
            err.to_string()
                .contains(&s.layers[0].path.display().to_string()),
            "{err}"
        );

        let mut s = spec(dir.path());
        s.layers[0].digest = "sha256:../../etc/passwd".into();
        assert!(matches!(
            write_docker_archive(&[s], &dir.path().join("y.tar")),
            Err(Error::BadLayer { .. })
        ));
        assert!(!dir.path().join("y.tar").exists());
        assert!(write_docker_archive(&[], &dir.path().join("z.tar")).is_err());
    }
}
