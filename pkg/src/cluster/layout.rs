//! Image archives as content-addressed blobs, so `load` sends a node only the layers it lacks.
//! An archive (`docker save` output, in Docker's legacy layout or as an OCI layout) is indexed
//! in place: where each blob lies in the file and which blobs are layers. For one node, an OCI
//! layout tar is then written holding the index, manifests, configs and only the missing
//! layers; containerd's importer stores the blobs in the tar and unpacks the rest from its
//! content store (a layer in neither fails the import with "not found").

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::images::containerd_ref;

/// Why an archive could not be indexed; `load` then sends it whole, as containerd reads it.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read the image archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("{path} in the image archive is not valid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the image archive has no {0} (is it `docker save` output?)")]
    Missing(String),
    #[error(
        "image config {config} lists {diff_ids} layers but manifest.json {layers}; the archive \
         is damaged: save it again"
    )]
    LayerCount {
        config: String,
        diff_ids: usize,
        layers: usize,
    },
}

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// At this offset of the archive file.
    InFile(u64),
    /// Made here (a manifest for a legacy archive).
    Inline(Bytes),
}

/// One blob of the layout, by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    /// Layers may be left out for a node that has them; everything else is small and always
    /// sent, so the import never depends on metadata the node might collect as garbage.
    pub layer: bool,
    data: Data,
}

impl Blob {
    /// Metadata kindred wrote itself (a config read out, a manifest made): kept in memory.
    fn inline(digest: String, bytes: Vec<u8>) -> Blob {
        Blob {
            digest,
            size: bytes.len() as u64,
            layer: false,
            data: Data::Inline(bytes.into()),
        }
    }
}

/// An image archive as an OCI layout: `index.json` and its blobs.
#[derive(Debug, Clone)]
pub struct Layout {
    index: Bytes,
    pub blobs: Vec<Blob>,
}

/// A piece of the tar stream sent to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes of the archive file from `offset`.
    File {
        offset: u64,
        len: u64,
    },
}

/// What one node is sent of a layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into [`Layout::blobs`].
    pub send: Vec<usize>,
    pub layers_sent: usize,
    pub bytes_sent: u64,
    pub layers_present: usize,
    pub bytes_present: u64,
}

impl Plan {
    /// `1 of 5 layers sent (2.1 MB; 4 already there, 108.0 MB)`.
    pub fn summary(&self) -> String {
        let total = self.layers_sent + self.layers_present;
        let mut s = format!(
            "{} of {total} layers sent ({}",
            self.layers_sent,
            human(self.bytes_sent)
        );
        if self.layers_present > 0 {
            s += &format!(
                "; {} already there, {}",
                self.layers_present,
                human(self.bytes_present)
            );
        }
        s + ")"
    }
}

/// Decimal units, as `docker images` prints sizes.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A file or link in the archive.
#[derive(Debug, Clone)]
enum Entry {
    File {
        offset: u64,
        size: u64,
    },
    /// Resolved to a path from the archive's root.
    Link(String),
}

/// The archive's entries by path, read without loading any data.
struct Archive<'f> {
    file: &'f std::fs::File,
    entries: HashMap<String, Entry>,
}

impl<'f> Archive<'f> {
    fn index(file: &'f std::fs::File) -> Result<Self, LayoutError> {
        let mut tar = tar::Archive::new(file);
        let mut entries = HashMap::new();
        for entry in tar.entries_with_seek()? {
            let entry = entry?;
            let path = clean(&entry.path()?.to_string_lossy());
            let kind = entry.header().entry_type();
            let value = if kind.is_file() {
                Entry::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name()?.unwrap_or_default();
                let target = target.to_string_lossy();
                // Docker writes `<id>/layer.tar -> ../<other>/layer.tar` for a layer two
                // images share; hard links name a path from the root.
                Entry::Link(if kind.is_symlink() {
                    join(&path, &target)
                } else {
                    clean(&target)
                })
            } else {
                continue;
            };
            entries.insert(path, value);
        }
        (&*file).seek(SeekFrom::Start(0))?;
        Ok(Archive { file, entries })
    }

    /// Offset and size of a file, following links.
    fn locate(&self, path: &str) -> Result<(u64, u64), LayoutError> {
        let mut path = clean(path);
        for _ in 0..8 {
            match self.entries.get(&path) {
                Some(Entry::File { offset, size }) => return Ok((*offset, *size)),
                Some(Entry::Link(to)) => path = to.clone(),
                None => break,
            }
        }
        Err(LayoutError::Missing(path))
    }

    fn has(&self, path: &str) -> bool {
        self.entries.contains_key(&clean(path))
    }

    /// A (small) file's bytes.
    fn read(&self, path: &str) -> Result<Vec<u8>, LayoutError> {
        let (offset, size) = self.locate(path)?;
        let mut file = self.file;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(size as usize);
        file.take(size).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The first bytes of a file (its compression's magic number).
    fn head(&self, path: &str, n: u64) -> Result<Vec<u8>, LayoutError> {
        let (offset, size) = self.locate(path)?;
        let mut file = self.file;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.take(size.min(n)).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, LayoutError> {
        serde_json::from_slice(&self.read(path)?).map_err(|source| LayoutError::Json {
            path: path.to_string(),
            source,
        })
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

/// A symlink target relative to the link's directory, as a path from the root.
fn join(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A descriptor, its fields in the order containerd writes them, so a manifest made here is
/// byte for byte (and so digest for digest) the one `ctr images import` makes of the same
/// `docker save` archive.
#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

#[derive(Serialize)]
struct DockerManifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

impl Layout {
    /// Indexes an image archive. Blocking: it reads the file's tar headers and JSON files.
    pub fn read(file: &std::fs::File) -> Result<Layout, LayoutError> {
        let archive = Archive::index(file)?;
        // Docker 25+ writes both; index.json names blobs by digest and carries the names.
        if archive.has("index.json") {
            from_oci(&archive)
        } else if archive.has("manifest.json") {
            from_docker(&archive)
        } else {
            Err(LayoutError::Missing("index.json or manifest.json".into()))
        }
    }

    /// Every blob except the layers `have` holds.
    pub fn plan(&self, have: &HashSet<String>) -> Plan {
        let mut plan = Plan::default();
        for (i, blob) in self.blobs.iter().enumerate() {
            let present = blob.layer && have.contains(&blob.digest);
            if present {
                plan.layers_present += 1;
                plan.bytes_present += blob.size;
                continue;
            }
            if blob.layer {
                plan.layers_sent += 1;
                plan.bytes_sent += blob.size;
            }
            plan.send.push(i);
        }
        plan
    }

    /// The OCI layout tar for `plan`: the blobs, then `oci-layout` and `index.json`
    /// (containerd reads the whole tar before it looks at the index).
    pub fn tar_parts(&self, plan: &Plan) -> Vec<Part> {
        let mut parts = Vec::new();
        for &i in &plan.send {
            let blob = &self.blobs[i];
            let name = format!("blobs/{}", blob.digest.replacen(':', "/", 1));
            let body = match &blob.data {
                Data::InFile(offset) => Part::File {
                    offset: *offset,
                    len: blob.size,
                },
                Data::Inline(bytes) => Part::Bytes(bytes.clone()),
            };
            tar_entry(&mut parts, &name, blob.size, body);
        }
        let oci_layout = Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#);
        for (name, body) in [
            ("oci-layout", oci_layout),
            ("index.json", self.index.clone()),
        ] {
            tar_entry(&mut parts, name, body.len() as u64, Part::Bytes(body));
        }
        // The end of a tar: two zero blocks.
        parts.push(Part::Bytes(Bytes::from(vec![0u8; 1024])));
        parts
    }
}

fn tar_entry(parts: &mut Vec<Part>, name: &str, size: u64, body: Part) {
    parts.push(Part::Bytes(tar_header(name, size)));
    parts.push(body);
    parts.extend(padding(size));
}

fn tar_header(name: &str, size: u64) -> Bytes {
    let mut header = tar::Header::new_ustar();
    // Digest paths fit ustar's 100-byte name (sha256: 78 bytes; sha512 would not).
    let _ = header.set_path(name);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Bytes::copy_from_slice(header.as_bytes())
}

fn padding(size: u64) -> Option<Part> {
    let rest = (512 - size % 512) % 512;
    (rest > 0).then(|| Part::Bytes(Bytes::from(vec![0u8; rest as usize])))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Adds a blob once (images of one archive share layers).
fn push(blobs: &mut Vec<Blob>, seen: &mut HashSet<String>, blob: Blob) {
    if seen.insert(blob.digest.clone()) {
        blobs.push(blob);
    }
}

/// Docker's legacy `docker save` layout: `manifest.json` lists each image's config file and
/// layer tars in order, and the config's `rootfs.diff_ids` are those tars' digests, so
/// nothing needs hashing. Manifests are made as containerd's importer makes them.
fn from_docker(archive: &Archive) -> Result<Layout, LayoutError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        #[serde(default)]
        layers: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let entries: Vec<Entry> = archive.json("manifest.json")?;
    let (mut blobs, mut seen, mut index) = (Vec::new(), HashSet::new(), Vec::new());
    for entry in entries {
        let config_bytes = archive.read(&entry.config)?;
        let config: Config =
            serde_json::from_slice(&config_bytes).map_err(|source| LayoutError::Json {
                path: entry.config.clone(),
                source,
            })?;
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(LayoutError::LayerCount {
                config: entry.config,
                diff_ids: diff_ids.len(),
                layers: entry.layers.len(),
            });
        }
        let config_digest = sha256(&config_bytes);
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let (offset, size) = archive.locate(path)?;
            let (digest, media_type) = layer_blob(archive, path, diff_id)?;
            layers.push((digest.clone(), media_type, size));
            let data = Data::InFile(offset);
            let layer = true;
            push(
                &mut blobs,
                &mut seen,
                Blob {
                    digest,
                    size,
                    layer,
                    data,
                },
            );
        }
        let manifest = serde_json::to_vec(&DockerManifest {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: Descriptor {
                media_type: DOCKER_CONFIG,
                digest: &config_digest,
                size: config_bytes.len() as u64,
            },
            layers: layers
                .iter()
                .map(|(digest, media_type, size)| Descriptor {
                    media_type,
                    digest,
                    size: *size,
                })
                .collect(),
        })
        .expect("a manifest serializes");
        let manifest_digest = sha256(&manifest);
        index.extend(index_entries(
            &manifest_digest,
            manifest.len() as u64,
            entry.repo_tags.as_deref().unwrap_or_default(),
        ));
        push(
            &mut blobs,
            &mut seen,
            Blob::inline(config_digest, config_bytes),
        );
        push(
            &mut blobs,
            &mut seen,
            Blob::inline(manifest_digest, manifest),
        );
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": index});
    Ok(Layout {
        index: serde_json::to_vec(&index)
            .expect("an index serializes")
            .into(),
        blobs,
    })
}

/// A layer's blob digest and media type. Legacy `<id>/layer.tar` files are plain tars, whose
/// digest is the diff ID. A layer stored under its own digest (`blobs/sha256/<hex>`: Docker 25
/// and later, kindred's own archives) may be compressed, and then the blob is the file as it
/// is, named by that digest; containerd's importer stores it the same way.
fn layer_blob(
    archive: &Archive,
    path: &str,
    diff_id: &str,
) -> Result<(String, &'static str), LayoutError> {
    let Some(hex) = clean(path)
        .strip_prefix("blobs/sha256/")
        .map(str::to_string)
    else {
        return Ok((diff_id.to_string(), DOCKER_LAYER));
    };
    let digest = format!("sha256:{hex}");
    if digest == diff_id {
        return Ok((digest, DOCKER_LAYER));
    }
    match archive.head(path, 4)?.as_slice() {
        [0x1f, 0x8b, ..] => Ok((digest, DOCKER_LAYER_GZIP)),
        [0x28, 0xb5, 0x2f, 0xfd] => Ok((digest, OCI_LAYER_ZSTD)),
        _ => Err(LayoutError::Missing(format!(
            "known compression for {path} (its digest is not its diff ID)"
        ))),
    }
}

/// One index entry per name (containerd's names, as its importer gives a `docker save`
/// archive's images); an image without names gets one entry without, named by digest on
/// import (`--digests`).
fn index_entries(digest: &str, size: u64, repo_tags: &[String]) -> Vec<serde_json::Value> {
    let entry = |annotations: Option<serde_json::Value>| {
        let mut e =
            serde_json::json!({"mediaType": DOCKER_MANIFEST, "digest": digest, "size": size});
        if let Some(a) = annotations {
            e["annotations"] = a;
        }
        e
    };
    let named: Vec<_> = repo_tags
        .iter()
        .filter_map(|t| containerd_ref(t))
        .map(|name| {
            let tag = name.rsplit(':').next().unwrap_or_default().to_string();
            entry(Some(serde_json::json!({
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            })))
        })
        .collect();
    if named.is_empty() {
        vec![entry(None)]
    } else {
        named
    }
}

/// An OCI layout (Docker 25+, or `docker save` on the containerd image store): `index.json`
/// as it is, every blob by the digest its path names, and the layers found by walking the
/// index's manifests (blobs the archive leaves out, e.g. other platforms, are skipped).
fn from_oci(archive: &Archive) -> Result<Layout, LayoutError> {
    let index = archive.read("index.json")?;
    let root: serde_json::Value =
        serde_json::from_slice(&index).map_err(|source| LayoutError::Json {
            path: "index.json".into(),
            source,
        })?;
    let mut layers = HashSet::new();
    walk(archive, &root, &mut layers, 0)?;
    let mut blobs: Vec<Blob> = archive
        .entries
        .keys()
        .filter_map(|path| {
            let (alg, hex) = path.strip_prefix("blobs/")?.split_once('/')?;
            let (offset, size) = archive.locate(path).ok()?;
            let digest = format!("{alg}:{hex}");
            Some(Blob {
                layer: layers.contains(&digest),
                digest,
                size,
                data: Data::InFile(offset),
            })
        })
        .collect();
    // In archive order: the tar sent reads the file front to back.
    blobs.sort_by_key(|b| match b.data {
        Data::InFile(offset) => offset,
        Data::Inline(_) => 0,
    });
    Ok(Layout {
        index: index.into(),
        blobs,
    })
}

/// Collects the layer digests below an index or manifest.
fn walk(
    archive: &Archive,
    node: &serde_json::Value,
    layers: &mut HashSet<String>,
    depth: usize,
) -> Result<(), LayoutError> {
    for layer in node["layers"].as_array().into_iter().flatten() {
        if let Some(d) = layer["digest"].as_str() {
            layers.insert(d.to_string());
        }
    }
    if depth > 4 {
        return Ok(());
    }
    for child in node["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = child["digest"].as_str() else {
            continue;
        };
        let path = format!("blobs/{}", digest.replacen(':', "/", 1));
        if !archive.has(&path) {
            continue;
        }
        let value: serde_json::Value = archive.json(&path)?;
        walk(archive, &value, layers, depth + 1)?;
    }
    Ok(())
}

/// A tar file with these regular files and symlinks, for tests of archive reading.
#[cfg(test)]
pub(super) fn tar_with(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut builder = tar::Builder::new(file.reopen().unwrap());
    for (name, body) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *body).unwrap();
    }
    for (name, target) in links {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, name, target).unwrap();
    }
    builder.finish().unwrap();
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers stored under their own digest may be compressed (kindred's test-images archive
    /// gzips them): the blob is then the file under that digest, not the diff ID.
    #[test]
    fn compressed_layers_under_their_digest_keep_it() {
        let gz: &[u8] = &[0x1f, 0x8b, 8, 0, 1, 2, 3];
        let plain: &[u8] = b"plain layer";
        let (gz_digest, plain_digest) = (sha256(gz), sha256(plain));
        let config = format!(
            r#"{{"rootfs":{{"type":"layers","diff_ids":["sha256:{}","{plain_digest}"]}}}}"#,
            "0".repeat(64)
        );
        let gz_path = format!("blobs/sha256/{}", gz_digest.trim_start_matches("sha256:"));
        let plain_path = format!(
            "blobs/sha256/{}",
            plain_digest.trim_start_matches("sha256:")
        );
        let manifest = format!(
            r#"[{{"Config":"c.json","RepoTags":["me/z:1"],"Layers":["{gz_path}","{plain_path}"]}}]"#
        );
        let file = tar_with(
            &[
                (gz_path.as_str(), gz),
                (plain_path.as_str(), plain),
                ("c.json", config.as_bytes()),
                ("manifest.json", manifest.as_bytes()),
            ],
            &[],
        );
        let archive = Archive::index(file.as_file()).unwrap();
        assert_eq!(
            layer_blob(&archive, &gz_path, "sha256:x").unwrap(),
            (gz_digest.clone(), DOCKER_LAYER_GZIP)
        );
        assert_eq!(
            layer_blob(&archive, &plain_path, &plain_digest).unwrap(),
            (plain_digest.clone(), DOCKER_LAYER)
        );
        let layout = Layout::read(&file.reopen().unwrap()).unwrap();
        let layers = layer_digests(&layout);
        assert_eq!(layers, [gz_digest.as_str(), plain_digest.as_str()]);
    }

    /// The digests of the layout's layer blobs, in order.
    fn layer_digests(layout: &Layout) -> Vec<&str> {
        layout
            .blobs
            .iter()
            .filter(|b| b.layer)
            .map(|b| b.digest.as_str())
            .collect()
    }

    /// A legacy `docker save` of two images sharing their first layer (linked, as Docker does).
    fn docker_save() -> (tempfile::NamedTempFile, [String; 3], String) {
        let (l1, l2, l3): (&[u8], &[u8], &[u8]) = (b"base layer", b"top v1", b"top v2");
        let d = |b: &[u8]| sha256(b);
        let config = |top: &[u8]| {
            format!(
                r#"{{"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
                d(l1),
                d(top)
            )
        };
        let (c1, c2) = (config(l2), config(l3));
        let manifest = r#"[{"Config":"c1.json","RepoTags":["me/app:v1"],"Layers":["a/layer.tar","b/layer.tar"]},
                {"Config":"c2.json","RepoTags":null,"Layers":["x/layer.tar","c/layer.tar"]}]"#;
        let file = tar_with(
            &[
                ("a/layer.tar", l1),
                ("b/layer.tar", l2),
                ("c/layer.tar", l3),
                ("c1.json", c1.as_bytes()),
                ("c2.json", c2.as_bytes()),
                ("manifest.json", manifest.as_bytes()),
            ],
            &[("x/layer.tar", "../a/layer.tar")],
        );
        (file, [d(l1), d(l2), d(l3)], sha256(c1.as_bytes()))
    }

    /// The tar a node would receive, read back: name -> bytes.
    fn assemble(layout: &Layout, plan: &Plan, file: &std::fs::File) -> HashMap<String, Vec<u8>> {
        let mut out = Vec::new();
        for part in layout.tar_parts(plan) {
            match part {
                Part::Bytes(b) => out.extend_from_slice(&b),
                Part::File { offset, len } => {
                    let mut f = file;
                    f.seek(SeekFrom::Start(offset)).unwrap();
                    f.take(len).read_to_end(&mut out).unwrap();
                }
            }
        }
        assert_eq!(out.len() % 512, 0);
        let mut tar = tar::Archive::new(&out[..]);
        tar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (name, body)
            })
            .collect()
    }

    #[test]
    fn a_docker_save_archive_becomes_a_layout_with_containerds_manifests() {
        let (file, [l1, l2, l3], c1) = docker_save();
        let layout = Layout::read(&file.reopen().unwrap()).unwrap();
        let layers = layer_digests(&layout);
        // The shared layer once, through the link.
        assert_eq!(layers, [l1.as_str(), l2.as_str(), l3.as_str()]);
        assert_eq!(layout.blobs.len(), 3 + 2 + 2);
        let files = assemble(&layout, &layout.plan(&HashSet::new()), file.as_file());
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["annotations"]["io.containerd.image.name"],
            "docker.io/me/app:v1"
        );
        assert_eq!(
            entries[0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        assert!(entries[1].get("annotations").is_none());
        let digest = entries[0]["digest"].as_str().unwrap();
        let manifest = &files[&format!("blobs/sha256/{}", &digest[7..])];
        assert_eq!(sha256(manifest), digest);
        assert_eq!(
            String::from_utf8_lossy(manifest),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{c1}","size":{}}},"layers":[{{"mediaType":"{DOCKER_LAYER}","digest":"{l1}","size":10}},{{"mediaType":"{DOCKER_LAYER}","digest":"{l2}","size":6}}]}}"#,
                files[&format!("blobs/sha256/{}", &c1[7..])].len()
            )
        );
        assert_eq!(files[&format!("blobs/sha256/{}", &l1[7..])], b"base layer");
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    }

    #[test]
    fn a_node_is_sent_only_the_layers_it_lacks() {
        let (file, [l1, l2, l3], _) = docker_save();
        let layout = Layout::read(file.as_file()).unwrap();
        let have = HashSet::from([l1.clone(), l2.clone(), "sha256:unrelated".to_string()]);
        let plan = layout.plan(&have);
        assert_eq!((plan.layers_sent, plan.bytes_sent), (1, 6));
        assert_eq!((plan.layers_present, plan.bytes_present), (2, 16));
        assert_eq!(
            plan.summary(),
            "1 of 3 layers sent (6 B; 2 already there, 16 B)"
        );
        let files = assemble(&layout, &plan, file.as_file());
        assert!(files.contains_key(&format!("blobs/sha256/{}", &l3[7..])));
        assert!(!files.contains_key(&format!("blobs/sha256/{}", &l1[7..])));
        // Configs and manifests always go.
        assert_eq!(files.len(), 1 + 2 + 2 + 2);
        let all = layout.plan(&HashSet::new());
        assert_eq!(all.summary(), "3 of 3 layers sent (22 B)");
    }

    #[test]
    fn an_oci_layout_keeps_its_index_and_knows_its_layers() {
        let layer = b"layer".as_slice();
        let ld = sha256(layer);
        let config = b"{}".as_slice();
        let cd = sha256(config);
        let manifest = format!(
            r#"{{"config":{{"digest":"{cd}","size":2}},"layers":[{{"digest":"{ld}","size":5}}]}}"#
        );
        let md = sha256(manifest.as_bytes());
        let index = format!(
            r#"{{"manifests":[{{"digest":"{md}","annotations":{{"io.containerd.image.name":"docker.io/me/app:v1"}}}},{{"digest":"sha256:otherplatform"}}]}}"#
        );
        let blob = |d: &str| format!("blobs/sha256/{}", &d[7..]);
        let file = tar_with(
            &[
                (&blob(&ld), layer),
                (&blob(&cd), config),
                (&blob(&md), manifest.as_bytes()),
                ("index.json", index.as_bytes()),
                ("manifest.json", b"[]"),
                ("oci-layout", b"{}"),
            ],
            &[],
        );
        let layout = Layout::read(&file.reopen().unwrap()).unwrap();
        let layers = layer_digests(&layout);
        assert_eq!(layers, [ld.as_str()]);
        let plan = layout.plan(&HashSet::from([ld.clone()]));
        let files = assemble(&layout, &plan, file.as_file());
        assert_eq!(files["index.json"], index.as_bytes());
        assert!(files.contains_key(&blob(&md)) && files.contains_key(&blob(&cd)));
        assert!(!files.contains_key(&blob(&ld)));
    }

    #[test]
    fn damaged_archives_are_refused() {
        let file = tar_with(&[("hello.txt", b"hi")], &[]);
        assert!(matches!(
            Layout::read(file.as_file()),
            Err(LayoutError::Missing(_))
        ));
        let manifest = br#"[{"Config":"c.json","Layers":["a/layer.tar"]}]"#;
        let file = tar_with(
            &[
                ("manifest.json", manifest),
                ("c.json", br#"{"rootfs":{"diff_ids":[]}}"#),
            ],
            &[],
        );
        assert!(matches!(
            Layout::read(file.as_file()),
            Err(LayoutError::LayerCount { .. })
        ));
    }

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(2_100_000), "2.1 MB");
        assert_eq!(human(1_073_741_824), "1.1 GB");
    }
}
