//! What the upstream conformance suite runs with, built from Go modules like the node image:
//! the e2e test binary (`go test -c` of k8s.io/kubernetes/test/e2e, in a wrapper module with
//! every staging module replaced by its v0.Y.Z tag, exactly like the Kubernetes binaries) and
//! ginkgo at the version Kubernetes' go.mod requires. Both are cached by their inputs under
//! `<cache>/go-builds/` (see [`kindred_node_image::gobuild`]).

use std::path::PathBuf;

use kindred::ui::Step;

use kindred_node_image::gobuild::{resolve_module, test_binary_name, GoBuild, GoEnv};
use kindred_node_image::kube::{normalize_version, parse_version, version_ldflags};
use kindred_node_image::Error;

/// The e2e package `go test -c` compiles.
pub const E2E_PACKAGE: &str = "k8s.io/kubernetes/test/e2e";
/// ginkgo's module and its command-line package.
pub const GINKGO_MODULE: &str = "github.com/onsi/ginkgo/v2";
pub const GINKGO_PACKAGE: &str = "github.com/onsi/ginkgo/v2/ginkgo";

/// The two programs a conformance run needs.
#[derive(Debug, Clone)]
pub struct TestBinaries {
    pub kube_version: String,
    pub e2e_test: PathBuf,
    pub ginkgo: PathBuf,
    pub ginkgo_version: String,
}

/// The e2e test binary of `version`, reporting that version like upstream's.
pub fn e2e_build(version: &str, commit: &str, date: &str) -> Result<GoBuild, Error> {
    let (minor, patch) = parse_version(version)?;
    Ok(GoBuild {
        ldflags: version_ldflags(version, commit, date),
        sibling_version: Some(format!("v0.{minor}.{patch}")),
        test_binary: true,
        ..GoBuild::new(
            "e2e-test",
            "k8s.io/kubernetes",
            version,
            vec![E2E_PACKAGE.into()],
        )
    })
}

/// ginkgo's command line at `version` (the one Kubernetes requires, so its flags and the
/// e2e binary's ginkgo library agree).
pub fn ginkgo_build(version: &str) -> GoBuild {
    GoBuild::new(
        "ginkgo",
        GINKGO_MODULE,
        version,
        vec![GINKGO_PACKAGE.into()],
    )
}

/// The version of `module` in a go.mod's require directives (block or single-line form).
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    let mut in_block = false;
    for raw in go_mod.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        let body = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "require (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("require ") {
            rest
        } else {
            continue;
        };
        let mut words = body.split_whitespace();
        if words.next() == Some(module) {
            return words.next().map(str::to_string);
        }
    }
    None
}

/// Builds (or takes from the cache) e2e.test and ginkgo for Kubernetes `version`.
pub async fn build_test_binaries(
    go: &GoEnv,
    version: &str,
    no_cache: bool,
    step: &Step,
) -> Result<TestBinaries, Error> {
    let version = normalize_version(version);
    parse_version(&version)?;
    // Commit, date and go.mod come from the proxy, as for the node image's binaries.
    let info = resolve_module(go, "k8s.io/kubernetes", &version, step).await?;
    let go_mod_path = info.go_mod.as_ref().expect("resolve_module checks GoMod");
    let go_mod = std::fs::read_to_string(go_mod_path).map_err(|e| Error::io(go_mod_path, e))?;
    let ginkgo_version = required_version(&go_mod, GINKGO_MODULE).ok_or_else(|| {
        Error::Msg(format!(
            "k8s.io/kubernetes@{version} does not require {GINKGO_MODULE}; cannot tell which ginkgo to build"
        ))
    })?;
    let commit = info.origin.and_then(|o| o.hash).unwrap_or_default();
    let date = info.time.unwrap_or_else(|| "1970-01-01T00:00:00Z".into());

    let ginkgo = ginkgo_build(&ginkgo_version)
        .build(go, no_cache, step)
        .await?;
    let e2e = e2e_build(&version, &commit, &date)?
        .build(go, no_cache, step)
        .await?;
    Ok(TestBinaries {
        kube_version: version,
        e2e_test: e2e.binary(&test_binary_name(E2E_PACKAGE)),
        ginkgo: ginkgo.binary("ginkgo"),
        ginkgo_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ginkgo_version_comes_from_the_require_block() {
        let gomod = "module k8s.io/kubernetes\n\ngo 1.24.0\n\nrequire (\n\tgithub.com/onsi/ginkgo v1.0.0 // old\n\tgithub.com/onsi/ginkgo/v2 v2.21.0\n\tgithub.com/onsi/gomega v1.35.1\n)\n\nrequire k8s.io/api v0.0.0\n";
        assert_eq!(
            required_version(gomod, GINKGO_MODULE).as_deref(),
            Some("v2.21.0")
        );
        assert_eq!(
            required_version(gomod, "k8s.io/api").as_deref(),
            Some("v0.0.0")
        );
        assert_eq!(required_version(gomod, "example.com/none"), None);
    }

    #[test]
    fn e2e_is_a_test_binary_of_the_wrapper_module() {
        let b = e2e_build("v1.34.12", "abc", "2026-01-01T00:00:00Z").unwrap();
        assert!(b.test_binary);
        assert_eq!(b.module, "k8s.io/kubernetes");
        assert_eq!(b.packages, vec![E2E_PACKAGE.to_string()]);
        assert_eq!(b.sibling_version.as_deref(), Some("v0.34.12"));
        assert!(b
            .ldflags
            .contains(&"-X k8s.io/component-base/version.gitVersion=v1.34.12".to_string()));
        assert!(e2e_build("latest", "", "").is_err());
        let g = ginkgo_build("v2.21.0");
        assert!(!g.test_binary);
        assert_eq!(g.packages, vec![GINKGO_PACKAGE.to_string()]);
    }
}
