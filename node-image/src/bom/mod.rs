//! The bill of materials: every component of a node image with its version, where it came from
//! and its sha256. Stored at /kindred/bom.json in the image; its digest is an image label.
//!
//! The stored form is kindred's own JSON; [`spdx`] and [`cyclonedx`] convert it for
//! supply-chain tools (with [`purl`] identifiers), [`diff`] compares two BOMs.

pub mod cyclonedx;
pub mod diff;
pub mod purl;
pub mod spdx;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the BOM lives inside a node image.
pub const BOM_PATH: &str = "/kindred/bom.json";
/// The same BOM as SPDX 2.3 and CycloneDX 1.5 JSON, for scanners that look inside images.
pub const SPDX_PATH: &str = "/kindred/bom.spdx.json";
pub const CYCLONEDX_PATH: &str = "/kindred/bom.cdx.json";
/// Image labels kindred sets on node images.
pub const LABEL_KUBE_VERSION: &str = "io.kindred.kubernetes-version";
pub const LABEL_BOM_SHA256: &str = "io.kindred.bom-sha256";
pub const LABEL_KUBE_SOURCE: &str = "io.kindred.kubernetes-source";
pub const LABEL_KINDRED_VERSION: &str = "io.kindred.version";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A program installed in the node (path given).
    Binary,
    /// A container image preloaded into containerd (sha256 = manifest digest).
    Image,
    /// A Debian package of the base rootfs (sha256 = the .deb).
    DebianPackage,
    /// A file kindred writes (entrypoint, units, configs).
    File,
}

impl Kind {
    /// The name used in the JSON and the tables, e.g. `debian-package`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Binary => "binary",
            Kind::Image => "image",
            Kind::DebianPackage => "debian-package",
            Kind::File => "file",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub kind: Kind,
    pub version: String,
    /// e.g. `go:k8s.io/kubernetes@v1.34.12`, `debian:bookworm`, `kindred`.
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub kubernetes_version: String,
    pub kindred_version: String,
    pub go_version: String,
    /// The newest release time (`YYYY-MM-DDThh:mm:ssZ`, as the Go module proxy gives it) among
    /// the upstream Go modules the image is built from: the image's creation time. Absent in
    /// BOMs of images built before kindred recorded it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub released: Option<String>,
    pub components: Vec<Component>,
}

impl Bom {
    /// A copy with the components in their canonical order: by kind, then name, then path.
    pub fn sorted(&self) -> Bom {
        let mut sorted = self.clone();
        sorted.components.sort_by(|a, b| {
            (kind_rank(&a.kind), &a.name, &a.path).cmp(&(kind_rank(&b.kind), &b.name, &b.path))
        });
        sorted
    }

    /// Deterministic JSON (components sorted by kind, then name) and its sha256.
    pub fn to_json(&self) -> (Vec<u8>, String) {
        let json = pretty_json(&self.sorted());
        let digest = hex::encode(Sha256::digest(&json));
        (json, digest)
    }

    /// Every Go module (path, version) a component comes from, from origins such as
    /// `go:k8s.io/kubernetes@v1.34.12 (go1.26.8)`; sorted, without repeats.
    pub fn go_modules(&self) -> Vec<(String, String)> {
        let mut modules: Vec<(String, String)> = self
            .components
            .iter()
            .filter_map(|c| c.origin.strip_prefix("go:"))
            .filter_map(|o| o.split_whitespace().next())
            .filter_map(|m| m.rsplit_once('@'))
            .map(|(m, v)| (m.to_string(), v.to_string()))
            .collect();
        modules.sort();
        modules.dedup();
        modules
    }

    /// A human-readable table, one component per line.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Kubernetes {}  (built by kindred {} with {})\n{:<16} {:<34} {:<22} {:<66} ORIGIN\n",
            self.kubernetes_version,
            self.kindred_version,
            self.go_version,
            "KIND",
            "NAME",
            "VERSION",
            "SHA256"
        );
        for c in &self.components {
            out.push_str(&format!(
                "{:<16} {:<34} {:<22} {:<66} {}\n",
                c.kind.as_str(),
                c.name,
                c.version,
                c.sha256,
                c.origin
            ));
        }
        out
    }

    /// One line saying what the BOM is of.
    pub fn summary(&self) -> String {
        format!(
            "Kubernetes {} node image built by kindred {} with {}",
            self.kubernetes_version, self.kindred_version, self.go_version
        )
    }
}

/// Errors reading a BOM file or preparing a BOM document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read the BOM file {path}: {source}\n\
         Write one with `kindred bom IMAGE -o json > bom.json`"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a kindred BOM ({source}); \
         give a file written by `kindred bom IMAGE -o json`"
    )]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "SOURCE_DATE_EPOCH={0:?} is not a whole number of seconds since 1970-01-01; \
         unset it, or set it to e.g. `git log -1 --format=%ct`"
    )]
    SourceDateEpoch(String),
}

/// Reads a BOM file (kindred's JSON, as `kindred bom -o json` prints and images store).
pub fn read_file(path: &Path) -> Result<Bom, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// The creation time of a node image and of the SPDX and CycloneDX documents of its BOM, as
/// `YYYY-MM-DDThh:mm:ssZ`: `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention for
/// "the time of the inputs"), else the newest upstream release in it ([`Bom::released`]),
/// `None` for BOMs that do not record one. Never the clock: the same inputs must give the same
/// image and documents, so that they can be compared and cached.
pub fn document_time(bom: &Bom) -> Result<Option<String>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(|secs| Some(utc(secs)))
            .map_err(|_| Error::SourceDateEpoch(v)),
        _ => Ok(bom.released.clone()),
    }
}

/// [`document_time`], or the fixed [`FIXED_CREATED`] where a time is required.
pub fn created(bom: &Bom) -> Result<String, Error> {
    Ok(document_time(bom)?.unwrap_or_else(|| FIXED_CREATED.into()))
}

/// The SPDX document of `bom` as a node image stores it and `kindred bom -o spdx` prints it.
pub fn spdx_json(bom: &Bom, subject: &str) -> Result<Vec<u8>, Error> {
    Ok(pretty_json(&spdx::document(bom, subject, &created(bom)?)))
}

/// The CycloneDX document of `bom` as a node image stores it and `kindred bom -o cyclonedx`
/// prints it.
pub fn cyclonedx_json(bom: &Bom, subject: &str) -> Result<Vec<u8>, Error> {
    Ok(pretty_json(&cyclonedx::document(
        bom,
        subject,
        document_time(bom)?,
    )))
}

/// Indented JSON ending in a newline: how kindred writes every JSON document it prints or stores.
pub fn pretty_json(value: &impl Serialize) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(value).expect("serializable");
    json.push(b'\n');
    json
}

/// SPDX and image configs require a creation time. Without any known time it is this fixed one
/// (the Unix epoch), which says plainly that it is not a real time.
pub const FIXED_CREATED: &str = "1970-01-01T00:00:00Z";

/// Seconds since 1970 as a UTC `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian calendar).
pub fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01: the calendar repeats every 400 years
/// (146097 days), and counting years from March puts the leap day last.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the origin to 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year, from March
    let mp = (5 * doy + 2) / 153; // month, from March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Identifiers made from names, kept unique within one document (a numeric suffix on repeats).
#[derive(Default)]
struct UniqueIds(std::collections::HashSet<String>);

impl UniqueIds {
    fn get(&mut self, wanted: &str) -> String {
        let mut id = wanted.to_string();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{wanted}-{n}");
            n += 1;
        }
        id
    }
}

fn kind_rank(k: &Kind) -> u8 {
    match k {
        Kind::Binary => 0,
        Kind::Image => 1,
        Kind::File => 2,
        Kind::DebianPackage => 3,
    }
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One component; its sha256 is `byte` (two hex digits) repeated.
    pub(crate) fn component(
        kind: Kind,
        name: &str,
        version: &str,
        origin: &str,
        path: Option<&str>,
        byte: &str,
    ) -> Component {
        Component {
            name: name.into(),
            kind,
            version: version.into(),
            origin: origin.into(),
            path: path.map(str::to_string),
            sha256: byte.repeat(32),
        }
    }

    /// A small BOM with every kind of component, as a real node image has them.
    pub(crate) fn sample() -> Bom {
        let c = component;
        let kube = "go:k8s.io/kubernetes@v1.34.12 (go1.26.8)";
        let containerd = "go:github.com/containerd/containerd/v2@v2.1.5";
        Bom {
            kubernetes_version: "v1.34.12".into(),
            kindred_version: "0.1.0".into(),
            go_version: "go1.26.8".into(),
            released: None,
            components: vec![
                c(
                    Kind::Binary,
                    "kubelet",
                    "v1.34.12",
                    kube,
                    Some("/usr/bin/kubelet"),
                    "01",
                ),
                c(
                    Kind::Binary,
                    "kubectl",
                    "v1.34.12",
                    kube,
                    Some("/usr/bin/kubectl"),
                    "02",
                ),
                c(
                    Kind::Binary,
                    "containerd",
                    "v2.1.5",
                    containerd,
                    Some("/usr/local/bin/containerd"),
                    "03",
                ),
                c(
                    Kind::Binary,
                    "ctr",
                    "v2.1.5",
                    containerd,
                    Some("/usr/local/bin/ctr"),
                    "04",
                ),
                c(
                    Kind::Binary,
                    "kindred",
                    "0.1.0",
                    "kindred",
                    Some("/usr/local/bin/kindred"),
                    "05",
                ),
                c(
                    Kind::Image,
                    "registry.k8s.io/etcd:3.6.5-0",
                    "3.6.5-0",
                    "go:go.etcd.io/etcd/server/v3@v3.6.5",
                    None,
                    "ab",
                ),
                c(
                    Kind::Image,
                    "localhost/kindred/agent:v0.1.0",
                    "v0.1.0",
                    "kindred 0.1.0 + debian:bookworm iptables",
                    None,
                    "ac",
                ),
                c(
                    Kind::File,
                    "config.toml",
                    "0.1.0",
                    "kindred",
                    Some("/etc/containerd/config.toml"),
                    "0a",
                ),
                c(
                    Kind::File,
                    "entrypoint",
                    "0.1.0",
                    "kindred",
                    Some("/usr/local/bin/entrypoint"),
                    "0b",
                ),
                c(
                    Kind::DebianPackage,
                    "libc6",
                    "2.36-9+deb12u10",
                    "debian:bookworm/amd64",
                    None,
                    "1a",
                ),
                c(
                    Kind::DebianPackage,
                    "tzdata",
                    "2025b-0+deb12u1",
                    "debian:bookworm/all",
                    None,
                    "1b",
                ),
            ],
        }
    }

    #[test]
    fn kind_names_are_the_json_names() {
        for k in [Kind::Binary, Kind::Image, Kind::DebianPackage, Kind::File] {
            assert_eq!(serde_json::to_value(&k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), FIXED_CREATED);
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn go_modules_come_from_origins() {
        let m = sample().go_modules();
        assert_eq!(
            m,
            vec![
                (
                    "github.com/containerd/containerd/v2".into(),
                    "v2.1.5".into()
                ),
                ("go.etcd.io/etcd/server/v3".into(), "v3.6.5".into()),
                ("k8s.io/kubernetes".into(), "v1.34.12".into()),
            ],
        );
    }

    #[test]
    fn document_time_prefers_source_date_epoch_then_release() {
        // The only test that touches SOURCE_DATE_EPOCH (tests run in parallel threads).
        let mut bom = sample();
        std::env::remove_var("SOURCE_DATE_EPOCH");
        assert_eq!(document_time(&bom).unwrap(), None);
        assert_eq!(created(&bom).unwrap(), FIXED_CREATED);
        bom.released = Some("2026-09-23T17:08:30Z".into());
        assert_eq!(created(&bom).unwrap(), "2026-09-23T17:08:30Z");
        std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
        assert_eq!(created(&bom).unwrap(), "2023-11-14T22:13:20Z");
        std::env::set_var("SOURCE_DATE_EPOCH", "yesterday");
        let e = document_time(&bom).unwrap_err().to_string();
        std::env::remove_var("SOURCE_DATE_EPOCH");
        assert!(e.contains("git log -1 --format=%ct"), "{e}");
    }

    #[test]
    fn read_file_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.json");
        std::fs::write(&path, sample().to_json().0).unwrap();
        assert_eq!(read_file(&path).unwrap(), sample().sorted());
        std::fs::write(&path, "{}").unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("is not a kindred BOM"), "{e}");
        let e = read_file(&dir.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kindred bom IMAGE -o json"), "{e}");
    }

    fn comp(name: &str, kind: Kind) -> Component {
        Component {
            name: name.into(),
            kind,
            version: "1".into(),
            origin: "o".into(),
            path: None,
            sha256: "00".into(),
        }
    }

    #[test]
    fn json_is_sorted_and_stable() {
        let a = Bom {
            kubernetes_version: "v1.34.12".into(),
            kindred_version: "0.1.0".into(),
            go_version: "go1.26.8".into(),
            released: None,
            components: vec![
                comp("zlib", Kind::DebianPackage),
                comp("kubelet", Kind::Binary),
                comp("etcd", Kind::Image),
            ],
        };
        let mut b = a.clone();
        b.components.reverse();
        assert_eq!(a.to_json(), b.to_json());
        let json = String::from_utf8(a.to_json().0).unwrap();
        assert!(json.find("kubelet").unwrap() < json.find("etcd").unwrap());
        assert!(json.contains("\"kind\": \"debian-package\""));
        assert!(a.table().contains("kubelet"));
    }
}
