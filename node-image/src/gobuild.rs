//! Building Go programs from the Go module proxy, without cloning any repository.
//!
//! Each component gets a generated "wrapper" module that requires the component's module at
//! the wanted version. Replace directives in the component's own go.mod that point at local
//! directories (Kubernetes' staging tree, etcd's sibling modules) are rewritten to the
//! published module at the matching version; other replaces are copied as they are, because
//! Go ignores the replaces of dependencies and the component was tested with them.
//!
//! Outputs are cached under `<cache>/go-builds/<name>-<version>-<key>`, where the key hashes
//! every input (module, version, packages, flags, tags, cgo, Go version). Go's own module and
//! build caches live under `<cache>/go/` so cold builds after a cache wipe are still correct.

use std::path::{Path, PathBuf};

use kindred::ui::Step;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::Error;

/// Where Go keeps its caches and which toolchain is used.
#[derive(Debug, Clone)]
pub struct GoEnv {
    pub cache_root: PathBuf,
    /// `go1.26.8`, part of every cache key: a different compiler means different binaries.
    pub go_version: String,
}

impl GoEnv {
    /// Finds the Go toolchain; a clear error if it is missing.
    pub async fn detect(cache_root: &Path) -> Result<GoEnv, Error> {
        let out = Command::new("go").args(["env", "GOVERSION"]).output().await.map_err(|_| {
            Error::Msg("Go is needed to build node components from Go modules, and `go` is not on PATH. \
                 Install Go 1.24 or newer (hack/setup-host.sh checks this)."
                .into())
        })?;
        let go_version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || go_version.is_empty() {
            return Err(Error::Msg(format!(
                "`go env GOVERSION` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(GoEnv {
            cache_root: cache_root.to_path_buf(),
            go_version,
        })
    }

    /// A `go` command with kindred's cache locations and hermetic settings.
    pub fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new("go");
        cmd.current_dir(dir)
            .env("GOCACHE", self.cache_root.join("go/build"))
            .env("GOMODCACHE", self.cache_root.join("go/mod"))
            // Never download a different toolchain: the cache key names the local one.
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod -buildvcs=false");
        // The checksum database is not reachable from every build host (only the module proxy
        // is); honour the user's GOSUMDB, else rely on the proxy and record sha256s in the BOM.
        if std::env::var_os("GOSUMDB").is_none() {
            cmd.env("GOSUMDB", "off");
        }
        cmd
    }
}

/// What the module proxy says about one module version.
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleInfo {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "GoMod", default)]
    pub go_mod: Option<PathBuf>,
    /// The extracted module in the module cache.
    #[serde(rename = "Dir", default)]
    pub dir: Option<PathBuf>,
    #[serde(rename = "Time", default)]
    pub time: Option<String>,
    #[serde(rename = "Origin", default)]
    pub origin: Option<ModuleOrigin>,
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModuleOrigin {
    #[serde(rename = "Hash", default)]
    pub hash: Option<String>,
}

/// Downloads `module@version` into the module cache and returns its metadata. A version the
/// proxy does not have is reported as such, with how to list the ones it has.
pub async fn resolve_module(
    go: &GoEnv,
    module: &str,
    version: &str,
    step: &Step,
) -> Result<ModuleInfo, Error> {
    let info = query_module(go, &["mod", "download"], module, version, step).await?;
    match info.go_mod {
        Some(_) => Ok(info),
        None => Err(Error::ModuleVersion {
            module: module.to_string(),
            version: version.to_string(),
            reason: "the module proxy gave no go.mod".into(),
        }),
    }
}

/// When the module proxy says `module@version` was published, as UTC `YYYY-MM-DDThh:mm:ssZ`
/// (`go list -m`, which fetches only the version's metadata). `None` if the proxy gives no time.
pub async fn module_time(
    go: &GoEnv,
    module: &str,
    version: &str,
    step: &Step,
) -> Result<Option<String>, Error> {
    let info = query_module(go, &["list", "-m"], module, version, step).await?;
    Ok(info.time.as_deref().and_then(utc_seconds))
}

/// `go <command> -json module@version`, run in kindred's scratch module directory, parsed. An
/// answer with an error (or none) names the module, the version and Go's reason.
async fn query_module(
    go: &GoEnv,
    command: &[&str],
    module: &str,
    version: &str,
    step: &Step,
) -> Result<ModuleInfo, Error> {
    let scratch = go.cache_root.join("go");
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
    let target = format!("{module}@{version}");
    let mut cmd = go.command(&scratch);
    cmd.args(command).args(["-json", &target]);
    step.detail(format!("$ go {} -json {target}", command.join(" ")));
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::Msg(format!("running go: {e}")))?;
    match serde_json::from_slice::<ModuleInfo>(&out.stdout) {
        Ok(info) if info.error.is_none() => Ok(info),
        answer => Err(Error::ModuleVersion {
            module: module.to_string(),
            version: version.to_string(),
            reason: answer
                .ok()
                .and_then(|i| i.error)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }),
    }
}

/// A Go time in UTC (`2026-09-23T17:08:30Z`, perhaps with fractional seconds) cut to whole
/// seconds; other forms are not used.
fn utc_seconds(time: &str) -> Option<String> {
    let (secs, zone) = time.split_at(time.find(['.', 'Z'])?);
    (secs.len() == 19 && zone.ends_with('Z')).then(|| format!("{secs}Z"))
}

/// One Go component to build.
#[derive(Debug, Clone, Serialize)]
pub struct GoBuild {
    /// Short name for the cache and the BOM, e.g. "etcd".
    pub name: String,
    pub module: String,
    pub version: String,
    /// Other modules released together with `module` whose packages are built too (etcd's
    /// etcdctl and etcdutl); required at the same version so Go does not pick newer ones.
    /// They are optional: one the proxy does not serve at that version is left out (and so
    /// are its packages), which the step reports.
    pub companion_modules: Vec<String>,
    /// Main packages (full import paths); each becomes `out/<last path element>`, Go's name
    /// for it (without a `/vN` suffix).
    pub packages: Vec<String>,
    /// Binaries to rename after the build, (Go's name, wanted name): etcd's server package
    /// builds as `server`.
    pub renames: Vec<(String, String)>,
    /// `-X` assignments and the like; `-s -w` is always added.
    pub ldflags: Vec<String>,
    pub tags: Vec<String>,
    pub cgo: bool,
    /// Extra linker flags for cgo builds (e.g. `-static`).
    pub extldflags: Option<String>,
    /// Version of the published modules that the component's go.mod replaces with local
    /// directories (Kubernetes' staging tree, etcd's siblings). `None`: the local replace is an
    /// in-tree fork with no published equivalent (runc's selinux); drop it and use the version
    /// the component requires.
    pub sibling_version: Option<String>,
    /// Compile the one package in `packages` as a test binary (`go test -c`), written to
    /// `out/<last path element>.test` (Kubernetes' e2e.test). Left out of the cache key when
    /// false, so the keys of ordinary builds stay what they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test_binary: bool,
}

/// A finished build: its directory of binaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoOutput {
    pub dir: PathBuf,
    pub go_version: String,
}

impl GoOutput {
    pub fn binary(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl GoBuild {
    /// A pure-Go build (CGO off) of `packages` from `module@version`, with no extra flags.
    pub fn new(name: &str, module: &str, version: &str, packages: Vec<String>) -> GoBuild {
        GoBuild {
            name: name.into(),
            module: module.into(),
            version: version.into(),
            companion_modules: vec![],
            packages,
            renames: vec![],
            ldflags: vec![],
            tags: vec![],
            cgo: false,
            extldflags: None,
            sibling_version: None,
            test_binary: false,
        }
    }

    fn cache_key(&self, go: &GoEnv) -> String {
        let mut h = Sha256::new();
        h.update(b"gobuild-v1\0");
        h.update(serde_json::to_vec(self).expect("serializable"));
        h.update(go.go_version.as_bytes());
        hex::encode(h.finalize())[..16].to_string()
    }

    fn build_dir(&self, go: &GoEnv) -> PathBuf {
        go.cache_root.join("go-builds").join(format!(
            "{}-{}-{}",
            self.name,
            self.version,
            self.cache_key(go)
        ))
    }

    /// Returns the cached output when the same inputs were built before.
    pub fn cached(&self, go: &GoEnv) -> Option<GoOutput> {
        let dir = self.build_dir(go);
        dir.join("done").exists().then(|| GoOutput {
            dir: dir.join("out"),
            go_version: go.go_version.clone(),
        })
    }

    pub async fn build(&self, go: &GoEnv, no_cache: bool, step: &Step) -> Result<GoOutput, Error> {
        if !no_cache {
            if let Some(out) = self.cached(go) {
                step.detail(format!(
                    "{} {}: cached in {}",
                    self.name,
                    self.version,
                    out.dir.display()
                ));
                return Ok(out);
            }
        }
        step.progress(format!("{} {}", self.name, self.version));
        let info = resolve_module(go, &self.module, &self.version, step).await?;
        let mut companions = Vec::new();
        let mut packages = self.packages.clone();
        for c in &self.companion_modules {
            match resolve_module(go, c, &self.version, step).await {
                Ok(_) => companions.push(c.clone()),
                Err(Error::ModuleVersion { reason, .. }) => {
                    step.detail(format!("leaving out {c}@{}: {reason}", self.version));
                    packages.retain(|p| !p.starts_with(c.as_str()));
                }
                Err(e) => return Err(e),
            }
        }
        let gomod_path = info.go_mod.as_ref().expect("resolve_module checks GoMod");
        let upstream = std::fs::read_to_string(gomod_path).map_err(|e| Error::io(gomod_path, e))?;

        let dir = self.build_dir(go);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let wrapper = wrapper_go_mod(
            &self.name,
            &self.module,
            &self.version,
            &upstream,
            &companions,
            self.sibling_version.as_deref(),
        );
        std::fs::write(dir.join("go.mod"), wrapper).map_err(|e| Error::io(&dir, e))?;

        let mut ldflags = vec!["-s".to_string(), "-w".to_string()];
        ldflags.extend(self.ldflags.iter().cloned());
        if let Some(ext) = &self.extldflags {
            ldflags.push(format!("-extldflags={ext}"));
        }
        let mut cmd = go.command(&dir);
        cmd.env("CGO_ENABLED", if self.cgo { "1" } else { "0" });
        if self.test_binary {
            // vet is a check for the package's authors, not part of building it.
            cmd.args(["test", "-c", "-vet=off"]);
        } else {
            cmd.arg("build");
        }
        cmd.args(["-trimpath", "-ldflags", &ldflags.join(" ")]);
        if !self.tags.is_empty() {
            cmd.args(["-tags", &self.tags.join(",")]);
        }
        if self.test_binary {
            let [package] = packages.as_slice() else {
                return Err(Error::Msg(format!(
                    "a test binary is built from exactly one package, {} has {}",
                    self.name,
                    packages.len()
                )));
            };
            cmd.args(["-o", &format!("out/{}", test_binary_name(package))])
                .arg(package);
        } else {
            cmd.args(["-o", "out/"]).args(&packages);
        }
        kindred::process::run(cmd, step)
            .await
            .map_err(|e| Error::Step {
                step: format!("building {} {} from Go modules", self.name, self.version),
                source: Box::new(e),
            })?;
        for (from, to) in &self.renames {
            let (from, to) = (dir.join("out").join(from), dir.join("out").join(to));
            std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
        std::fs::write(dir.join("done"), b"").map_err(|e| Error::io(&dir, e))?;
        Ok(GoOutput {
            dir: dir.join("out"),
            go_version: go.go_version.clone(),
        })
    }
}

/// What `go test -c` names the test binary of `package`: its last path element plus `.test`
/// (`k8s.io/kubernetes/test/e2e` -> `e2e.test`).
pub fn test_binary_name(package: &str) -> String {
    format!("{}.test", package.rsplit('/').next().unwrap_or(package))
}

/// The generated go.mod for building `module@version`.
pub fn wrapper_go_mod(
    name: &str,
    module: &str,
    version: &str,
    upstream_go_mod: &str,
    companions: &[String],
    sibling_version: Option<&str>,
) -> String {
    let go_directive = upstream_go_mod
        .lines()
        .find_map(|l| l.strip_prefix("go ").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "1.22".to_string());
    let mut out = format!(
        "// Generated by kindred: builds {module}@{version} from the module proxy.\n\
         module kindred.local/build/{name}\n\ngo {go_directive}\n\nrequire {module} {version}\n"
    );
    for c in companions {
        out.push_str(&format!("require {c} {version}\n"));
    }
    let mut lines = Vec::new();
    for (from, to) in replace_directives(upstream_go_mod) {
        let from_path = from.split_whitespace().next().unwrap_or(&from).to_string();
        if !(to.starts_with("./") || to.starts_with("../")) {
            lines.push(format!("\t{from} => {to}\n"));
            continue;
        }
        // A local directory upstream: use the same module as published, when it is one of
        // the sibling modules released together (its major version matches); anything else
        // (in-tree forks, "forbidden dependency" markers) is dropped.
        if let Some(v) = sibling_version.filter(|v| major_matches(&from_path, v)) {
            lines.push(format!("\t{from_path} => {from_path} {v}\n"));
        }
    }
    if !lines.is_empty() {
        out.push_str("\nreplace (\n");
        out.extend(lines);
        out.push_str(")\n");
    }
    out
}

/// Go's rule: a module at v2+ has a `/vN` path suffix, v0 and v1 have none.
fn major_matches(module_path: &str, version: &str) -> bool {
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let suffix = module_path
        .rsplit('/')
        .next()
        .and_then(|s| s.strip_prefix('v'))
        .and_then(|n| n.parse::<u32>().ok());
    match suffix {
        Some(n) if n >= 2 => n == major,
        _ => major <= 1,
    }
}

/// `replace` directives of a go.mod, in both the single-line and the block form.
fn replace_directives(go_mod: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for raw in go_mod.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        let body = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "replace (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("replace ") {
            rest
        } else {
            continue;
        };
        if let Some((from, to)) = body.split_once("=>") {
            out.push((from.trim().to_string(), to.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_times_are_whole_utc_seconds() {
        assert_eq!(
            utc_seconds("2026-09-23T17:08:30Z").as_deref(),
            Some("2026-09-23T17:08:30Z")
        );
        assert_eq!(
            utc_seconds("2026-09-23T17:08:30.123456Z").as_deref(),
            Some("2026-09-23T17:08:30Z")
        );
        assert_eq!(utc_seconds("2026-09-23T17:08:30+02:00"), None);
        assert_eq!(utc_seconds(""), None);
    }

    const KUBE_LIKE: &str = "module k8s.io/kubernetes\n\ngo 1.25.0\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go // comment\n)\n";

    #[test]
    fn staging_replaces_become_published_versions() {
        let m = wrapper_go_mod(
            "kubernetes",
            "k8s.io/kubernetes",
            "v1.34.12",
            KUBE_LIKE,
            &[],
            Some("v0.34.12"),
        );
        assert!(m.contains("go 1.25.0\n"), "{m}");
        assert!(m.contains("require k8s.io/kubernetes v1.34.12\n"), "{m}");
        assert!(m.contains("\tk8s.io/api => k8s.io/api v0.34.12\n"), "{m}");
        assert!(
            m.contains("\tk8s.io/client-go => k8s.io/client-go v0.34.12\n"),
            "{m}"
        );
    }

    #[test]
    fn module_replaces_are_kept_and_single_line_form_is_read() {
        let gomod = "module x\n\ngo 1.23\n\nreplace github.com/a/b => github.com/c/b v1.2.3\nreplace go.etcd.io/etcd/api/v3 => ../api\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\n";
        let m = wrapper_go_mod(
            "etcd",
            "go.etcd.io/etcd/server/v3",
            "v3.6.5",
            gomod,
            &["go.etcd.io/etcd/etcdctl/v3".to_string()],
            Some("v3.6.5"),
        );
        assert!(
            m.contains("require go.etcd.io/etcd/etcdctl/v3 v3.6.5\n"),
            "{m}"
        );
        assert!(
            m.contains("\tgithub.com/a/b => github.com/c/b v1.2.3\n"),
            "{m}"
        );
        assert!(
            m.contains("\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.5\n"),
            "{m}"
        );
    }

    #[test]
    fn in_tree_forks_are_dropped_without_sibling_version() {
        let gomod = "module r\n\ngo 1.23\n\nreplace github.com/opencontainers/selinux => ./internal/third_party/selinux\n";
        let m = wrapper_go_mod(
            "runc",
            "github.com/opencontainers/runc",
            "v1.3.3",
            gomod,
            &[],
            None,
        );
        assert!(!m.contains("selinux"), "{m}");
    }

    #[test]
    fn no_replaces_no_block() {
        let m = wrapper_go_mod(
            "x",
            "example.com/x",
            "v1.0.0",
            "module example.com/x\n\ngo 1.22\n",
            &[],
            None,
        );
        assert!(!m.contains("replace"));
    }

    #[test]
    fn test_binaries_are_named_like_go_test() {
        assert_eq!(test_binary_name("k8s.io/kubernetes/test/e2e"), "e2e.test");
        assert_eq!(test_binary_name("example.com/x"), "x.test");
    }

    #[test]
    fn ordinary_build_keys_do_not_mention_test_mode() {
        // Adding the test mode must not change the keys of builds already cached.
        let b = GoBuild::new("x", "example.com/x", "v1.0.0", vec!["example.com/x".into()]);
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("test_binary"), "{json}");
        let t = GoBuild {
            test_binary: true,
            ..b.clone()
        };
        let go = GoEnv {
            cache_root: PathBuf::from("/c"),
            go_version: "go1.26.8".into(),
        };
        assert_ne!(b.cache_key(&go), t.cache_key(&go));
    }

    #[test]
    fn cache_key_changes_with_inputs() {
        let go = GoEnv {
            cache_root: PathBuf::from("/c"),
            go_version: "go1.26.8".into(),
        };
        let b = GoBuild::new(
            "x",
            "example.com/x",
            "v1.0.0",
            vec!["example.com/x/cmd/x".into()],
        );
        let mut b2 = b.clone();
        b2.tags.push("netgo".into());
        assert_ne!(b.cache_key(&go), b2.cache_key(&go));
        let go2 = GoEnv {
            go_version: "go1.25.0".into(),
            ..go.clone()
        };
        assert_ne!(b.cache_key(&go), b.cache_key(&go2));
    }
}
