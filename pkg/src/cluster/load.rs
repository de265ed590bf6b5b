//! `load docker-image` / `load image-archive`: put images into the nodes' containerd (namespace
//! `k8s.io`, where kubelet looks), so pods can use them without a registry. The image data is
//! read once (one `docker save` stream, spooled to a file, or the archive itself) and indexed by
//! digest (`layout.rs`); every node that lacks the image gets, concurrently, only the layers
//! its content store lacks. Nodes that have the image are skipped, nodes that have it under
//! other names only get the missing names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt};

use super::images::{self, Need, NodeImages, Wanted};
use super::layout::{Layout, Part, Plan};
use super::{select_nodes, ClusterError};
use crate::provider::{ExecOutput, InputStream, Provider, ProviderError};
use crate::ui::{Step, Ui};

/// Why one node did not get an image; shown in its [`LoadReport`]. Clone, since one failed
/// stream fails every node it was sent to.
#[derive(Debug, Clone, thiserror::Error)]
enum NodeLoadError {
    #[error(transparent)]
    Provider(Arc<ProviderError>),
    /// A command that asks the node's containerd what it has failed. With an empty output it
    /// was seen when the host's disk was full.
    #[error(
        "`{command}` failed on {node} (exit {code}): {}\n\
         Check that containerd runs in the node (`docker exec {node} systemctl status \
         containerd`) and that the Docker host's disk has room",
        if output.is_empty() { "no output" } else { output }
    )]
    NodeQuery {
        command: &'static str,
        node: String,
        code: i64,
        output: String,
    },
    #[error(
        "cannot write the images to a temporary file (set TMPDIR to a directory with room for \
         them): {0}"
    )]
    Spool(Arc<std::io::Error>),
    /// The archive could not be indexed by digest (it is then sent whole).
    #[error("{0}")]
    Layout(String),
    /// `crictl images -o json` printed something unexpected.
    #[error("{0}")]
    ImageList(String),
    #[error("`{command}` failed on {node}: {stderr}")]
    Tag {
        node: String,
        command: String,
        stderr: String,
    },
    #[error("`{command}` failed on {node} (exit code {code}): {stdout}{stderr}")]
    Import {
        node: String,
        command: String,
        code: i64,
        stdout: String,
        stderr: String,
    },
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Reading the image stream (`docker save`, or the file) failed midway.
    #[error("{0}")]
    Source(String),
    #[error(
        "{image} is not in containerd on {node} after the import (an image for another \
         platform? or, on Docker's containerd image store, an image loaded by ID: load it by \
         name)"
    )]
    NotImported { image: String, node: String },
}

impl NodeLoadError {
    fn query(command: &'static str, node: &str, out: &ExecOutput) -> Self {
        let output = if out.stderr.trim().is_empty() {
            out.stdout.trim()
        } else {
            out.stderr.trim()
        };
        NodeLoadError::NodeQuery {
            command,
            node: node.to_string(),
            code: out.code,
            output: output.to_string(),
        }
    }
}

impl From<ProviderError> for NodeLoadError {
    fn from(e: ProviderError) -> Self {
        NodeLoadError::Provider(Arc::new(e))
    }
}

/// Where the images come from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Images in the host's Docker, by name or ID.
    Docker(Vec<String>),
    /// `docker save` archives (or OCI layouts) on disk.
    Archives(Vec<PathBuf>),
}

/// What happened to one image on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    AlreadyPresent,
    /// The image was there; these names were added.
    Retagged(Vec<String>),
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Loaded => write!(f, "loaded"),
            Outcome::AlreadyPresent => write!(f, "already present"),
            Outcome::Retagged(tags) => write!(f, "retagged ({})", tags.join(", ")),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub node: String,
    pub image: String,
    pub outcome: Outcome,
}

/// One stream to import and the images it holds.
struct Unit {
    source: UnitSource,
    images: Vec<Wanted>,
}

enum UnitSource {
    Docker,
    File(PathBuf),
}

/// Loads images into the selected nodes (`node_names` empty: every node) and reports per node
/// and image. Errors in the input (unknown cluster, node, image, bad archive) fail before
/// anything is sent; a node that fails is reported as such and the others carry on.
pub async fn load(
    docker: &dyn Provider,
    cluster: &str,
    node_names: &[String],
    source: &ImageSource,
    ui: &Ui,
) -> Result<Vec<LoadReport>, ClusterError> {
    // Images go to Kubernetes nodes only, not an HA cluster's load balancer.
    let mut all = super::nodes(docker, Some(cluster)).await?;
    all.retain(|n| n.role != super::LOAD_BALANCER_ROLE);
    let nodes = select_nodes(cluster, &all, node_names, &super::clusters(docker).await?)?;
    let units = resolve(docker, source).await?;

    let step = ui.step(format!("Checking the images on {} node(s)", nodes.len()));
    let stores = join_all(nodes.iter().map(|n| node_images(docker, n))).await;
    step.done();

    let mut reports = Vec::new();
    for unit in &units {
        reports.extend(load_unit(docker, &nodes, &stores, unit, ui).await);
    }
    Ok(reports)
}

/// Checks every input before any node is touched, and says what each holds.
async fn resolve(docker: &dyn Provider, source: &ImageSource) -> Result<Vec<Unit>, ClusterError> {
    match source {
        ImageSource::Docker(names) => {
            // On Docker's containerd image store the image ID is no config digest: the nodes
            // cannot be asked for it, so the image is always sent and recognised by its names.
            let ids_are_configs = !docker.uses_containerd_image_store().await?;
            let mut wanted = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match docker.image_id(name).await? {
                    Some(id) => {
                        // A (short) ID carries no name to add on the nodes.
                        let bare = name.trim_start_matches("sha256:");
                        let is_id = bare.chars().all(|c| c.is_ascii_hexdigit())
                            && id.trim_start_matches("sha256:").starts_with(bare);
                        wanted.push(Wanted {
                            display: name.clone(),
                            id: Some(id).filter(|_| ids_are_configs),
                            tags: if is_id {
                                vec![]
                            } else {
                                images::containerd_ref(name).into_iter().collect()
                            },
                        });
                    }
                    None => missing.push(name.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(ClusterError::ImagesNotInDocker {
                    images: missing.iter().map(|m| m.to_string()).collect(),
                });
            }
            let mut seen = std::collections::HashSet::new();
            wanted.retain(|w| seen.insert(w.display.clone()));
            Ok(vec![Unit {
                source: UnitSource::Docker,
                images: wanted,
            }])
        }
        ImageSource::Archives(paths) => {
            let mut units = Vec::new();
            for path in paths {
                let p = path.clone();
                let found = tokio::task::spawn_blocking(move || images::read_archive(&p))
                    .await?
                    .map_err(ClusterError::BadArchive)?;
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                units.push(Unit {
                    source: UnitSource::File(path.clone()),
                    images: found
                        .into_iter()
                        .map(|i| Wanted {
                            display: i.tags.first().cloned().unwrap_or_else(|| match &i.id {
                                Some(id) => format!("{file} ({})", short(id)),
                                None => file.clone(),
                            }),
                            id: i.id,
                            tags: i.tags,
                        })
                        .collect(),
                });
            }
            Ok(units)
        }
    }
}

fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// A node's images as the CRI sees them.
async fn node_images(docker: &dyn Provider, node: &str) -> Result<NodeImages, NodeLoadError> {
    let out = docker
        .exec(node, &["crictl", "images", "-o", "json"])
        .await?;
    if out.code != 0 {
        return Err(NodeLoadError::query("crictl images", node, &out));
    }
    NodeImages::from_crictl_json(&out.stdout).map_err(NodeLoadError::ImageList)
}

async fn load_unit(
    docker: &dyn Provider,
    nodes: &[String],
    stores: &[Result<NodeImages, NodeLoadError>],
    unit: &Unit,
    ui: &Ui,
) -> Vec<LoadReport> {
    // Which nodes need the stream at all, and (from Docker) which of its images.
    let importers: Vec<usize> = (0..nodes.len())
        .filter(|&i| match &stores[i] {
            Ok(store) => unit.images.iter().any(|w| store.need(w) == Need::Import),
            Err(_) => false,
        })
        .collect();
    let mut imported: Vec<Option<Result<(), NodeLoadError>>> = vec![None; nodes.len()];
    // The images in the stream (from Docker, only those some node lacks).
    let mut streamed: Vec<String> = Vec::new();
    if !importers.is_empty() {
        let needed: Vec<String> = unit
            .images
            .iter()
            .filter(|w| {
                importers
                    .iter()
                    .any(|&i| matches!(&stores[i], Ok(s) if s.need(w) == Need::Import))
            })
            .map(|w| w.display.clone())
            .collect();
        streamed = match unit.source {
            UnitSource::Docker => needed.clone(),
            UnitSource::File(_) => unit.images.iter().map(|w| w.display.clone()).collect(),
        };
        let step = ui.step(format!(
            "Loading {} into {}",
            needed.join(", "),
            importers
                .iter()
                .map(|&i| nodes[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // An image without a name (loaded by ID) is kept by containerd only under a digest name.
        let by_digest = unit
            .images
            .iter()
            .any(|w| w.tags.is_empty() && streamed.contains(&w.display));
        let targets: Vec<&str> = importers.iter().map(|&i| nodes[i].as_str()).collect();
        let results = send(docker, &targets, unit, &needed, by_digest, &step).await;
        for (&i, r) in importers.iter().zip(results) {
            imported[i] = Some(r);
        }
        if imported.iter().flatten().all(Result::is_ok) {
            step.done();
        } else {
            step.fail();
        }
    }

    let finish = nodes.iter().enumerate().map(|(i, node)| {
        let store = stores[i].clone();
        let import = imported[i].clone();
        let streamed = &streamed;
        async move { finish_node(docker, node, store, import, &unit.images, streamed).await }
    });
    join_all(finish).await.into_iter().flatten().collect()
}

/// After any import: verify, add missing names, and say what happened per image.
async fn finish_node(
    docker: &dyn Provider,
    node: &str,
    before: Result<NodeImages, NodeLoadError>,
    import: Option<Result<(), NodeLoadError>>,
    wanted: &[Wanted],
    streamed: &[String],
) -> Vec<LoadReport> {
    let report = |w: &Wanted, outcome| LoadReport {
        node: node.to_string(),
        image: w.display.clone(),
        outcome,
    };
    let before = match before {
        Ok(b) => b,
        Err(why) => {
            return wanted
                .iter()
                .map(|w| report(w, Outcome::Failed(why.to_string())))
                .collect()
        }
    };
    if let Some(Err(why)) = &import {
        return wanted
            .iter()
            .map(|w| match before.need(w) {
                Need::Nothing => report(w, Outcome::AlreadyPresent),
                _ => report(w, Outcome::Failed(why.to_string())),
            })
            .collect();
    }
    let after = match import {
        Some(_) => {
            let imported: Vec<&Wanted> = wanted
                .iter()
                .filter(|w| streamed.contains(&w.display))
                .collect();
            match settled(docker, node, &imported).await {
                Ok(a) => a,
                Err(why) => {
                    return wanted
                        .iter()
                        .map(|w| report(w, Outcome::Failed(why.to_string())))
                        .collect()
                }
            }
        }
        None => before.clone(),
    };
    let mut out = Vec::new();
    for w in wanted {
        let outcome = match (before.need(w), after.need(w)) {
            // Docker's containerd image store: recognised by its names (see `resolve`).
            (_, Need::Import) if after.received(w) => Outcome::Loaded,
            (_, Need::Import) => Outcome::Failed(
                NodeLoadError::NotImported {
                    image: w.display.clone(),
                    node: node.to_string(),
                }
                .to_string(),
            ),
            (Need::Import, Need::Nothing) => Outcome::Loaded,
            // The import brought the missing names along.
            (Need::Tags(tags), Need::Nothing) => Outcome::Retagged(tags),
            (_, Need::Tags(tags)) => {
                let id = w.id.as_deref().unwrap_or_default();
                match tag(docker, node, &after.source_ref(id), &tags).await {
                    Ok(()) if before.need(w) == Need::Import => Outcome::Loaded,
                    Ok(()) => Outcome::Retagged(tags),
                    Err(why) => Outcome::Failed(why.to_string()),
                }
            }
            (_, Need::Nothing) => Outcome::AlreadyPresent,
        };
        out.push(report(w, outcome));
    }
    out
}

/// The CRI learns about imported images from containerd's events, a moment later: wait until
/// every imported image shows up with its names (or a few seconds pass).
async fn settled(
    docker: &dyn Provider,
    node: &str,
    wanted: &[&Wanted],
) -> Result<NodeImages, NodeLoadError> {
    let mut last = node_images(docker, node).await?;
    for _ in 0..20 {
        if wanted.iter().all(|w| last.received(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = node_images(docker, node).await?;
    }
    Ok(last)
}

async fn tag(
    docker: &dyn Provider,
    node: &str,
    source: &str,
    tags: &[String],
) -> Result<(), NodeLoadError> {
    for t in tags {
        let cmd = ["ctr", "-n", "k8s.io", "images", "tag", "--force", source, t];
        let out = docker.exec(node, &cmd).await?;
        if out.code != 0 {
            return Err(NodeLoadError::Tag {
                node: node.to_string(),
                command: cmd.join(" "),
                stderr: out.stderr.trim().to_string(),
            });
        }
    }
    Ok(())
}

/// The unit's images into `nodes`, concurrently; one result per node. The image data is read
/// once (a `docker save` stream is spooled to a temporary file, an archive is read where it
/// is) and indexed by digest; each node then gets an OCI layout with only the layers its
/// containerd lacks. An archive that cannot be indexed is sent whole to every node.
async fn send(
    docker: &dyn Provider,
    nodes: &[&str],
    unit: &Unit,
    needed: &[String],
    by_digest: bool,
    step: &Step,
) -> Vec<Result<(), NodeLoadError>> {
    let every = |e: NodeLoadError| nodes.iter().map(|_| Err(e.clone())).collect();
    let spooled;
    let path = match &unit.source {
        UnitSource::Docker => match spool(docker.export_images(needed)).await {
            Ok(file) => {
                spooled = file;
                spooled.path().to_path_buf()
            }
            Err(e) => return every(e),
        },
        UnitSource::File(path) => path.clone(),
    };
    let layout = match index(&path).await {
        Ok(layout) => layout,
        Err(NodeLoadError::Layout(why)) => {
            step.note(format!("sending the whole archive: {why}"));
            return send_whole(docker, nodes, &path, by_digest).await;
        }
        Err(e) => return every(e),
    };
    let (layout, path) = (&layout, &path);
    let sends = nodes.iter().map(|&node| async move {
        let plan = send_missing(docker, node, layout, path, by_digest).await?;
        step.note(format!("{node}: {}", plan.summary()));
        Ok(())
    });
    join_all(sends).await
}

/// Writes a stream to a temporary file (`$TMPDIR`), deleted when dropped.
async fn spool(mut stream: InputStream) -> Result<tempfile::NamedTempFile, NodeLoadError> {
    use tokio::io::AsyncWriteExt;
    let spool_error = |e: std::io::Error| NodeLoadError::Spool(Arc::new(e));
    let tmp = tempfile::Builder::new()
        .prefix("kindred-load-")
        .suffix(".tar")
        .tempfile()
        .map_err(spool_error)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(spool_error)?);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| NodeLoadError::Source(e.to_string()))?;
        file.write_all(&chunk).await.map_err(spool_error)?;
    }
    file.flush().await.map_err(spool_error)?;
    Ok(tmp)
}

async fn index(path: &Path) -> Result<Arc<Layout>, NodeLoadError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|source| NodeLoadError::Open {
            path: path.clone(),
            source: Arc::new(source),
        })?;
        Layout::read(&file)
            .map(Arc::new)
            .map_err(|e| NodeLoadError::Layout(e.to_string()))
    })
    .await
    .unwrap_or_else(|e| Err(NodeLoadError::Source(e.to_string())))
}

/// One node: the blobs its containerd lacks, then the import. If the import fails after
/// leaving layers out (containerd may have collected one as garbage since it was listed),
/// the node gets everything once more.
async fn send_missing(
    docker: &dyn Provider,
    node: &str,
    layout: &Layout,
    path: &Path,
    by_digest: bool,
) -> Result<Plan, NodeLoadError> {
    let have = node_content(docker, node).await?;
    let plan = layout.plan(&have);
    let stream = layout_stream(path, layout.tar_parts(&plan));
    match import(docker, node, stream, by_digest).await {
        Err(_) if plan.layers_present > 0 => {
            let all = layout.plan(&HashSet::new());
            let stream = layout_stream(path, layout.tar_parts(&all));
            import(docker, node, stream, by_digest).await.map(|()| all)
        }
        r => r.map(|()| plan),
    }
}

/// The digests in a node's content store (namespace `k8s.io`).
async fn node_content(docker: &dyn Provider, node: &str) -> Result<HashSet<String>, NodeLoadError> {
    let out = docker
        .exec(node, &["ctr", "-n", "k8s.io", "content", "ls", "-q"])
        .await?;
    if out.code != 0 {
        return Err(NodeLoadError::query("ctr content ls", node, &out));
    }
    Ok(out.stdout.split_whitespace().map(str::to_string).collect())
}

/// The tar of [`Layout::tar_parts`], reading blob data from the archive at `path`.
fn layout_stream(path: &Path, parts: Vec<Part>) -> InputStream {
    let path = path.to_path_buf();
    futures_util::stream::iter(parts)
        .map(move |part| match part {
            Part::Bytes(b) => futures_util::stream::once(async { Ok(b) }).boxed(),
            Part::File { offset, len } => file_range(path.clone(), offset, len),
        })
        .flatten()
        .boxed()
}

fn file_range(path: PathBuf, offset: u64, len: u64) -> InputStream {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    futures_util::stream::once(async move {
        let mut file = tokio::fs::File::open(&path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            1 << 20,
        ))
    })
    .try_flatten()
    .boxed()
}

/// The archive as it is, one read fanned out to every node.
async fn send_whole(
    docker: &dyn Provider,
    nodes: &[&str],
    path: &Path,
    by_digest: bool,
) -> Vec<Result<(), NodeLoadError>> {
    let stream = match file_stream(path).await {
        Ok(stream) => stream,
        Err(e) => return nodes.iter().map(|_| Err(e.clone())).collect(),
    };
    let (pump, inputs) = fan_out(stream, nodes.len());
    let imports = join_all(
        nodes
            .iter()
            .zip(inputs)
            .map(|(node, input)| import(docker, node, input, by_digest)),
    );
    let (pumped, results) = futures_util::join!(pump, imports);
    results
        .into_iter()
        .map(|r| match (&pumped, r) {
            // A broken source explains a failed import better than ctr does.
            (Err(why), Err(_)) => Err(NodeLoadError::Source(why.clone())),
            (_, r) => r,
        })
        .collect()
}

/// `ctr images import` from stdin, unpacked with the CRI's snapshotter so kubelet can use it.
/// `by_digest`: also name images by digest, or unnamed ones are not kept.
async fn import(
    docker: &dyn Provider,
    node: &str,
    input: InputStream,
    by_digest: bool,
) -> Result<(), NodeLoadError> {
    let dump = docker.exec(node, &["containerd", "config", "dump"]).await?;
    let snapshotter = images::cri_snapshotter(&dump.stdout).map(|s| format!("--snapshotter={s}"));
    let mut cmd = vec!["ctr", "-n", "k8s.io", "images", "import", "--all-platforms"];
    cmd.extend(snapshotter.as_deref());
    if by_digest {
        cmd.push("--digests");
    }
    cmd.push("-");
    let out = docker.exec_with_input(node, &cmd, input).await?;
    if out.code != 0 {
        return Err(NodeLoadError::Import {
            node: node.to_string(),
            command: cmd.join(" "),
            code: out.code,
            stdout: out.stdout.trim().to_string(),
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}

async fn file_stream(path: &std::path::Path) -> Result<InputStream, NodeLoadError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| NodeLoadError::Open {
            path: path.to_path_buf(),
            source: Arc::new(source),
        })?;
    Ok(crate::provider::file_stream(file).boxed())
}

/// Copies one stream to `n` consumers. The returned future drives it (run it alongside the
/// consumers); consumers that stop early are dropped, a source error is passed on to every
/// consumer and returned. Bounded channels keep memory flat: the slowest node sets the pace.
pub fn fan_out(
    mut source: InputStream,
    n: usize,
) -> (
    impl std::future::Future<Output = Result<(), String>>,
    Vec<InputStream>,
) {
    type Item = Result<bytes::Bytes, std::io::Error>;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| tokio::sync::mpsc::channel::<Item>(8))
        .unzip();
    let streams = receivers
        .into_iter()
        .map(|rx| {
            futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed()
        })
        .collect();
    let pump = async move {
        let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
        while let Some(item) = source.next().await {
            match item {
                Ok(chunk) => {
                    for slot in senders.iter_mut() {
                        if let Some(tx) = slot {
                            if tx.send(Ok(chunk.clone())).await.is_err() {
                                *slot = None;
                            }
                        }
                    }
                    if senders.iter().all(Option::is_none) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    for tx in senders.iter().flatten() {
                        let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                    }
                    return Err(why);
                }
            }
        }
        Ok(())
    };
    (pump, streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[test]
    fn a_failed_node_query_gives_code_output_and_what_to_check() {
        let out = |stdout: &str, stderr: &str| ExecOutput {
            code: 1,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let e = NodeLoadError::query("crictl images", "n1", &out("", "")).to_string();
        assert!(
            e.starts_with("`crictl images` failed on n1 (exit 1): no output"),
            "{e}"
        );
        assert!(
            e.contains("systemctl status containerd") && e.contains("disk has room"),
            "{e}"
        );
        let e = NodeLoadError::query("ctr content ls", "n1", &out("x", " boom\n")).to_string();
        assert!(e.contains("(exit 1): boom\n"), "{e}");
        let e = NodeLoadError::query("ctr content ls", "n1", &out("only out", "")).to_string();
        assert!(e.contains("(exit 1): only out\n"), "{e}");
    }

    fn chunks(items: Vec<Result<&'static str, &'static str>>) -> InputStream {
        futures_util::stream::iter(items.into_iter().map(|i| {
            i.map(|s| bytes::Bytes::from_static(s.as_bytes()))
                .map_err(std::io::Error::other)
        }))
        .boxed()
    }

    async fn collect(s: InputStream) -> Result<String, String> {
        let parts: Vec<bytes::Bytes> = s.try_collect().await.map_err(|e| e.to_string())?;
        Ok(parts.iter().map(|b| String::from_utf8_lossy(b)).collect())
    }

    #[tokio::test]
    async fn fan_out_copies_every_chunk_to_every_consumer() {
        let (pump, outs) = fan_out(chunks(vec![Ok("a"), Ok("b"), Ok("c")]), 3);
        let (pumped, got) = futures_util::join!(pump, join_all(outs.into_iter().map(collect)));
        assert_eq!(pumped, Ok(()));
        assert_eq!(got, vec![Ok("abc".to_string()); 3]);
    }

    #[tokio::test]
    async fn fan_out_survives_a_consumer_that_stops_and_passes_on_errors() {
        let many: Vec<Result<&str, &str>> = (0..100).map(|_| Ok("x")).collect();
        let (pump, mut outs) = fan_out(chunks(many), 2);
        drop(outs.pop());
        let (pumped, got) = futures_util::join!(pump, collect(outs.pop().unwrap()));
        assert_eq!(pumped, Ok(()));
        assert_eq!(got.unwrap().len(), 100);

        let (pump, outs) = fan_out(chunks(vec![Ok("a"), Err("disk on fire")]), 2);
        let (pumped, got) = futures_util::join!(pump, join_all(outs.into_iter().map(collect)));
        assert_eq!(pumped, Err("disk on fire".to_string()));
        assert!(got.iter().all(|g| g == &Err("disk on fire".to_string())));
    }
}
