//! Package closures from a Debian rootfs, for slim image layers.
//!
//! kube-proxy needs iptables, ipset and conntrack plus the libraries they
//! link against, not a whole distribution. Instead of copying a debootstrap
//! rootfs wholesale, we read its dpkg database, compute the dependency
//! closure of a few root packages, and copy only those packages' files.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::layer::{self, LayerBuilder};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("package {name:?} is not installed in the rootfs")]
    NotInstalled { name: String },
    #[error("no dpkg file list for package {name:?} in {}", dir.display())]
    NoFileList { name: String, dir: PathBuf },
    #[error("too many levels of symbolic links resolving {} inside {}", path.display(), rootfs.display())]
    SymlinkLoop { rootfs: PathBuf, path: PathBuf },
    #[error("malformed alternatives file {}: {reason}", path.display())]
    BadAlternative { path: PathBuf, reason: &'static str },
    #[error(transparent)]
    Layer(#[from] layer::Error),
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

/// An installed package from `var/lib/dpkg/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Package names from Depends and Pre-Depends, without version
    /// constraints or arch qualifiers, in order and without duplicates. For
    /// "a | b" the first alternative that is installed (or provided by an
    /// installed package, which is then named instead) is taken; if none is,
    /// the first is kept and [`closure`] ignores it.
    pub depends: Vec<String>,
}

/// Directories a runtime image never needs; checked on canonical paths.
const SKIPPED_DIRS: [&str; 5] = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
];

/// The merged-/usr compatibility symlinks at the top of the rootfs.
const MERGED_USR_LINKS: [&str; 4] = ["bin", "sbin", "lib", "lib64"];

/// Symlink hops allowed while resolving one path, as in Linux (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

struct Stanza {
    name: String,
    version: String,
    architecture: String,
    installed: bool,
    /// Each group lists the alternatives of one "a | b" dependency.
    groups: Vec<Vec<String>>,
    provides: Vec<String>,
}

/// Parses the text of `var/lib/dpkg/status`, returning installed packages
/// only: those whose Status is "<want> ok installed" (so held packages count).
pub fn parse_status(text: &str) -> Vec<Package> {
    let stanzas: Vec<Stanza> = split_stanzas(text)
        .into_iter()
        .filter_map(|fields| stanza(&fields))
        .filter(|s| s.installed)
        .collect();

    // Alternatives are resolved against what is installed, so this needs
    // every stanza first.
    let installed: HashSet<&str> = stanzas.iter().map(|s| s.name.as_str()).collect();
    let mut provider: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &stanzas {
        for virtual_name in &s.provides {
            provider
                .entry(virtual_name.as_str())
                .or_insert(s.name.as_str());
        }
    }

    stanzas
        .iter()
        .map(|s| {
            let mut depends: Vec<String> = Vec::new();
            for group in &s.groups {
                let chosen = group
                    .iter()
                    .find_map(|alt| {
                        if installed.contains(alt.as_str()) {
                            Some(alt.as_str())
                        } else {
                            provider.get(alt.as_str()).copied()
                        }
                    })
                    .unwrap_or(group[0].as_str());
                if chosen != s.name && !depends.iter().any(|d| d == chosen) {
                    depends.push(chosen.to_string());
                }
            }
            Package {
                name: s.name.clone(),
                version: s.version.clone(),
                architecture: s.architecture.clone(),
                depends,
            }
        })
        .collect()
}

/// Splits deb822 text into stanzas of (field, value); continuation lines are
/// appended to the previous field's value.
fn split_stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stanzas = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
        } else if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((field, value)) = line.split_once(':') {
            current.push((field.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        stanzas.push(current);
    }
    stanzas
}

fn stanza(fields: &[(String, String)]) -> Option<Stanza> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let name = get("Package")?.to_string();
    let status: Vec<&str> = get("Status").unwrap_or("").split_whitespace().collect();
    let installed = status.len() == 3 && status[1] == "ok" && status[2] == "installed";
    let mut groups = Vec::new();
    for field in ["Pre-Depends", "Depends"] {
        if let Some(value) = get(field) {
            groups.extend(parse_relations(value));
        }
    }
    let provides = get("Provides")
        .map(|v| parse_relations(v).into_iter().flatten().collect())
        .unwrap_or_default();
    Some(Stanza {
        name,
        version: get("Version").unwrap_or("").to_string(),
        architecture: get("Architecture").unwrap_or("").to_string(),
        installed,
        groups,
        provides,
    })
}

/// "a (>= 1) | b:any, c [amd64]" -> [[a, b], [c]]
fn parse_relations(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(relation_name)
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

fn relation_name(alternative: &str) -> Option<String> {
    let alternative = alternative.trim();
    let end = alternative
        .find(|c: char| c.is_whitespace() || c == '(' || c == '[' || c == '<')
        .unwrap_or(alternative.len());
    // Drop multi-arch qualifiers such as ":any" or ":amd64".
    let name = alternative[..end].split(':').next().unwrap_or("");
    (!name.is_empty()).then(|| name.to_string())
}

/// The names of `roots` and everything they depend on, transitively.
/// A root that is not installed is an error; a dependency that is not
/// installed (only possible in a broken or hand-edited database) is ignored.
pub fn closure(packages: &[Package], roots: &[&str]) -> Result<BTreeSet<String>> {
    let by_name: BTreeMap<&str, &Package> = packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    for root in roots {
        if !by_name.contains_key(root) {
            return Err(Error::NotInstalled {
                name: root.to_string(),
            });
        }
        queue.push_back(*root);
    }
    while let Some(name) = queue.pop_front() {
        let Some(package) = by_name.get(name) else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        for dep in &package.depends {
            if !seen.contains(dep) {
                queue.push_back(dep.as_str());
            }
        }
    }
    Ok(seen)
}

/// The paths dpkg recorded for `pkg`, as listed (absolute, e.g.
/// "/usr/sbin/iptables", "/." for the root), in list order.
pub fn package_files(rootfs: &Path, pkg: &str) -> Result<Vec<PathBuf>> {
    let info = rootfs.join("var/lib/dpkg/info");
    let mut candidates = vec![
        info.join(format!("{pkg}.list")),
        info.join(format!("{pkg}:amd64.list")),
    ];
    // Multi-Arch: same packages of another architecture use "<pkg>:<arch>.list".
    if let Ok(dir) = fs::read_dir(&info) {
        let prefix = format!("{pkg}:");
        let mut others: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".list"))
            })
            .collect();
        others.sort();
        candidates.extend(others);
    }
    for list in candidates {
        match fs::read_to_string(&list) {
            Ok(text) => {
                return Ok(text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from)
                    .collect())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read", list)(e)),
        }
    }
    Err(Error::NoFileList {
        name: pkg.to_string(),
        dir: info,
    })
}

/// Resolves `path` as the rootfs would see it when it is "/": every symlink
/// is followed with absolute targets taken relative to `rootfs` and ".."
/// clamped at its root, so nothing on the host outside it is consulted.
/// Returns the layer-relative result ("" for the root). Missing components
/// are kept literally.
fn resolve_in_rootfs(rootfs: &Path, path: &Path) -> Result<PathBuf> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front_components(&mut pending, path);
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        // `resolved` never contains symlinks, so this lstat only ever
        // looks inside the rootfs.
        let host = rootfs.join(&candidate);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(Error::SymlinkLoop {
                        rootfs: rootfs.to_path_buf(),
                        path: path.to_path_buf(),
                    });
                }
                let target = fs::read_link(&host).map_err(io_err("read link", &host))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                push_front_components(&mut pending, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(resolved)
}

fn push_front_components(pending: &mut VecDeque<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    for name in names.into_iter().rev() {
        pending.push_front(name);
    }
}

/// Where a listed path really lives: its directory part resolved through
/// the rootfs's symlinks, its last component kept (it may itself be a link
/// we want to copy as a link). None for the root itself.
fn canonical_entry(rootfs: &Path, listed: &Path) -> Result<Option<PathBuf>> {
    let (Some(parent), Some(name)) = (listed.parent(), listed.file_name()) else {
        return Ok(None);
    };
    let mut path = resolve_in_rootfs(rootfs, parent)?;
    path.push(name);
    Ok(Some(path))
}

fn is_skipped(path: &Path) -> bool {
    SKIPPED_DIRS.iter().any(|d| path.starts_with(d))
}

/// Adds the files of `roots` and their dependency closure, taken from the
/// debootstrapped `rootfs`, to `layer`: regular files, symlinks and the
/// packages' directories with their modes and owners, the merged-/usr top
/// level symlinks, and the update-alternatives links whose choice is in the
/// layer. Documentation, man pages, info pages, locales and lintian
/// overrides are left out. Listed files missing on disk are ignored.
pub fn slim_layer(rootfs: &Path, roots: &[&str], layer: &mut LayerBuilder) -> Result<()> {
    let status_path = rootfs.join("var/lib/dpkg/status");
    let status = fs::read_to_string(&status_path).map_err(io_err("read", &status_path))?;
    let packages = parse_status(&status);
    for name in closure(&packages, roots)? {
        for listed in package_files(rootfs, &name)? {
            let Some(path) = canonical_entry(rootfs, &listed)? else {
                continue;
            };
            if is_skipped(&path) {
                continue;
            }
            let host = rootfs.join(&path);
            match fs::symlink_metadata(&host) {
                Ok(_) => {
                    layer.add_host_entry(&path, &host)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("stat", host)(e)),
            }
        }
    }
    for top in MERGED_USR_LINKS {
        let host = rootfs.join(top);
        if fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink()) {
            layer.add_host_entry(top, &host)?;
        }
    }
    add_alternatives(rootfs, layer)
}

/// The link paths of one alternatives group: (name, link) for the master
/// and each slave.
fn parse_alternative(path: &Path, name: &str, text: &str) -> Result<Vec<(String, PathBuf)>> {
    let bad = |reason| Error::BadAlternative {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let _mode = lines.next().ok_or_else(|| bad("missing mode line"))?;
    let master = lines.next().ok_or_else(|| bad("missing link line"))?;
    let mut links = vec![(name.to_string(), PathBuf::from(master))];
    loop {
        let slave = lines
            .next()
            .ok_or_else(|| bad("missing blank line after slaves"))?;
        if slave.is_empty() {
            break;
        }
        let link = lines
            .next()
            .ok_or_else(|| bad("slave without a link path"))?;
        links.push((slave.to_string(), PathBuf::from(link)));
    }
    Ok(links)
}

fn add_alternatives(rootfs: &Path, layer: &mut LayerBuilder) -> Result<()> {
    let dir = rootfs.join("var/lib/dpkg/alternatives");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", &dir))?;
        files.push(entry.path());
    }
    files.sort();
    for file in files {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let text = fs::read_to_string(&file).map_err(io_err("read", &file))?;
        for (link_name, link) in parse_alternative(&file, name, &text)? {
            add_alternative_link(rootfs, layer, &link_name, &link)?;
        }
    }
    Ok(())
}

/// Adds `link` -> /etc/alternatives/<name> -> <choice> when the rootfs's
/// current choice is part of the layer.
fn add_alternative_link(
    rootfs: &Path,
    layer: &mut LayerBuilder,
    name: &str,
    link: &Path,
) -> Result<()> {
    let selected = Path::new("/etc/alternatives").join(name);
    let Ok(choice) = fs::read_link(rootfs.join(selected.strip_prefix("/").unwrap_or(&selected)))
    else {
        // Not a symlink (or missing): the alternative is not set up.
        return Ok(());
    };
    let choice_abs = Path::new("/etc/alternatives").join(&choice);
    let Some(choice_in_layer) = canonical_entry(rootfs, &choice_abs)? else {
        return Ok(());
    };
    if !layer.contains(&choice_in_layer) {
        return Ok(());
    }
    let Some(link_in_layer) = canonical_entry(rootfs, link)? else {
        return Ok(());
    };
    if is_skipped(&link_in_layer) {
        return Ok(());
    }
    layer.add_symlink(&link_in_layer, &selected)?;
    layer.add_symlink(Path::new("etc/alternatives").join(name), &choice)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const STATUS: &str = "\
Package: iptables
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: foreign
Version: 1.8.9-2
Depends: libip4tc2 (= 1.8.9-2), libxtables12 (= 1.8.9-2), netbase (>= 6.0), libc6 (>= 2.34)
Pre-Depends: init-system-helpers (>= 1.54~)
Recommends: nftables
Description: administration tools for packet filtering and NAT
 iptables is the userspace command line program used to configure
 the Linux 2.4.x and later packet filtering ruleset.

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u14
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)

Package: gcc-12-base
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14

Package: libip4tc2
Status: install ok installed
Architecture: amd64
Version: 1.8.9-2
Depends: libc6:any (>= 2.28)

Package: libxtables12
Status: install ok installed
Architecture: amd64
Version: 1.8.9-2
Depends: libc6:amd64 (>= 2.34)

Package: netbase
Status: install ok installed
Architecture: all
Version: 6.4

Package: init-system-helpers
Status: hold ok installed
Architecture: all
Version: 1.65.2
Depends: perl-base (>= 5.20.1-3) | usrmerge, mawk | awk
Provides: ish

Package: mawk
Status: install ok installed
Architecture: amd64
Version: 1.3.4
Provides: awk

Package: usrmerge
Status: install ok installed
Architecture: all
Version: 37

Package: nftables
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0.6-2
Depends: libc6 (>= 2.34)
";

    #[test]
    fn parses_installed_packages_with_clean_names() {
        let pkgs = parse_status(STATUS);
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert!(
            !names.contains(&"nftables"),
            "config-files only is not installed"
        );
        assert!(
            names.contains(&"init-system-helpers"),
            "held packages are installed"
        );

        let iptables = pkgs.iter().find(|p| p.name == "iptables").unwrap();
        assert_eq!(iptables.version, "1.8.9-2");
        assert_eq!(iptables.architecture, "amd64");
        assert_eq!(
            iptables.depends,
            [
                "init-system-helpers",
                "libip4tc2",
                "libxtables12",
                "netbase",
                "libc6"
            ]
        );
        let ip4tc = pkgs.iter().find(|p| p.name == "libip4tc2").unwrap();
        assert_eq!(ip4tc.depends, ["libc6"]);
        let xtables = pkgs.iter().find(|p| p.name == "libxtables12").unwrap();
        assert_eq!(xtables.depends, ["libc6"]);
    }

    #[test]
    fn alternatives_pick_first_installed_or_provider() {
        let pkgs = parse_status(STATUS);
        let ish = pkgs
            .iter()
            .find(|p| p.name == "init-system-helpers")
            .unwrap();
        // perl-base is not installed so usrmerge is taken; "awk" is satisfied
        // by mawk itself before the Provides lookup matters.
        assert_eq!(ish.depends, ["usrmerge", "mawk"]);

        let text = "Package: a\nStatus: install ok installed\nDepends: awk | b\n\n\
                    Package: mawk\nStatus: install ok installed\nProvides: awk (= 1)\n\n\
                    Package: b\nStatus: install ok installed\n\n\
                    Package: c\nStatus: install ok installed\nDepends: x | y\n";
        let pkgs = parse_status(text);
        assert_eq!(
            pkgs[0].depends,
            ["mawk"],
            "virtual package resolves to its provider"
        );
        assert_eq!(pkgs[3].depends, ["x"], "nothing installed keeps the first");
    }

    #[test]
    fn closure_follows_dependencies() {
        let pkgs = parse_status(STATUS);
        let set = closure(&pkgs, &["libip4tc2"]).unwrap();
        let got: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
        assert_eq!(got, ["gcc-12-base", "libc6", "libgcc-s1", "libip4tc2"]);

        let all = closure(&pkgs, &["iptables"]).unwrap();
        assert!(all.contains("mawk") && all.contains("usrmerge") && all.contains("netbase"));
        assert!(!all.contains("nftables"));
    }

    #[test]
    fn closure_names_missing_root() {
        let pkgs = parse_status(STATUS);
        let err = closure(&pkgs, &["libc6", "ipset"]).unwrap_err();
        assert!(matches!(&err, Error::NotInstalled { name } if name == "ipset"));
        assert!(err.to_string().contains("ipset"), "{err}");
        // Not installed (config files only) is missing too.
        assert!(closure(&pkgs, &["nftables"]).is_err());
    }

    #[test]
    fn package_files_reads_plain_or_arch_list() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("var/lib/dpkg/info");
        fs::create_dir_all(&info).unwrap();
        fs::write(info.join("netbase.list"), "/.\n/etc\n/etc/protocols\n").unwrap();
        fs::write(
            info.join("libc6:amd64.list"),
            "/lib64/ld-linux-x86-64.so.2\n",
        )
        .unwrap();
        assert_eq!(
            package_files(dir.path(), "netbase").unwrap(),
            [
                PathBuf::from("/."),
                PathBuf::from("/etc"),
                PathBuf::from("/etc/protocols")
            ]
        );
        assert_eq!(
            package_files(dir.path(), "libc6").unwrap(),
            [PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
        let err = package_files(dir.path(), "nope").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn resolves_symlinks_inside_rootfs_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        // Absolute target must resolve inside the rootfs, not on the host.
        symlink("/usr/lib", root.join("abs")).unwrap();
        symlink("../../..", root.join("usr/lib/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = |p: &str| resolve_in_rootfs(root, Path::new(p)).unwrap();
        assert_eq!(
            r("/lib/x86_64-linux-gnu"),
            Path::new("usr/lib/x86_64-linux-gnu")
        );
        assert_eq!(
            r("/abs/x86_64-linux-gnu"),
            Path::new("usr/lib/x86_64-linux-gnu")
        );
        assert_eq!(r("/usr/lib/up/etc"), Path::new("etc"));
        assert_eq!(r("/lib/missing/x"), Path::new("usr/lib/missing/x"));
        assert!(matches!(
            resolve_in_rootfs(root, Path::new("/loop/x")),
            Err(Error::SymlinkLoop { .. })
        ));
        assert_eq!(
            canonical_entry(root, Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap(),
            Some(PathBuf::from("usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(canonical_entry(root, Path::new("/.")).unwrap(), None);
    }

    #[test]
    fn parses_alternatives_file() {
        let text = "auto\n/usr/sbin/iptables\niptables-restore\n/usr/sbin/iptables-restore\n\
                    iptables-save\n/usr/sbin/iptables-save\n\n/usr/sbin/iptables-legacy\n10\n\
                    /usr/sbin/iptables-legacy-restore\n/usr/sbin/iptables-legacy-save\n";
        let links = parse_alternative(Path::new("x"), "iptables", text).unwrap();
        assert_eq!(
            links,
            [
                ("iptables".to_string(), PathBuf::from("/usr/sbin/iptables")),
                (
                    "iptables-restore".to_string(),
                    PathBuf::from("/usr/sbin/iptables-restore")
                ),
                (
                    "iptables-save".to_string(),
                    PathBuf::from("/usr/sbin/iptables-save")
                ),
            ]
        );
        assert!(parse_alternative(Path::new("x"), "x", "auto\n/usr/bin/x\n").is_err());
    }

    /// A miniature merged-/usr rootfs exercising the whole slim_layer path.
    #[test]
    fn slim_layer_on_fake_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "usr/bin",
            "usr/sbin",
            "usr/lib/x86_64-linux-gnu",
            "usr/lib64",
            "usr/share/doc/tool",
            "etc/alternatives",
            "var/lib/dpkg/info",
            "var/lib/dpkg/alternatives",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for top in MERGED_USR_LINKS {
            symlink(format!("usr/{top}"), root.join(top)).unwrap();
        }
        fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: tool\nStatus: install ok installed\nDepends: libfoo\n\n\
             Package: libfoo\nStatus: install ok installed\n\n\
             Package: other\nStatus: install ok installed\n",
        )
        .unwrap();
        fs::write(
            root.join("var/lib/dpkg/info/tool.list"),
            "/.\n/usr\n/usr/sbin\n/usr/sbin/tool-nft\n/usr/share/doc/tool/copyright\n",
        )
        .unwrap();
        fs::write(
            root.join("var/lib/dpkg/info/libfoo:amd64.list"),
            "/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1\n/lib/x86_64-linux-gnu/gone.so\n",
        )
        .unwrap();
        fs::write(
            root.join("var/lib/dpkg/info/other.list"),
            "/usr/bin/other\n",
        )
        .unwrap();
        fs::write(root.join("usr/sbin/tool-nft"), "tool").unwrap();
        fs::write(root.join("usr/share/doc/tool/copyright"), "c").unwrap();
        fs::write(root.join("usr/lib/x86_64-linux-gnu/libfoo.so.1"), "lib").unwrap();
        fs::write(root.join("usr/bin/other"), "other").unwrap();
        fs::write(
            root.join("var/lib/dpkg/alternatives/tool"),
            "auto\n/usr/sbin/tool\ntool-save\n/usr/sbin/tool-save\n\n/usr/sbin/tool-nft\n20\n\n",
        )
        .unwrap();
        symlink("/usr/sbin/tool-nft", root.join("etc/alternatives/tool")).unwrap();
        // The slave's choice is not in the layer, so it must be left out.
        symlink(
            "/usr/sbin/tool-nft-save",
            root.join("etc/alternatives/tool-save"),
        )
        .unwrap();
        fs::write(
            root.join("var/lib/dpkg/alternatives/other"),
            "auto\n/usr/bin/alt-other\n\n/usr/bin/other\n10\n",
        )
        .unwrap();
        symlink("/usr/bin/other", root.join("etc/alternatives/other")).unwrap();

        let mut layer = LayerBuilder::new();
        slim_layer(root, &["tool"], &mut layer).unwrap();
        let paths: Vec<String> = layer
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "bin",
                "etc",
                "etc/alternatives",
                "etc/alternatives/tool",
                "lib",
                "lib64",
                "sbin",
                "usr",
                "usr/lib",
                "usr/lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu/libfoo.so.1",
                "usr/sbin",
                "usr/sbin/tool",
                "usr/sbin/tool-nft",
            ]
        );

        let mut tar = Vec::new();
        layer.write_tar(&mut tar).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            match path.as_str() {
                "usr/sbin/tool" => assert_eq!(link.as_deref(), Some("/etc/alternatives/tool")),
                "etc/alternatives/tool" => assert_eq!(link.as_deref(), Some("/usr/sbin/tool-nft")),
                "lib" => assert_eq!(link.as_deref(), Some("usr/lib")),
                _ => {}
            }
        }

        let err = slim_layer(root, &["missing"], &mut LayerBuilder::new()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
