//! Kubernetes versions and the kubeadm API (and component config fields) each one takes.

use std::fmt;

use super::error::KubeadmError;

/// Oldest minor release kindred renders configs for: containerd over CRI only (no dockershim)
/// and kubeadm's v1beta3 API.
const OLDEST_MINOR: u32 = 24;

/// A Kubernetes release version such as `v1.34.12` or `v1.35.0-rc.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// Pre-release and build suffix as written, e.g. `-rc.1` or `+k3s1`; usually empty.
    pub suffix: String,
}

/// The kubeadm config API a version is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    /// Kubernetes < 1.31: `extraArgs` are maps.
    V1Beta3,
    /// Kubernetes >= 1.31: `extraArgs` are lists of `{name, value}`.
    V1Beta4,
}

impl KubeVersion {
    /// Parses `v1.34.12` (the `v` is optional). Pre-releases count as their minor release.
    pub fn parse(version: &str) -> Result<KubeVersion, KubeadmError> {
        let bad = |reason: &str| KubeadmError::Version {
            version: version.to_string(),
            reason: reason.to_string(),
        };
        let bare = version.strip_prefix('v').unwrap_or(version);
        let end = bare.find(['-', '+']).unwrap_or(bare.len());
        let (numbers, suffix) = bare.split_at(end);
        let parts: Vec<&str> = numbers.split('.').collect();
        let parsed: Option<Vec<u32>> = parts.iter().map(|p| parse_number(p)).collect();
        let (major, minor, patch) = match parsed.as_deref() {
            Some(&[major, minor, patch]) => (major, minor, patch),
            _ => {
                return Err(bad(
                    "is not a version of the form vMAJOR.MINOR.PATCH, e.g. v1.34.12",
                ))
            }
        };
        if suffix.len() == 1 {
            return Err(bad("has an empty pre-release or build suffix"));
        }
        if major != 1 || minor < OLDEST_MINOR {
            return Err(bad(&format!(
                "is not supported; kindred configures Kubernetes v1.{OLDEST_MINOR} and newer v1 releases"
            )));
        }
        Ok(KubeVersion {
            major,
            minor,
            patch,
            suffix: suffix.to_string(),
        })
    }

    /// True for `v1.<minor>` and later releases.
    pub fn at_least(&self, minor: u32) -> bool {
        // `parse` only lets major version 1 through.
        self.minor >= minor
    }

    pub fn kubeadm_api(&self) -> KubeadmApi {
        if self.at_least(31) {
            KubeadmApi::V1Beta4
        } else {
            KubeadmApi::V1Beta3
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let KubeVersion {
            major,
            minor,
            patch,
            suffix,
        } = self;
        write!(f, "v{major}.{minor}.{patch}{suffix}")
    }
}

impl KubeadmApi {
    /// The `apiVersion` of kubeadm's own documents.
    pub fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// Digits only, without leading zeros (as in semver), so `1.034.0` is rejected.
fn parse_number(part: &str) -> Option<u32> {
    let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_pre_release_versions() {
        let v = KubeVersion::parse("v1.34.12").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 34, 12));
        assert_eq!(v.to_string(), "v1.34.12");
        assert_eq!(KubeVersion::parse("1.30.2").unwrap().to_string(), "v1.30.2");
        let rc = KubeVersion::parse("v1.35.0-rc.1").unwrap();
        assert_eq!((rc.minor, rc.suffix.as_str()), (35, "-rc.1"));
        assert_eq!(rc.to_string(), "v1.35.0-rc.1");
    }

    #[test]
    fn kubeadm_api_follows_the_minor_release() {
        let api = |v: &str| KubeVersion::parse(v).unwrap().kubeadm_api();
        assert_eq!(api("v1.30.14"), KubeadmApi::V1Beta3);
        assert_eq!(api("v1.31.0-alpha.3"), KubeadmApi::V1Beta4);
        assert_eq!(api("v1.31.0"), KubeadmApi::V1Beta4);
        assert_eq!(api("v1.34.12"), KubeadmApi::V1Beta4);
        assert_eq!(KubeadmApi::V1Beta3.api_version(), "kubeadm.k8s.io/v1beta3");
    }

    #[test]
    fn malformed_or_unsupported_versions_are_errors() {
        for bad in [
            "",
            "v",
            "latest",
            "v1.34",
            "v1.34.12.1",
            "v1..2",
            "v1.34.x",
            "v1.034.0",
            "v1.34.0-",
            "V1.34.0",
            " v1.34.0",
            "v2.0.0",
            "v1.23.17",
        ] {
            let err = KubeVersion::parse(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("Kubernetes version \"{bad}\": ")),
                "{err}"
            );
        }
        let err = KubeVersion::parse("stable-1").unwrap_err().to_string();
        assert!(err.contains("vMAJOR.MINOR.PATCH"), "{err}");
        let err = KubeVersion::parse("v1.23.17").unwrap_err().to_string();
        assert!(err.contains("v1.24 and newer"), "{err}");
    }
}
