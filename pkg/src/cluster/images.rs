//! Pure logic behind `load`: how Docker names map to containerd's, what a node's image store
//! holds, what a node still needs, and what an image archive contains.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;

/// An image to have on a node: its ID (the config digest, which Docker and the CRI both call
/// the image ID) and the names it should carry there, spelled the way containerd spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// What the user called it, for messages.
    pub display: String,
    /// `sha256:<config digest>`; `None` when unknown, which means "always import".
    pub id: Option<String>,
    pub tags: Vec<String>,
}

/// What a node has to do for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The image is there under other names: add these.
    Tags(Vec<String>),
    Import,
}

/// A node's image store as the CRI (and so kubelet) sees it: image ID -> names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeImages(pub HashMap<String, Vec<String>>);

impl NodeImages {
    /// Parses `crictl images -o json`.
    pub fn from_crictl_json(json: &str) -> Result<NodeImages, String> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            images: Vec<Image>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Image {
            id: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
        }
        let list: List = serde_json::from_str(json)
            .map_err(|e| format!("cannot read `crictl images -o json`: {e}"))?;
        Ok(NodeImages(
            list.images
                .into_iter()
                .map(|i| (i.id, i.repo_tags.unwrap_or_default()))
                .collect(),
        ))
    }

    pub fn need(&self, wanted: &Wanted) -> Need {
        let Some(tags) = wanted.id.as_ref().and_then(|id| self.0.get(id)) else {
            return Need::Import;
        };
        let missing: Vec<String> = wanted
            .tags
            .iter()
            .filter(|t| !tags.contains(t))
            .cloned()
            .collect();
        if missing.is_empty() {
            Need::Nothing
        } else {
            Need::Tags(missing)
        }
    }

    /// True when an import left the image here: found by ID with all its names, or, for an
    /// image whose config digest is unknown, by carrying every wanted name under one image.
    /// (Docker's containerd image store gives an image the ID of its manifest or index, while
    /// the CRI keys images by their config, so there only the names tell.)
    pub fn received(&self, wanted: &Wanted) -> bool {
        match wanted.id {
            Some(_) => self.need(wanted) == Need::Nothing,
            None => {
                !wanted.tags.is_empty()
                    && self
                        .0
                        .values()
                        .any(|tags| wanted.tags.iter().all(|t| tags.contains(t)))
            }
        }
    }

    /// A name containerd knows the image by, to tag from: one of its names, else the ID
    /// reference the CRI keeps for every image.
    pub fn source_ref(&self, id: &str) -> String {
        self.0
            .get(id)
            .and_then(|tags| tags.first().cloned())
            .unwrap_or_else(|| id.to_string())
    }
}

/// containerd's full name for a Docker image reference: `nginx` -> `docker.io/library/nginx:latest`,
/// `localhost:5000/a/b:1` stays as is. `None` for an image ID or a digest reference, which
/// carry no tag to add.
pub fn containerd_ref(name: &str) -> Option<String> {
    if looks_like_id(name) || name.contains('@') {
        return None;
    }
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let rest = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    let last = rest.rsplit('/').next().unwrap_or_default();
    let tag = if last.contains(':') { "" } else { ":latest" };
    Some(format!("{domain}/{rest}{tag}"))
}

/// `sha256:<hex>` or a bare 64-hex ID. (Short IDs are told apart by asking Docker.)
pub fn looks_like_id(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    (name.starts_with("sha256:") || hex.len() == 64)
        && !hex.is_empty()
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// The snapshotter the CRI unpacks images with, from `containerd config dump`; images must be
/// imported with the same one or kubelet cannot start them. `None`: containerd's default.
pub fn cri_snapshotter(config_dump: &str) -> Option<String> {
    let mut in_images = false;
    for line in config_dump.lines().map(str::trim) {
        if line.starts_with('[') {
            // containerd 2.x, and 1.x's CRI plugin section.
            in_images = line == "[plugins.'io.containerd.cri.v1.images']"
                || line == "[plugins.\"io.containerd.grpc.v1.cri\".containerd]";
            continue;
        }
        if !in_images {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "snapshotter" {
                let v = value.trim().trim_matches(['\'', '"']);
                return (!v.is_empty()).then(|| v.to_string());
            }
        }
    }
    None
}

/// One image in an archive on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    pub id: Option<String>,
    /// containerd names.
    pub tags: Vec<String>,
}

/// Checks `path` is an image archive (a tar with `manifest.json` from `docker save`, or an
/// OCI layout's `index.json`) and lists its images. The error says what is wrong with it.
pub fn read_archive(path: &Path) -> Result<Vec<ArchiveImage>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("image archive {shown} does not exist"),
        _ => format!("cannot read image archive {shown}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("image archive {shown} is not a file"));
    }
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open image archive {shown}: {e}"))?;
    let mut header = [0u8; 512];
    let read = read_up_to(&mut file, &mut header)
        .map_err(|e| format!("cannot read image archive {shown}: {e}"))?;
    check_tar_header(&header[..read]).map_err(|why| format!("{shown} {why}"))?;
    file.rewind()
        .map_err(|e| format!("cannot read image archive {shown}: {e}"))?;
    let (manifest, index) = archive_metadata(file)
        .map_err(|e| format!("{shown} is not a readable tar archive: {e}"))?;
    match (manifest, index) {
        (Some(m), _) => parse_docker_manifest(&m).map_err(|e| format!("{shown}: {e}")),
        (None, Some(i)) => parse_oci_index(&i).map_err(|e| format!("{shown}: {e}")),
        (None, None) => Err(format!(
            "{shown} is a tar archive but not an image archive (no manifest.json or index.json); \
             make one with `docker save IMAGE -o FILE`"
        )),
    }
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A POSIX/GNU tar starts with a 512-byte header whose magic at offset 257 is `ustar`.
fn check_tar_header(header: &[u8]) -> Result<(), String> {
    if header.starts_with(&[0x1f, 0x8b]) {
        return Err(
            "is gzip-compressed; containerd imports plain tar archives: `gunzip` it first".into(),
        );
    }
    if header.len() < 512 || &header[257..262] != b"ustar" {
        return Err("is not a tar archive (make one with `docker save IMAGE -o FILE`)".into());
    }
    Ok(())
}

/// The contents of `manifest.json` and `index.json` at the archive's top level.
fn archive_metadata(file: std::fs::File) -> std::io::Result<(Option<String>, Option<String>)> {
    let mut archive = tar::Archive::new(file);
    let (mut manifest, mut index) = (None, None);
    for entry in archive.entries_with_seek()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let slot = match path.trim_start_matches("./") {
            "manifest.json" => &mut manifest,
            "index.json" => &mut index,
            _ => continue,
        };
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        *slot = Some(text);
    }
    Ok((manifest, index))
}

fn parse_docker_manifest(json: &str) -> Result<Vec<ArchiveImage>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
    }
    let entries: Vec<Entry> =
        serde_json::from_str(json).map_err(|e| format!("unreadable manifest.json: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            // `<hex>.json` (Docker before 25) or `blobs/sha256/<hex>`: named by its digest.
            let name = e.config.rsplit('/').next().unwrap_or_default();
            let hex = name.strip_suffix(".json").unwrap_or(name);
            let id = (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| format!("sha256:{hex}"));
            ArchiveImage {
                id,
                tags: e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| containerd_ref(t))
                    .collect(),
            }
        })
        .collect())
}

/// An OCI layout names images but not their config digests without reading further blobs, so
/// these are always imported.
fn parse_oci_index(json: &str) -> Result<Vec<ArchiveImage>, String> {
    let index: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("unreadable index.json: {e}"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    Ok(manifests
        .iter()
        .map(|m| ArchiveImage {
            id: None,
            tags: m["annotations"]["io.containerd.image.name"]
                .as_str()
                .map(|n| vec![n.to_string()])
                .unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::layout::tar_with;

    const ID: &str = "sha256:32379086076f82ebe1650347d6fcefdd2c4127b98cf1c00683eabe0410269a3e";

    #[test]
    fn an_image_without_a_known_config_digest_is_found_by_its_names() {
        let store = NodeImages(HashMap::from([(
            "sha256:config".to_string(),
            vec!["kindred.test/smoke:v1".to_string()],
        )]));
        let wanted = |id: Option<&str>, tags: &[&str]| Wanted {
            display: "kindred.test/smoke:v1".into(),
            id: id.map(str::to_string),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        // Docker's containerd image store: no config digest, always imported, found by name.
        let by_name = wanted(None, &["kindred.test/smoke:v1"]);
        assert_eq!(store.need(&by_name), Need::Import);
        assert!(store.received(&by_name));
        assert!(!store.received(&wanted(None, &["kindred.test/other:v1"])));
        assert!(!store.received(&wanted(None, &[])));
        // A known config digest must be there itself, names alone do not count.
        assert!(store.received(&wanted(Some("sha256:config"), &["kindred.test/smoke:v1"])));
        assert!(!store.received(&wanted(Some("sha256:other"), &["kindred.test/smoke:v1"])));
    }

    #[test]
    fn docker_names_become_containerd_names() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("me/app", "docker.io/me/app:latest"),
            ("me/app:v1", "docker.io/me/app:v1"),
            ("daily-e2e/hello:v1", "docker.io/daily-e2e/hello:v1"),
            ("docker.io/library/busybox:1", "docker.io/library/busybox:1"),
            ("index.docker.io/me/app", "docker.io/me/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b:2", "localhost:5000/a/b:2"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("ghcr.io/x/y", "ghcr.io/x/y:latest"),
        ];
        for (docker, containerd) in cases {
            assert_eq!(
                containerd_ref(docker).as_deref(),
                Some(containerd),
                "{docker}"
            );
        }
        assert_eq!(containerd_ref(ID), None);
        assert_eq!(containerd_ref(&ID[7..]), None);
        assert_eq!(containerd_ref("nginx@sha256:abc"), None);
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(looks_like_id(ID));
        assert!(looks_like_id(&ID[7..]));
        assert!(!looks_like_id("sha256:"));
        assert!(!looks_like_id("cafe"));
        assert!(!looks_like_id("nginx"));
    }

    fn store() -> NodeImages {
        NodeImages::from_crictl_json(&format!(
            r#"{{"images": [
                {{"id": "{ID}", "repoTags": ["docker.io/me/app:v1"], "repoDigests": []}},
                {{"id": "sha256:00", "repoTags": null}}
            ]}}"#
        ))
        .unwrap()
    }

    fn wanted(id: Option<&str>, tags: &[&str]) -> Wanted {
        Wanted {
            display: "x".into(),
            id: id.map(str::to_string),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_node_needs_nothing_a_tag_or_the_image() {
        let s = store();
        assert_eq!(
            s.need(&wanted(Some(ID), &["docker.io/me/app:v1"])),
            Need::Nothing
        );
        assert_eq!(s.need(&wanted(Some(ID), &[])), Need::Nothing);
        assert_eq!(
            s.need(&wanted(
                Some(ID),
                &["docker.io/me/app:v1", "docker.io/me/app:v2"]
            )),
            Need::Tags(vec!["docker.io/me/app:v2".into()])
        );
        assert_eq!(s.need(&wanted(Some("sha256:11"), &[])), Need::Import);
        assert_eq!(
            s.need(&wanted(None, &["docker.io/me/app:v1"])),
            Need::Import
        );
        assert_eq!(s.source_ref(ID), "docker.io/me/app:v1");
        assert_eq!(s.source_ref("sha256:00"), "sha256:00");
        assert!(NodeImages::from_crictl_json("not json").is_err());
        assert_eq!(
            NodeImages::from_crictl_json("{}").unwrap(),
            NodeImages::default()
        );
    }

    #[test]
    fn the_cri_snapshotter_is_read_from_the_config_dump() {
        let v2 = "version = 3\n[plugins]\n  [plugins.'io.containerd.cri.v1.images']\n    snapshotter = 'overlayfs'\n  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n    snapshotter = ''\n";
        assert_eq!(cri_snapshotter(v2).as_deref(), Some("overlayfs"));
        let v1 = "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n";
        assert_eq!(cri_snapshotter(v1).as_deref(), Some("native"));
        assert_eq!(
            cri_snapshotter("[plugins.'x']\nsnapshotter = 'zfs'\n"),
            None
        );
        assert_eq!(cri_snapshotter(""), None);
    }

    #[test]
    fn docker_save_archives_name_their_images() {
        let manifest = format!(
            r#"[{{"Config":"{}.json","RepoTags":["me/app:v1","nginx"],"Layers":["l/layer.tar"]}},
                {{"Config":"blobs/sha256/{}","RepoTags":null,"Layers":[]}}]"#,
            &ID[7..],
            &ID[7..]
        );
        let file = tar_with(
            &[
                ("l/layer.tar", b"x"),
                ("manifest.json", manifest.as_bytes()),
            ],
            &[],
        );
        let images = read_archive(file.path()).unwrap();
        assert_eq!(
            images,
            vec![
                ArchiveImage {
                    id: Some(ID.into()),
                    tags: vec![
                        "docker.io/me/app:v1".into(),
                        "docker.io/library/nginx:latest".into()
                    ],
                },
                ArchiveImage {
                    id: Some(ID.into()),
                    tags: vec![]
                },
            ]
        );
    }

    #[test]
    fn oci_layouts_are_always_imported() {
        let index = r#"{"manifests":[{"digest":"sha256:aa","annotations":{"io.containerd.image.name":"docker.io/me/app:v1"}}]}"#;
        let file = tar_with(
            &[("oci-layout", b"{}"), ("index.json", index.as_bytes())],
            &[],
        );
        assert_eq!(
            read_archive(file.path()).unwrap(),
            vec![ArchiveImage {
                id: None,
                tags: vec!["docker.io/me/app:v1".into()]
            }]
        );
    }

    #[test]
    fn bad_archives_are_explained() {
        let err = read_archive(Path::new("/no/such/image.tar")).unwrap_err();
        assert!(err.contains("/no/such/image.tar does not exist"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        assert!(read_archive(dir.path())
            .unwrap_err()
            .contains("is not a file"));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(read_archive(&text)
            .unwrap_err()
            .contains("is not a tar archive"));
        let gz = dir.path().join("image.tar.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0]).unwrap();
        assert!(read_archive(&gz).unwrap_err().contains("gunzip"));
        let plain = tar_with(&[("hello.txt", b"hi")], &[]);
        assert!(read_archive(plain.path())
            .unwrap_err()
            .contains("not an image archive"));
    }
}
