//! Deterministic tar layers.
//!
//! Image digests are only reproducible if the same inputs always produce the
//! same bytes, so [`LayerBuilder`] collects entries in memory (file contents
//! from disk are only referenced, not loaded), and writes them sorted by path
//! with every header field that could vary between builds fixed: mtime is a
//! caller-chosen epoch, owner names are empty, atime/ctime are never written.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};
use walkdir::WalkDir;

/// Errors from building or writing a layer. Every variant names the path
/// involved so a failed image build points at the offending file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid layer path {path:?}: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },
    #[error("layer path {}: parent {} is not a directory", path.display(), parent.display())]
    ParentNotDirectory { path: PathBuf, parent: PathBuf },
    #[error("layer path {}: cannot replace a directory that has entries with a non-directory", path.display())]
    ReplacesNonEmptyDirectory { path: PathBuf },
    #[error("hardlink {} -> {}: target is not a regular file in the layer", path.display(), target.display())]
    HardlinkTarget { path: PathBuf, target: PathBuf },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} changed size while being archived (expected {expected} bytes, read {actual})", path.display())]
    FileChanged {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("walking {}: {source}", root.display())]
    Walk {
        root: PathBuf,
        #[source]
        source: walkdir::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
enum Content {
    Bytes(Vec<u8>),
    /// Streamed at write time so large binaries never sit in memory.
    Disk(PathBuf),
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Content),
    Symlink(PathBuf),
    Hardlink(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// Collects the entries of one image layer and writes them as a
/// byte-for-byte reproducible tar (optionally gzip-compressed).
///
/// Paths are layer-relative ("usr/local/bin/etcd"); a leading "/" or "./" is
/// accepted and stripped, ".." is rejected. Adding a path twice replaces the
/// earlier entry, so later additions can override files from a tree.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    /// Keyed by the path's bytes: BTreeMap iteration is then exactly the
    /// byte order the tar must be written in, and parents sort before their
    /// children because a prefix sorts first.
    entries: BTreeMap<Vec<u8>, Entry>,
    /// (dev, ino) of host files already added, for hardlink detection.
    inodes: HashMap<(u64, u64), PathBuf>,
    epoch: u64,
}

/// Summary of a written gzip layer blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    /// `dir/<hex of digest>`.
    pub path: PathBuf,
    /// `sha256:<hex>` of the uncompressed tar (goes into the image config).
    pub diff_id: String,
    /// `sha256:<hex>` of the gzip bytes (goes into the manifest).
    pub digest: String,
    /// Size of the gzip blob in bytes.
    pub size: u64,
}

/// Turns a caller path into the canonical layer-relative form.
fn normalize(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                return Err(Error::InvalidPath {
                    path: path.to_path_buf(),
                    reason: "\"..\" is not allowed",
                })
            }
            Component::Prefix(_) => {
                return Err(Error::InvalidPath {
                    path: path.to_path_buf(),
                    reason: "path prefixes are not allowed",
                })
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "path is empty or the layer root",
        });
    }
    Ok(out)
}

fn key(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

fn path_of(key: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(key))
}

fn sha256_string(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

impl LayerBuilder {
    /// An empty layer whose entries get mtime 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty layer whose entries get mtime `epoch` (seconds since 1970).
    pub fn with_epoch(epoch: u64) -> Self {
        Self {
            epoch,
            ..Self::default()
        }
    }

    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries, including implicitly created parent directories.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the layer has an entry (of any kind) at `path`.
    pub fn contains(&self, path: impl AsRef<Path>) -> bool {
        match normalize(path.as_ref()) {
            Ok(p) => self.entries.contains_key(&key(&p)),
            Err(_) => false,
        }
    }

    /// All entry paths in the order they will be written.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.entries.keys().map(|k| path_of(k)).collect()
    }

    pub fn add_dir(&mut self, path: impl AsRef<Path>, mode: u32) -> Result<()> {
        self.insert(path.as_ref(), Kind::Dir, mode, 0, 0)
    }

    pub fn add_file(
        &mut self,
        path: impl AsRef<Path>,
        mode: u32,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<()> {
        self.insert(
            path.as_ref(),
            Kind::File(Content::Bytes(bytes.into())),
            mode,
            0,
            0,
        )
    }

    /// Adds a file whose contents are streamed from `host_path` when the layer
    /// is written. The host file is checked now so errors surface early.
    pub fn add_file_from_disk(
        &mut self,
        path_in_layer: impl AsRef<Path>,
        mode: u32,
        host_path: impl AsRef<Path>,
    ) -> Result<()> {
        let host_path = host_path.as_ref();
        let meta = fs::metadata(host_path).map_err(io_err("stat", host_path))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: host_path.to_path_buf(),
            });
        }
        self.insert(
            path_in_layer.as_ref(),
            Kind::File(Content::Disk(host_path.to_path_buf())),
            mode,
            0,
            0,
        )
    }

    /// Adds a symlink; `target` is stored verbatim (absolute or relative).
    pub fn add_symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref();
        if target.as_os_str().is_empty() {
            return Err(Error::InvalidPath {
                path: path.as_ref().to_path_buf(),
                reason: "symlink target is empty",
            });
        }
        self.insert(
            path.as_ref(),
            Kind::Symlink(target.to_path_buf()),
            0o777,
            0,
            0,
        )
    }

    /// Adds a hardlink to another regular file of this layer. The target is
    /// checked when the layer is written, so it may be added afterwards.
    pub fn add_hardlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<()> {
        let target = normalize(target.as_ref())?;
        self.insert(path.as_ref(), Kind::Hardlink(target), 0o644, 0, 0)
    }

    /// Adds one host filesystem object (not following a final symlink),
    /// keeping its mode bits, numeric uid/gid and, for files that share an
    /// inode with one added earlier, the hardlink.
    ///
    /// Returns `Ok(false)` without adding anything for sockets, fifos and
    /// device nodes, which have no place in an image layer.
    pub fn add_host_entry(
        &mut self,
        path_in_layer: impl AsRef<Path>,
        host_path: impl AsRef<Path>,
    ) -> Result<bool> {
        let host_path = host_path.as_ref();
        let meta = fs::symlink_metadata(host_path).map_err(io_err("stat", host_path))?;
        self.add_host_entry_with_meta(path_in_layer.as_ref(), host_path, &meta)
    }

    fn add_host_entry_with_meta(
        &mut self,
        path_in_layer: &Path,
        host_path: &Path,
        meta: &fs::Metadata,
    ) -> Result<bool> {
        let file_type = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let (uid, gid) = (u64::from(meta.uid()), u64::from(meta.gid()));
        let kind = if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink(fs::read_link(host_path).map_err(io_err("read link", host_path))?)
        } else if file_type.is_file() {
            let ino = (meta.dev(), meta.ino());
            let first = if meta.nlink() > 1 {
                self.inodes.get(&ino).cloned()
            } else {
                None
            };
            match first {
                Some(first) => Kind::Hardlink(first),
                None => {
                    let normalized = normalize(path_in_layer)?;
                    if meta.nlink() > 1 {
                        self.inodes.insert(ino, normalized);
                    }
                    Kind::File(Content::Disk(host_path.to_path_buf()))
                }
            }
        } else {
            return Ok(false);
        };
        self.insert(path_in_layer, kind, mode, uid, gid)?;
        Ok(true)
    }

    /// Adds a host directory tree (e.g. a debootstrap rootfs) under
    /// `prefix_in_layer` ("" for the layer root), without following symlinks.
    ///
    /// `filter` sees layer-relative paths; returning false for a directory
    /// drops everything below it. Sockets, fifos and device nodes are skipped
    /// and their host paths returned, so callers can report them.
    pub fn add_tree<F>(
        &mut self,
        host_root: impl AsRef<Path>,
        prefix_in_layer: impl AsRef<Path>,
        filter: F,
    ) -> Result<Vec<PathBuf>>
    where
        F: Fn(&Path) -> bool,
    {
        let host_root = host_root.as_ref();
        let prefix = prefix_in_layer.as_ref();
        let mut skipped = Vec::new();
        // Sorted walk so hardlink detection picks the same first path every
        // time (write_tar re-orders hardlink groups anyway, see there).
        let walker = WalkDir::new(host_root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let rel = e.path().strip_prefix(host_root).unwrap_or(e.path());
                let in_layer = prefix.join(rel);
                // The tree root with an empty prefix is the layer root: no entry.
                in_layer.as_os_str().is_empty() || filter(&in_layer)
            });
        for item in walker {
            let entry = item.map_err(|source| Error::Walk {
                root: host_root.to_path_buf(),
                source,
            })?;
            let rel = entry.path().strip_prefix(host_root).unwrap_or(entry.path());
            let in_layer = prefix.join(rel);
            if in_layer.as_os_str().is_empty() {
                continue;
            }
            let meta = entry.metadata().map_err(|source| Error::Walk {
                root: host_root.to_path_buf(),
                source,
            })?;
            if !self.add_host_entry_with_meta(&in_layer, entry.path(), &meta)? {
                skipped.push(entry.path().to_path_buf());
            }
        }
        Ok(skipped)
    }

    fn insert(&mut self, path: &Path, kind: Kind, mode: u32, uid: u64, gid: u64) -> Result<()> {
        let path = normalize(path)?;
        // Create missing parents; refuse to put anything below a non-directory.
        let mut parent = PathBuf::new();
        let components: Vec<_> = path.components().collect();
        for component in &components[..components.len() - 1] {
            parent.push(component);
            match self.entries.get(&key(&parent)) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(Error::ParentNotDirectory {
                        path: path.clone(),
                        parent,
                    })
                }
                None => {
                    self.entries.insert(
                        key(&parent),
                        Entry {
                            kind: Kind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
        }
        let k = key(&path);
        if !matches!(kind, Kind::Dir) {
            if let Some(Entry {
                kind: Kind::Dir, ..
            }) = self.entries.get(&k)
            {
                let mut child_prefix = k.clone();
                child_prefix.push(b'/');
                let has_children = self
                    .entries
                    .range(child_prefix.clone()..)
                    .next()
                    .is_some_and(|(c, _)| c.starts_with(&child_prefix));
                if has_children {
                    return Err(Error::ReplacesNonEmptyDirectory { path });
                }
            }
        }
        self.entries.insert(
            k,
            Entry {
                kind,
                mode,
                uid,
                gid,
            },
        );
        Ok(())
    }

    /// Resolves hardlinks into groups. For each group the member that sorts
    /// first carries the data (an extractor can only link to an entry it has
    /// already seen); the others become Link entries pointing at it.
    /// Returns, per path key, the key of the regular file that owns the data.
    fn hardlink_sources(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut source_of = BTreeMap::new();
        for (k, entry) in &self.entries {
            if !matches!(entry.kind, Kind::Hardlink(_)) {
                continue;
            }
            // Follow link-to-link chains, bounded in case of cycles.
            let mut current = entry;
            let mut target_key = k.clone();
            for _ in 0..=self.entries.len() {
                match &current.kind {
                    Kind::Hardlink(t) => {
                        target_key = key(t);
                        match self.entries.get(&target_key) {
                            Some(next) => current = next,
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
            if !matches!(current.kind, Kind::File(_)) {
                let target = match &entry.kind {
                    Kind::Hardlink(t) => t.clone(),
                    _ => unreachable!("filtered above"),
                };
                return Err(Error::HardlinkTarget {
                    path: path_of(k),
                    target,
                });
            }
            source_of.insert(k.clone(), target_key);
        }
        Ok(source_of)
    }

    /// Writes the layer as an uncompressed tar stream.
    pub fn write_tar(&self, w: impl Write) -> Result<()> {
        let source_of = self.hardlink_sources()?;
        // file key -> the group member that sorts first (the data holder).
        let mut holder: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        for (link, file) in &source_of {
            let best = holder.entry(file.as_slice()).or_insert(file.as_slice());
            if link.as_slice() < *best {
                *best = link.as_slice();
            }
        }

        let mut builder = tar::Builder::new(w);
        for (k, entry) in &self.entries {
            let path = path_of(k);
            // For hardlink group members, the file that owns the data.
            let file_key: Option<&[u8]> = match &entry.kind {
                Kind::Hardlink(_) => source_of.get(k).map(|f| f.as_slice()),
                Kind::File(_) if holder.contains_key(k.as_slice()) => Some(k.as_slice()),
                _ => None,
            };
            match file_key {
                Some(file_key) => {
                    let file_entry = &self.entries[file_key];
                    let data_holder = holder[file_key];
                    if data_holder == k.as_slice() {
                        self.append_file(&mut builder, &path, file_entry)?;
                    } else {
                        let mut header = self.header(EntryType::Link, file_entry);
                        builder
                            .append_link(&mut header, &path, path_of(data_holder))
                            .map_err(io_err("write tar entry", &path))?;
                    }
                }
                None => match &entry.kind {
                    Kind::Dir => {
                        let mut header = self.header(EntryType::Directory, entry);
                        // Trailing slash is the conventional spelling for dirs.
                        let mut name = k.clone();
                        name.push(b'/');
                        builder
                            .append_data(&mut header, path_of(&name), io::empty())
                            .map_err(io_err("write tar entry", &path))?;
                    }
                    Kind::File(_) => self.append_file(&mut builder, &path, entry)?,
                    Kind::Symlink(target) => {
                        let mut header = self.header(EntryType::Symlink, entry);
                        builder
                            .append_link(&mut header, &path, target)
                            .map_err(io_err("write tar entry", &path))?;
                    }
                    Kind::Hardlink(_) => unreachable!("hardlinks always have a source"),
                },
            }
        }
        builder.finish().map_err(io_err("finish tar", "<layer>"))?;
        Ok(())
    }

    fn header(&self, entry_type: EntryType, entry: &Entry) -> Header {
        // GNU headers: long names via ././@LongLink, no atime/ctime written,
        // uname/gname left empty.
        let mut header = Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_mode(entry.mode & 0o7777);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(self.epoch);
        header.set_size(0);
        header
    }

    fn append_file<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        path: &Path,
        entry: &Entry,
    ) -> Result<()> {
        let mut header = self.header(EntryType::Regular, entry);
        match &entry.kind {
            Kind::File(Content::Bytes(bytes)) => {
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, path, bytes.as_slice())
                    .map_err(io_err("write tar entry", path))?;
            }
            Kind::File(Content::Disk(host)) => {
                let file = fs::File::open(host).map_err(io_err("open", host))?;
                let size = file.metadata().map_err(io_err("stat", host))?.len();
                header.set_size(size);
                // tar pads by what it actually copied, so a file that shrinks
                // or grows mid-write would corrupt the archive: count and check.
                let mut reader = CountingReader {
                    inner: file.take(size),
                    count: 0,
                };
                builder
                    .append_data(&mut header, path, &mut reader)
                    .map_err(io_err("write tar entry", path))?;
                if reader.count != size {
                    return Err(Error::FileChanged {
                        path: host.clone(),
                        expected: size,
                        actual: reader.count,
                    });
                }
            }
            _ => unreachable!("append_file is only called for regular files"),
        }
        Ok(())
    }

    /// Writes the layer gzip-compressed to `dir/<hex of gzip sha256>` and
    /// returns both digests, computed in the same pass as the write.
    ///
    /// The gzip header has no file name and mtime 0, and the compression level
    /// is fixed at 6. Identical bytes across builds additionally require the
    /// same flate2 version and backend (miniz_oxide by default): a different
    /// deflate implementation yields a valid but different stream.
    pub fn write_gzip_blob(&self, dir: &Path) -> Result<LayerBlob> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".layer-{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.write_gzip_to(&tmp);
        let (diff_id, digest, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let hex = digest.trim_start_matches("sha256:");
        let path = dir.join(hex);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("rename blob to", path)(e));
        }
        Ok(LayerBlob {
            path,
            diff_id,
            digest,
            size,
        })
    }

    fn write_gzip_to(&self, tmp: &Path) -> Result<(String, String, u64)> {
        let file = fs::File::create(tmp).map_err(io_err("create", tmp))?;
        // tar -> hash(diff_id) -> gzip -> hash(digest) -> file
        let compressed = HashingWriter::new(BufWriter::new(file));
        let gz = GzBuilder::new()
            .mtime(0)
            .write(compressed, Compression::new(6));
        let mut uncompressed = HashingWriter::new(gz);
        self.write_tar(&mut uncompressed)?;
        let diff_id = sha256_string(uncompressed.hasher);
        let compressed = uncompressed
            .inner
            .finish()
            .map_err(io_err("compress", tmp))?;
        let digest = sha256_string(compressed.hasher);
        let size = compressed.count;
        let file = compressed
            .inner
            .into_inner()
            .map_err(|e| io_err("write", tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err("sync", tmp))?;
        Ok((diff_id, digest, size))
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Passes writes through while hashing and counting them, so digests come
/// for free while the data is produced.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// One tar entry as the tests inspect it.
    struct Listed {
        path: String,
        kind: EntryType,
        mode: u32,
        mtime: u64,
        link: Option<String>,
        data: Vec<u8>,
    }

    fn entries(tar_bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push(Listed {
                path,
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                mtime: h.mtime().unwrap(),
                link,
                data,
            });
        }
        out
    }

    fn tar_of(layer: &LayerBuilder) -> Vec<u8> {
        let mut buf = Vec::new();
        layer.write_tar(&mut buf).unwrap();
        buf
    }

    fn sample(dir: &Path) -> LayerBuilder {
        let host = dir.join("big.bin");
        fs::write(&host, vec![7u8; 100_000]).unwrap();
        let mut l = LayerBuilder::with_epoch(1_700_000_000);
        l.add_file("/usr/local/bin/etcd", 0o755, b"etcd".to_vec())
            .unwrap();
        l.add_file_from_disk("opt/big.bin", 0o644, &host).unwrap();
        l.add_symlink("bin", "usr/bin").unwrap();
        l.add_dir("etc/kubernetes", 0o700).unwrap();
        l.add_file("a-b", 0o600, "x").unwrap();
        l
    }

    #[test]
    fn deterministic_tar_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let a = tar_of(&sample(dir.path()));
        let b = tar_of(&sample(dir.path()));
        assert_eq!(a, b);

        let out1 = dir.path().join("o1");
        let out2 = dir.path().join("o2");
        fs::create_dir_all(&out1).unwrap();
        fs::create_dir_all(&out2).unwrap();
        let blob1 = sample(dir.path()).write_gzip_blob(&out1).unwrap();
        let blob2 = sample(dir.path()).write_gzip_blob(&out2).unwrap();
        assert_eq!(blob1.digest, blob2.digest);
        assert_eq!(blob1.diff_id, blob2.diff_id);
        assert_eq!(
            fs::read(&blob1.path).unwrap(),
            fs::read(&blob2.path).unwrap()
        );

        // The digests really are those of the bytes.
        let gz = fs::read(&blob1.path).unwrap();
        assert_eq!(blob1.size, gz.len() as u64);
        assert_eq!(
            blob1.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&gz)))
        );
        assert_eq!(
            blob1.path.file_name().unwrap().to_str().unwrap(),
            &blob1.digest[7..]
        );
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, a);
        assert_eq!(
            blob1.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&raw)))
        );
        // No temp files left behind.
        assert_eq!(fs::read_dir(&out1).unwrap().count(), 1);
    }

    #[test]
    fn sorted_with_parents_and_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&sample(dir.path()));
        let es = entries(&tar);
        let names: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "a-b",
                "bin",
                "etc/",
                "etc/kubernetes/",
                "opt/",
                "opt/big.bin",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/etcd"
            ]
        );
        for e in &es {
            assert_eq!(e.mtime, 1_700_000_000, "mtime of {}", e.path);
        }
        let find = |n: &str| es.iter().find(|e| e.path == n).unwrap();
        assert_eq!(find("etc/").mode, 0o755);
        assert_eq!(find("etc/kubernetes/").mode, 0o700);
        assert_eq!(find("usr/local/bin/etcd").data, b"etcd");
        assert_eq!(find("opt/big.bin").data.len(), 100_000);
        assert_eq!(find("bin").kind, EntryType::Symlink);
        assert_eq!(find("bin").link.as_deref(), Some("usr/bin"));

        let mut archive = tar::Archive::new(tar.as_slice());
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            assert_eq!(h.uid().unwrap(), 0);
            let gnu = h.as_gnu().unwrap();
            assert!(gnu.atime.iter().all(|b| *b == 0));
            assert!(gnu.ctime.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn byte_order_not_walk_order() {
        let mut l = LayerBuilder::new();
        l.add_file("usr/bin/z", 0o644, "").unwrap();
        l.add_file("usr/bin-x", 0o644, "").unwrap();
        l.add_file("usr/B", 0o644, "").unwrap();
        let names: Vec<String> = entries(&tar_of(&l)).into_iter().map(|e| e.path).collect();
        // Sorted on the path without the directory's trailing slash: the
        // directory "usr/bin" precedes "usr/bin-x", its children follow.
        assert_eq!(
            names,
            ["usr/", "usr/B", "usr/bin/", "usr/bin-x", "usr/bin/z"]
        );
    }

    #[test]
    fn explicit_dir_overrides_implicit_and_conflicts_fail() {
        let mut l = LayerBuilder::new();
        l.add_file("var/lib/etcd/x", 0o600, "").unwrap();
        l.add_dir("var/lib/etcd", 0o700).unwrap();
        let es = entries(&tar_of(&l));
        assert_eq!(
            es.iter().find(|e| e.path == "var/lib/etcd/").unwrap().mode,
            0o700
        );

        assert!(matches!(
            l.add_file("var/lib/etcd/x/y", 0o644, ""),
            Err(Error::ParentNotDirectory { .. })
        ));
        assert!(matches!(
            l.add_symlink("var/lib", "/elsewhere"),
            Err(Error::ReplacesNonEmptyDirectory { .. })
        ));
        assert!(matches!(
            l.add_file("../x", 0o644, ""),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            l.add_dir("/", 0o755),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn long_names_round_trip() {
        let long = format!("{}/file", "d".repeat(150));
        let target = format!("/{}", "t".repeat(150));
        let mut l = LayerBuilder::new();
        l.add_file(&long, 0o644, "x").unwrap();
        l.add_symlink("link", &target).unwrap();
        let es = entries(&tar_of(&l));
        assert!(es.iter().any(|e| e.path == long));
        assert_eq!(
            es.iter()
                .find(|e| e.path == "link")
                .unwrap()
                .link
                .as_deref(),
            Some(target.as_str())
        );
    }

    #[test]
    fn hardlinks_point_at_first_sorted_member() {
        // "a/z" is added as the file, but "a/b" sorts first, so "a/b" must
        // carry the data and "a/z" link to it.
        let mut l = LayerBuilder::new();
        l.add_file("a/z", 0o755, "payload").unwrap();
        l.add_hardlink("a/b", "a/z").unwrap();
        l.add_hardlink("c", "a/b").unwrap();
        let es = entries(&tar_of(&l));
        let find = |n: &str| es.iter().find(|e| e.path == n).unwrap();
        assert_eq!(find("a/b").kind, EntryType::Regular);
        assert_eq!(find("a/b").data, b"payload");
        assert_eq!(find("a/b").mode, 0o755);
        assert_eq!(find("a/z").kind, EntryType::Link);
        assert_eq!(find("a/z").link.as_deref(), Some("a/b"));
        assert_eq!(find("c").kind, EntryType::Link);
        assert_eq!(find("c").link.as_deref(), Some("a/b"));

        let mut bad = LayerBuilder::new();
        bad.add_hardlink("x", "missing").unwrap();
        let err = bad.write_tar(Vec::new()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn add_tree_preserves_metadata_links_and_skips_specials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("usr/share/doc/pkg")).unwrap();
        fs::write(root.join("usr/share/doc/pkg/README"), "doc").unwrap();
        fs::write(root.join("usr/bin/su"), "su").unwrap();
        fs::set_permissions(root.join("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::write(root.join("usr/bin/zz"), "same inode").unwrap();
        fs::hard_link(root.join("usr/bin/zz"), root.join("usr/bin/aa")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        // A unix socket stands in for the special files a rootfs may contain.
        let _sock = std::os::unix::net::UnixListener::bind(root.join("usr/sock")).unwrap();

        let build = || {
            let mut l = LayerBuilder::new();
            let skipped = l
                .add_tree(&root, "", |p: &Path| !p.starts_with("usr/share/doc"))
                .unwrap();
            (l, skipped)
        };
        let (l, skipped) = build();
        assert_eq!(skipped, vec![root.join("usr/sock")]);
        let tar = tar_of(&l);
        assert_eq!(tar, tar_of(&build().0));

        let es = entries(&tar);
        let names: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "usr/",
                "usr/bin/",
                "usr/bin/aa",
                "usr/bin/su",
                "usr/bin/zz",
                "usr/share/"
            ]
        );
        let find = |n: &str| es.iter().find(|e| e.path == n).unwrap();
        assert_eq!(find("usr/bin/su").mode, 0o4755);
        assert_eq!(find("bin").kind, EntryType::Symlink);
        assert_eq!(find("bin").link.as_deref(), Some("usr/bin"));
        // Walk order found "aa" first; either way the first sorted member has the data.
        assert_eq!(find("usr/bin/aa").kind, EntryType::Regular);
        assert_eq!(find("usr/bin/aa").data, b"same inode");
        assert_eq!(find("usr/bin/zz").kind, EntryType::Link);
        assert_eq!(find("usr/bin/zz").link.as_deref(), Some("usr/bin/aa"));

        // Numeric owner comes from the file.
        let mut archive = tar::Archive::new(tar.as_slice());
        let uid = u64::from(fs::metadata(root.join("usr/bin/su")).unwrap().uid());
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            if e.path_bytes().as_ref() == b"usr/bin/su" {
                assert_eq!(e.header().uid().unwrap(), uid);
            }
        }

        // With a prefix, the tree root itself becomes a directory entry.
        let mut l = LayerBuilder::new();
        l.add_tree(root.join("usr/bin"), "opt/tools", |_: &Path| true)
            .unwrap();
        let names: Vec<String> = entries(&tar_of(&l)).into_iter().map(|e| e.path).collect();
        assert_eq!(
            names,
            [
                "opt/",
                "opt/tools/",
                "opt/tools/aa",
                "opt/tools/su",
                "opt/tools/zz"
            ]
        );
    }

    #[test]
    fn missing_host_file_names_path() {
        let mut l = LayerBuilder::new();
        let err = l
            .add_file_from_disk("x", 0o644, "/nonexistent/kindred-file")
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/kindred-file"),
            "{err}"
        );
    }
}
