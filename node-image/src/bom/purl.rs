//! Package URLs (purl, <https://github.com/package-url/purl-spec>) for BOM components: the
//! identifier SPDX and CycloneDX consumers (vulnerability scanners, policy tools) match on.
//!
//! Types used: `deb` for Debian packages, `golang` for Go-built binaries, `oci` for preloaded
//! images, `generic` for kindred's own binary and files and for binaries of unknown origin.

use std::fmt;

use super::{Component, Kind};

/// A package URL: `pkg:type/namespace/name@version?qualifiers#subpath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    ty: &'static str,
    namespace: Vec<String>,
    name: String,
    version: Option<String>,
    /// Kept sorted by key, as the spec's canonical form requires.
    qualifiers: Vec<(&'static str, String)>,
    subpath: Vec<String>,
}

impl Purl {
    fn new(ty: &'static str, name: impl Into<String>) -> Purl {
        Purl {
            ty,
            namespace: Vec::new(),
            name: name.into(),
            version: None,
            qualifiers: Vec::new(),
            subpath: Vec::new(),
        }
    }

    fn version(mut self, version: &str) -> Purl {
        if !version.is_empty() {
            self.version = Some(version.to_string());
        }
        self
    }

    fn qualifier(mut self, key: &'static str, value: &str) -> Purl {
        if !value.is_empty() {
            self.qualifiers.push((key, value.to_string()));
            self.qualifiers.sort();
        }
        self
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        for segment in &self.namespace {
            write!(f, "{}/", encode(segment, ""))?;
        }
        write!(f, "{}", encode(&self.name, ""))?;
        if let Some(v) = &self.version {
            // The spec leaves ':' unencoded (Debian epochs, `sha256:` digests).
            write!(f, "@{}", encode(v, ":"))?;
        }
        for (i, (key, value)) in self.qualifiers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            // '/' and ':' stay readable in values such as repository_url, as in the spec's
            // examples; the separators '&', '=', '#', '?' are encoded.
            write!(f, "{sep}{key}={}", encode(value, "/:"))?;
        }
        if !self.subpath.is_empty() {
            let parts: Vec<String> = self.subpath.iter().map(|s| encode(s, "")).collect();
            write!(f, "#{}", parts.join("/"))?;
        }
        Ok(())
    }
}

/// Percent-encodes everything but ASCII letters, digits, `.-_~` and the characters in `keep`.
fn encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || ".-_~".contains(c) || (c.is_ascii() && keep.contains(c)) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of a component, from its kind, name, version, origin and sha256.
pub fn of(c: &Component) -> Purl {
    match c.kind {
        Kind::DebianPackage => debian(c),
        Kind::Binary => match go_module(&c.origin) {
            Some((module, version)) => golang(module, version),
            None => Purl::new("generic", c.name.clone()).version(&c.version),
        },
        Kind::Image => oci(&c.name, &c.sha256),
        // kindred's generated files, as paths inside one generic "kindred-node-files" package
        // at kindred's version: the subpath is what the spec has for a file within a package.
        Kind::File => {
            let mut p = Purl::new("generic", "kindred-node-files").version(&c.version);
            p.subpath = c
                .path
                .as_deref()
                .unwrap_or(&c.name)
                .split('/')
                .filter(|s| !s.is_empty() && *s != "." && *s != "..")
                .map(str::to_string)
                .collect();
            p
        }
    }
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-N` from an origin `debian:SUITE/ARCH`.
fn debian(c: &Component) -> Purl {
    let (suite, arch) = c
        .origin
        .strip_prefix("debian:")
        .and_then(|s| s.split_once('/'))
        .unwrap_or(("", ""));
    let mut p = Purl::new("deb", c.name.to_lowercase())
        .version(&c.version)
        .qualifier("arch", arch)
        .qualifier("distro", &distro(suite));
    p.namespace = vec!["debian".into()];
    p
}

/// The purl `distro` qualifier for a Debian suite: `debian-<release number>` (as scanners
/// match it against the Debian security tracker), the codename itself when it is not known.
fn distro(suite: &str) -> String {
    let number = match suite {
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        _ => return suite.to_string(),
    };
    format!("debian-{number}")
}

/// `go:MODULE@VERSION`, possibly followed by ` (go1.x)` or other notes, split into its parts.
fn go_module(origin: &str) -> Option<(&str, &str)> {
    let spec = origin.strip_prefix("go:")?.split_whitespace().next()?;
    spec.split_once('@')
}

/// `pkg:golang/NAMESPACE/NAME@VERSION`: the module path's last segment is the name.
fn golang(module: &str, version: &str) -> Purl {
    let mut segments: Vec<String> = module.split('/').map(str::to_string).collect();
    let name = segments.pop().unwrap_or_default();
    let mut p = Purl::new("golang", name).version(version);
    p.namespace = segments;
    p
}

/// `pkg:oci/NAME@sha256:DIGEST?repository_url=REPO&tag=TAG` for an image `REPO:TAG`.
fn oci(image: &str, sha256: &str) -> Purl {
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let (repo, tag) = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, ""),
    };
    let name = repo.rsplit('/').next().unwrap_or(repo).to_lowercase();
    let digest = if sha256.is_empty() {
        String::new()
    } else {
        format!("sha256:{sha256}")
    };
    Purl::new("oci", name)
        .version(&digest)
        .qualifier("repository_url", repo)
        .qualifier("tag", tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(kind: Kind, name: &str, version: &str, origin: &str, path: Option<&str>) -> Component {
        crate::bom::tests::component(kind, name, version, origin, path, "ab")
    }

    #[test]
    fn debian_package() {
        let c = comp(
            Kind::DebianPackage,
            "libc6",
            "2.36-9+deb12u10",
            "debian:bookworm/amd64",
            None,
        );
        assert_eq!(
            of(&c).to_string(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12"
        );
        let epoch = comp(
            Kind::DebianPackage,
            "Perl-Base",
            "1:5.36",
            "debian:sid/all",
            None,
        );
        assert_eq!(
            of(&epoch).to_string(),
            "pkg:deb/debian/perl-base@1:5.36?arch=all&distro=sid"
        );
    }

    #[test]
    fn go_binaries() {
        let kubelet = comp(
            Kind::Binary,
            "kubelet",
            "v1.34.12",
            "go:k8s.io/kubernetes@v1.34.12 (go1.26.8)",
            Some("/usr/bin/kubelet"),
        );
        assert_eq!(
            of(&kubelet).to_string(),
            "pkg:golang/k8s.io/kubernetes@v1.34.12"
        );
        let ctr = comp(
            Kind::Binary,
            "ctr",
            "v2.1.5",
            "go:github.com/containerd/containerd/v2@v2.1.5",
            Some("/usr/local/bin/ctr"),
        );
        assert_eq!(
            of(&ctr).to_string(),
            "pkg:golang/github.com/containerd/containerd/v2@v2.1.5"
        );
        let local = comp(
            Kind::Binary,
            "kubelet",
            "v1.34.12",
            "binaries from /tmp/k",
            None,
        );
        assert_eq!(of(&local).to_string(), "pkg:generic/kubelet@v1.34.12");
    }

    #[test]
    fn images() {
        let c = comp(
            Kind::Image,
            "registry.k8s.io/kube-apiserver:v1.34.12",
            "v1.34.12",
            "go:k8s.io/kubernetes@v1.34.12",
            None,
        );
        assert_eq!(
            of(&c).to_string(),
            format!(
                "pkg:oci/kube-apiserver@sha256:{}?repository_url=registry.k8s.io/kube-apiserver&tag=v1.34.12",
                "ab".repeat(32)
            )
        );
        let port = comp(Kind::Image, "localhost:5000/x/Agent", "", "kindred", None);
        assert!(of(&port)
            .to_string()
            .ends_with("?repository_url=localhost:5000/x/Agent"));
        assert!(of(&port).to_string().starts_with("pkg:oci/agent@sha256:"));
    }

    #[test]
    fn files_are_subpaths_of_kindred_files() {
        let c = comp(
            Kind::File,
            "10-kubeadm.conf",
            "0.1.0",
            "kindred",
            Some("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
        );
        assert_eq!(
            of(&c).to_string(),
            "pkg:generic/kindred-node-files@0.1.0#etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
        );
    }

    #[test]
    fn encodes_separators() {
        assert_eq!(
            encode("a b&c=d#e?f@g+h/i:j", ""),
            "a%20b%26c%3Dd%23e%3Ff%40g%2Bh%2Fi%3Aj"
        );
        assert_eq!(encode("a/b:c", "/:"), "a/b:c");
    }
}
