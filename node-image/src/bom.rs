//! The bill of materials: every component of a node image with its version, where it came from
//! and its sha256. Stored at /kindred/bom.json in the image; its digest is an image label.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the BOM lives inside a node image.
pub const BOM_PATH: &str = "/kindred/bom.json";
/// Image labels kindred sets on node images.
pub const LABEL_KUBE_VERSION: &str = "io.kindred.kubernetes-version";
pub const LABEL_BOM_SHA256: &str = "io.kindred.bom-sha256";

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
    pub components: Vec<Component>,
}

impl Bom {
    /// Deterministic JSON (components sorted by kind, then name) and its sha256.
    pub fn to_json(&self) -> (Vec<u8>, String) {
        let mut sorted = self.clone();
        sorted.components.sort_by(|a, b| {
            (kind_rank(&a.kind), &a.name, &a.path).cmp(&(kind_rank(&b.kind), &b.name, &b.path))
        });
        let mut json = serde_json::to_vec_pretty(&sorted).expect("serializable");
        json.push(b'\n');
        let digest = hex::encode(Sha256::digest(&json));
        (json, digest)
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
            let kind = serde_json::to_value(&c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<16} {:<34} {:<22} {:<66} {}\n",
                kind, c.name, c.version, c.sha256, c.origin
            ));
        }
        out
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
mod tests {
    use super::*;

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
