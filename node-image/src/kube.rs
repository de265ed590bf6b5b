//! Where the Kubernetes binaries of a node image come from: built from Go modules for a
//! released version (the default), a directory of binaries (e.g. `_output/bin`), a
//! kubernetes-server-linux-amd64.tar.gz (file or URL), or a Kubernetes source checkout.

use std::io::Read;
use std::path::{Path, PathBuf};

use kindred::ui::Step;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::gobuild::{resolve_module, GoBuild, GoEnv};
use crate::Error;

/// The seven binaries every node image needs, as kubeadm and the images expect them.
pub const KUBE_BINARIES: [&str; 7] = [
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    /// A released version, built from k8s.io/kubernetes on the Go module proxy.
    Version(String),
    /// A directory holding the seven binaries.
    Binaries(PathBuf),
    /// kubernetes-server-linux-amd64.tar.gz, a path or an http(s) URL.
    Tarball(String),
    /// A Kubernetes source checkout, built with its own go.mod.
    Source(PathBuf),
}

/// Binaries ready to go into the image.
#[derive(Debug, Clone)]
pub struct KubeBinaries {
    pub dir: PathBuf,
    /// What `kubeadm version -o short` prints, e.g. `v1.34.12`.
    pub version: String,
    /// For the BOM: where they came from.
    pub origin: String,
}

impl KubeBinaries {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Parses `v1.34.12` (or `1.34.12`) into (minor, patch), rejecting anything else.
pub fn parse_version(v: &str) -> Result<(u32, u32), Error> {
    let bad = || {
        Error::Msg(format!(
            "`{v}` is not a Kubernetes release version; expected vMAJOR.MINOR.PATCH such as v1.34.12 \
             (list what the Go module proxy has: go list -m -versions k8s.io/kubernetes)"
        ))
    };
    let rest = v.strip_prefix('v').unwrap_or(v);
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 3 || parts[0] != "1" {
        return Err(bad());
    }
    let minor = parts[1].parse().map_err(|_| bad())?;
    let patch = parts[2].parse().map_err(|_| bad())?;
    Ok((minor, patch))
}

/// Normalises `1.34.12` to `v1.34.12`.
pub fn normalize_version(v: &str) -> String {
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

pub async fn resolve(
    source: &KubeSource,
    go: &GoEnv,
    no_cache: bool,
    step: &Step,
) -> Result<KubeBinaries, Error> {
    match source {
        KubeSource::Version(v) => build_release(&normalize_version(v), go, no_cache, step).await,
        KubeSource::Binaries(dir) => {
            check_binaries(dir)?;
            let version = kubeadm_version(dir).await?;
            Ok(KubeBinaries {
                dir: dir.clone(),
                version,
                origin: format!("binaries from {}", dir.display()),
            })
        }
        KubeSource::Tarball(location) => from_tarball(location, &go.cache_root, step).await,
        KubeSource::Source(dir) => build_checkout(dir, go, step).await,
    }
}

/// The -X flags that make `kubeadm version`, `kubelet --version` and friends report `version`.
pub fn version_ldflags(version: &str, commit: &str, build_date: &str) -> Vec<String> {
    let (minor, _) = parse_version(version).unwrap_or((0, 0));
    let mut flags = Vec::new();
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", version.to_string()),
            ("gitMajor", "1".to_string()),
            ("gitMinor", minor.to_string()),
            ("gitCommit", commit.to_string()),
            ("gitTreeState", "clean".to_string()),
            ("buildDate", build_date.to_string()),
        ] {
            flags.push(format!("-X {pkg}.{var}={value}"));
        }
    }
    flags
}

async fn build_release(
    version: &str,
    go: &GoEnv,
    no_cache: bool,
    step: &Step,
) -> Result<KubeBinaries, Error> {
    let (minor, patch) = parse_version(version)?;
    // Commit and date come from the proxy so the binaries say what upstream's would.
    let info = resolve_module(go, "k8s.io/kubernetes", version, step).await?;
    let commit = info.origin.and_then(|o| o.hash).unwrap_or_default();
    let date = info.time.unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let packages = KUBE_BINARIES
        .iter()
        .map(|b| format!("k8s.io/kubernetes/cmd/{b}"))
        .collect();
    let build = GoBuild {
        ldflags: version_ldflags(version, &commit, &date),
        // Staging modules are published as v0.MINOR.PATCH alongside v1.MINOR.PATCH.
        sibling_version: Some(format!("v0.{minor}.{patch}")),
        ..GoBuild::new("kubernetes", "k8s.io/kubernetes", version, packages)
    };
    let out = build.build(go, no_cache, step).await?;
    let reported = kubeadm_version(&out.dir).await?;
    if reported != version {
        return Err(Error::Msg(format!(
            "built kubeadm reports {reported}, expected {version}"
        )));
    }
    Ok(KubeBinaries {
        dir: out.dir,
        version: version.to_string(),
        origin: format!("go:k8s.io/kubernetes@{version} ({})", go.go_version),
    })
}

/// Every binary present and executable, or an error naming the missing ones.
pub fn check_binaries(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let missing: Vec<&str> = KUBE_BINARIES
        .iter()
        .copied()
        .filter(|b| {
            !std::fs::metadata(dir.join(b))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Msg(format!(
            "{} is missing Kubernetes binaries: {} (it needs all of: {})",
            dir.display(),
            missing.join(", "),
            KUBE_BINARIES.join(", ")
        )))
    }
}

async fn kubeadm_version(dir: &Path) -> Result<String, Error> {
    let kubeadm = dir.join("kubeadm");
    let out = Command::new(&kubeadm)
        .args(["version", "-o", "short"])
        .output()
        .await
        .map_err(|e| Error::io(&kubeadm, e))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || parse_version(&v).is_err() {
        return Err(Error::Msg(format!(
            "{} does not report a release version (got `{v}`); pass one built with version flags",
            kubeadm.display()
        )));
    }
    Ok(v)
}

async fn from_tarball(location: &str, cache: &Path, step: &Step) -> Result<KubeBinaries, Error> {
    let file = if location.starts_with("http://") || location.starts_with("https://") {
        download(location, cache, step).await?
    } else {
        PathBuf::from(location)
    };
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let dir = cache.join("kube-tarballs").join(&digest[..16]);
    if !dir.join("done").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        extract_server_binaries(&bytes, &dir)
            .map_err(|e| Error::Msg(format!("reading {}: {e}", file.display())))?;
        check_binaries(&dir).map_err(|_| {
            Error::Msg(format!(
                "{} is not a kubernetes-server-linux-amd64.tar.gz: kubernetes/server/bin/ lacks some of {}",
                file.display(),
                KUBE_BINARIES.join(", ")
            ))
        })?;
        std::fs::write(dir.join("done"), b"").map_err(|e| Error::io(&dir, e))?;
    }
    let version = kubeadm_version(&dir).await?;
    Ok(KubeBinaries {
        dir,
        version,
        origin: format!("tarball {location} (sha256 {digest})"),
    })
}

/// Copies kubernetes/server/bin/<binary> for each needed binary out of the gzipped tarball.
fn extract_server_binaries(gz: &[u8], dir: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(rest) = path.strip_prefix("kubernetes/server/bin") else {
            continue;
        };
        let name = rest.to_string_lossy().into_owned();
        if KUBE_BINARIES.contains(&name.as_str()) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            let dest = dir.join(&name);
            std::fs::write(&dest, data)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

async fn download(url: &str, cache: &Path, step: &Step) -> Result<PathBuf, Error> {
    let dir = cache.join("downloads");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let dest = dir.join(format!(
        "{}.tar.gz",
        &hex::encode(Sha256::digest(url.as_bytes()))[..16]
    ));
    step.detail(format!("downloading {url}"));
    let url_owned = url.to_string();
    let tmp = dest.with_extension("partial");
    let tmp2 = tmp.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let resp = ureq::get(&url_owned).call().map_err(|e| e.to_string())?;
        let mut reader = resp.into_body().into_reader();
        let mut file = std::fs::File::create(&tmp2).map_err(|e| e.to_string())?;
        std::io::copy(&mut reader, &mut file).map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Msg(e.to_string()))?
    .map_err(|e| Error::Msg(format!("downloading {url}: {e}")))?;
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    Ok(dest)
}

/// Builds the seven commands of a Kubernetes checkout with its own go.mod. The version comes
/// from `git describe` (Kubernetes tags every release), so kubeadm picks matching images.
async fn build_checkout(dir: &Path, go: &GoEnv, step: &Step) -> Result<KubeBinaries, Error> {
    if !dir.join("cmd/kubeadm").is_dir() || !dir.join("go.mod").is_file() {
        return Err(Error::Msg(format!(
            "{} is not a Kubernetes source checkout (no go.mod or cmd/kubeadm)",
            dir.display()
        )));
    }
    let git = |args: &[&str]| {
        let mut c = std::process::Command::new("git");
        c.arg("-C").arg(dir).args(args);
        c.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let described =
        git(&["describe", "--tags", "--match", "v1.*", "--abbrev=0"]).ok_or_else(|| {
            Error::Msg(format!(
                "cannot tell the Kubernetes version of {}: `git describe --tags` found no v1.* tag",
                dir.display()
            ))
        })?;
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let out = go
        .cache_root
        .join("kube-source")
        .join(&hex::encode(Sha256::digest(dir.to_string_lossy().as_bytes()))[..16]);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut cmd = go.command(dir);
    cmd.env("CGO_ENABLED", "0")
        // The checkout's own go.mod/go.work and vendor tree decide dependencies.
        .env("GOFLAGS", "-buildvcs=false")
        .args(["build", "-trimpath", "-ldflags"])
        .arg(
            ["-s", "-w"]
                .iter()
                .map(|s| s.to_string())
                .chain(version_ldflags(&described, &commit, "1970-01-01T00:00:00Z"))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .arg("-o")
        .arg(&out)
        .args(KUBE_BINARIES.iter().map(|b| format!("./cmd/{b}")));
    kindred::process::run(cmd, step)
        .await
        .map_err(|e| Error::Step {
            step: format!("building Kubernetes from {}", dir.display()),
            source: Box::new(e),
        })?;
    let version = kubeadm_version(&out).await?;
    Ok(KubeBinaries {
        dir: out,
        version,
        origin: format!("source {} at {commit}", dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_reject() {
        assert_eq!(parse_version("v1.34.12").unwrap(), (34, 12));
        assert_eq!(parse_version("1.33.0").unwrap(), (33, 0));
        for bad in ["v2.0.0", "v1.34", "latest", "v1.34.x", ""] {
            let e = parse_version(bad).unwrap_err().to_string();
            assert!(e.contains("go list -m -versions k8s.io/kubernetes"), "{e}");
        }
        assert_eq!(normalize_version("1.34.1"), "v1.34.1");
    }

    #[test]
    fn ldflags_set_both_version_packages() {
        let f = version_ldflags("v1.34.12", "abc", "2026-01-01T00:00:00Z");
        assert!(f.contains(&"-X k8s.io/component-base/version.gitVersion=v1.34.12".to_string()));
        assert!(f.contains(&"-X k8s.io/client-go/pkg/version.gitMinor=34".to_string()));
        assert!(f.contains(&"-X k8s.io/client-go/pkg/version.gitCommit=abc".to_string()));
    }

    #[test]
    fn missing_binaries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for b in ["kubeadm", "kubelet"] {
            let p = dir.path().join(b);
            std::fs::write(&p, b"#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let e = check_binaries(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("kube-apiserver") && e.contains("kube-proxy"),
            "{e}"
        );
        assert!(!e.contains("missing Kubernetes binaries: kubeadm"), "{e}");
    }

    #[test]
    fn tarball_extraction_takes_only_server_binaries() {
        let mut tar_bytes = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut tar_bytes, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            for name in [
                "kubernetes/server/bin/kubeadm",
                "kubernetes/server/bin/kubeadm.tar",
                "kubernetes/LICENSES",
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(2);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, &b"hi"[..]).unwrap();
            }
            b.into_inner().unwrap().finish().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        extract_server_binaries(&tar_bytes, dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kubeadm")]);
    }
}
