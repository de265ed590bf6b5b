//! The container images the e2e suite runs its pods from, made offline so no test pulls from
//! a registry. The e2e binary names them (`e2e.test --list-images`, from
//! k8s.io/kubernetes/test/utils/image); kindred builds those it can, under exactly those
//! names, and `kindred test conformance` loads them into every node before the run.
//!
//! | image | made of |
//! | --- | --- |
//! | agnhost | `test/images/agnhost` from k8s.io/kubernetes at the cluster's version, on Debian's curl, dig, nc, iproute2, iptables and bash, with busybox as `sh` and everything else (upstream's is Alpine: busybox plus the same tools), and CoreDNS as `/coredns` (the DNS specs run their own server from it) |
//! | jessie-dnsutils | the same Debian tools layer (dig, getent, bash, busybox) |
//! | nautilus, kitten | agnhost plus their `html/` files from the Kubernetes module, running `test-webserver` |
//! | busybox | busybox 1.37.0 from upstream's source ([`crate::busybox`]) with a link per applet in `/bin`, like the Docker Hub image |
//! | httpd, nginx | busybox's `httpd` serving upstream's document roots (`/usr/local/apache2/htdocs`, `/usr/share/nginx/html`) on port 80: the suite only uses them as web servers (stand-ins, not Apache or nginx) |
//! | nonroot | busybox running as user 1234 |
//! | nonewprivs | `test/images/nonewprivs` (setuid `nnp`) on busybox |
//! | sample-apiserver | k8s.io/sample-apiserver at the cluster's v0.Y.Z |
//! | etcd | etcd at the listed version, as in the node image |
//! | regression-issue-74839 | `test/images/regression-issue-74839` (the conntrack INVALID-packet server) on busybox |
//! | distroless-iptables | the Debian tools layer plus conntrack: the kube-proxy spec reads the node's conntrack table with it |
//!
//! pause is not built here: every node image preloads it under kubeadm's name. Anything else
//! the binary lists (CSI sidecars, authenticated or invalid registries, node-perf, ...) is
//! reported as not built; [`crate::skips`] skips the conformance specs that need one.

use std::path::{Path, PathBuf};

use kindred::ui::Step;
use kindred_node_image::base::{ensure_base, Base, BaseOptions};
use kindred_node_image::bom::sha256_file;
use kindred_node_image::components;
use kindred_node_image::dpkg;
use kindred_node_image::gobuild::{GoBuild, GoEnv, GoOutput};
use kindred_node_image::kube::{normalize_version, parse_version};
use kindred_node_image::layer::{LayerBlob, LayerBuilder};
use kindred_node_image::oci::{write_docker_archive, ImageConfig, ImageSpec};
use kindred_node_image::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// Bumped whenever the way test images are assembled changes.
const RECIPE_VERSION: &str = "test-images-v4";
const CREATED: &str = "1970-01-01T00:00:00Z";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// CoreDNS in agnhost. Upstream pins an old release; any serves the specs' `hosts` Corefiles,
/// and this one is the node image's for v1.34, so its build is usually cached already.
const AGNHOST_COREDNS: &str = "v1.12.1";

/// Debian packages the test images take tools from, on top of the node base's.
pub const TEST_PACKAGES: &[&str] = &["curl", "bind9-dnsutils", "netcat-openbsd", "bash"];
/// Roots of the shared tools layer (agnhost, jessie-dnsutils): what upstream's agnhost
/// installs on Alpine (bind-tools, curl, netcat-openbsd, iproute2, bash), iptables, and glibc's
/// getent (in Alpine's base). busybox is `sh` and every other command, as on Alpine.
const TOOLS_PACKAGES: &[&str] = &[
    "curl",
    "bind9-dnsutils",
    "netcat-openbsd",
    "iproute2",
    "iptables",
    "bash",
    "libc-bin",
];

/// What kindred can build, by repository (the part of the name before the tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Agnhost,
    JessieDnsutils,
    Nautilus,
    Kitten,
    BusyBox,
    Httpd,
    Nginx,
    NonRoot,
    Nonewprivs,
    SampleApiserver,
    Etcd,
    RegressionIssue74839,
    DistrolessIptables,
}

/// The kind of a listed image, or None when kindred does not build it.
pub fn kind_of(image: &str) -> Option<Kind> {
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    let e2e = repo.strip_prefix("registry.k8s.io/e2e-test-images/");
    Some(match (e2e, repo) {
        (Some("agnhost"), _) => Kind::Agnhost,
        (Some("jessie-dnsutils"), _) => Kind::JessieDnsutils,
        (Some("nautilus"), _) => Kind::Nautilus,
        (Some("kitten"), _) => Kind::Kitten,
        (Some("busybox"), _) => Kind::BusyBox,
        (Some("httpd"), _) => Kind::Httpd,
        (Some("nginx"), _) => Kind::Nginx,
        (Some("nonroot"), _) => Kind::NonRoot,
        (Some("nonewprivs"), _) => Kind::Nonewprivs,
        (Some("sample-apiserver"), _) => Kind::SampleApiserver,
        (Some("regression-issue-74839"), _) => Kind::RegressionIssue74839,
        (_, "registry.k8s.io/etcd") => Kind::Etcd,
        (_, "registry.k8s.io/build-image/distroless-iptables") => Kind::DistrolessIptables,
        _ => return None,
    })
}

/// Images the node image already carries (kubeadm's list): not rebuilt, not reloaded.
pub fn preloaded_in_nodes(image: &str) -> bool {
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    repo == "registry.k8s.io/pause"
}

/// What the e2e binary says it may run (`--list-images`), one name per line.
pub async fn listed_images(e2e_test: &Path) -> Result<Vec<String>, Error> {
    let out = Command::new(e2e_test)
        .arg("--list-images")
        .output()
        .await
        .map_err(|e| Error::io(e2e_test, e))?;
    if !out.status.success() {
        return Err(Error::Msg(format!(
            "{} --list-images failed: {}",
            e2e_test.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(parse_image_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Image names from `--list-images` output (other lines, e.g. log lines, are ignored).
pub fn parse_image_list(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(' ') && l.contains('/') && l.contains(':'))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The built images: one `docker save` archive holding all of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestImages {
    pub archive: PathBuf,
    pub built: Vec<String>,
    /// Listed by the e2e binary, not built by kindred (and not in the node image).
    pub not_built: Vec<String>,
}

/// Go programs the images need, built at the cluster's Kubernetes version.
struct GoParts {
    busybox: PathBuf,
    test_images: GoOutput,
    coredns: GoOutput,
    sample_apiserver: Option<GoOutput>,
    etcd: Option<GoOutput>,
    kube_dir: PathBuf,
}

/// Builds every listed image kindred knows how to make (cached by inputs) into one archive.
pub async fn build(
    go: &GoEnv,
    kube_version: &str,
    listed: &[String],
    base_opts: &BaseOptions,
    no_cache: bool,
    step: &Step,
) -> Result<TestImages, Error> {
    let version = normalize_version(kube_version);
    let (minor, patch) = parse_version(&version)?;
    let staging = format!("v0.{minor}.{patch}");
    let wanted: Vec<(String, Kind)> = listed
        .iter()
        .filter_map(|n| kind_of(n).map(|k| (n.clone(), k)))
        .collect();
    let not_built: Vec<String> = listed
        .iter()
        .filter(|n| kind_of(n).is_none() && !preloaded_in_nodes(n))
        .cloned()
        .collect();

    let base_opts = BaseOptions {
        extra_packages: TEST_PACKAGES.iter().map(|s| s.to_string()).collect(),
        ..base_opts.clone()
    };
    step.progress("Debian tools");
    let base = ensure_base(&base_opts, &go.cache_root, no_cache, step).await?;

    let busybox = crate::busybox::build(&go.cache_root, &base_opts.mirror, no_cache, step).await?;

    step.progress("agnhost, nonewprivs and regression-issue-74839");
    let test_images = GoBuild {
        sibling_version: Some(staging.clone()),
        ..GoBuild::new(
            "kubernetes-test-images",
            "k8s.io/kubernetes",
            &version,
            vec![
                "k8s.io/kubernetes/test/images/agnhost".into(),
                "k8s.io/kubernetes/test/images/nonewprivs".into(),
                "k8s.io/kubernetes/test/images/regression-issue-74839".into(),
            ],
        )
    }
    .build(go, no_cache, step)
    .await?;
    step.progress(format!("CoreDNS {AGNHOST_COREDNS} for agnhost"));
    let coredns = components::coredns(AGNHOST_COREDNS)
        .build(go, no_cache, step)
        .await?;
    let sample_apiserver = if wanted.iter().any(|(_, k)| *k == Kind::SampleApiserver) {
        step.progress("sample-apiserver");
        Some(
            GoBuild::new(
                "sample-apiserver",
                "k8s.io/sample-apiserver",
                &staging,
                vec!["k8s.io/sample-apiserver".into()],
            )
            .build(go, no_cache, step)
            .await?,
        )
    } else {
        None
    };
    let etcd_tag = wanted
        .iter()
        .find(|(_, k)| *k == Kind::Etcd)
        .map(|(n, _)| n.rsplit_once(':').map_or("", |(_, t)| t).to_string());
    let etcd = match etcd_tag {
        Some(tag) => {
            step.progress(format!("etcd {tag}"));
            Some(components::etcd(&tag).build(go, no_cache, step).await?)
        }
        None => None,
    };
    // The kitten/nautilus pages and porter's certificates ship in the Kubernetes module.
    let info = kindred_node_image::gobuild::resolve_module(go, "k8s.io/kubernetes", &version, step)
        .await?;
    let kube_dir = info.dir.clone().ok_or_else(|| {
        Error::Msg(format!(
            "the module cache has no k8s.io/kubernetes@{version}"
        ))
    })?;
    let parts = GoParts {
        busybox,
        test_images,
        coredns,
        sample_apiserver,
        etcd,
        kube_dir,
    };

    step.progress("assembling");
    let key = archive_key(&wanted, &parts, &base)?;
    let dir = go.cache_root.join("conformance-images").join(&key);
    let record = dir.join("images.json");
    if !no_cache {
        if let Some(done) = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<TestImages>(&t).ok())
            .filter(|t| t.archive.exists())
        {
            step.detail(format!("test images cached in {}", dir.display()));
            return Ok(TestImages { not_built, ..done });
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let blobs = tempfile::Builder::new()
        .prefix(".blobs-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let layers = Layers::new(&base, &parts, blobs.path())?;
    let specs: Vec<ImageSpec> = wanted
        .iter()
        .map(|(name, kind)| layers.spec(name, *kind))
        .collect::<Result<_, Error>>()?;
    let archive = dir.join("test-images.tar");
    write_docker_archive(&specs, &archive)?;
    let done = TestImages {
        archive,
        built: wanted.iter().map(|(n, _)| n.clone()).collect(),
        not_built,
    };
    std::fs::write(
        &record,
        serde_json::to_string_pretty(&done).expect("serializable"),
    )
    .map_err(|e| Error::io(&record, e))?;
    Ok(done)
}

/// Hash of everything the archive is made of.
fn archive_key(wanted: &[(String, Kind)], parts: &GoParts, base: &Base) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(base.layer.digest.as_bytes());
    for (name, _) in wanted {
        h.update(name.as_bytes());
        h.update(b"\0");
    }
    let mut files = vec![
        parts.busybox.clone(),
        parts.test_images.binary("agnhost"),
        parts.test_images.binary("nonewprivs"),
        parts.test_images.binary("regression-issue-74839"),
        parts.coredns.binary("coredns"),
    ];
    files.extend(
        parts
            .sample_apiserver
            .iter()
            .map(|o| o.binary("sample-apiserver")),
    );
    files.extend(parts.etcd.iter().map(|o| o.binary("etcd")));
    files.extend(KUBE_FILES.iter().map(|f| parts.kube_dir.join(f)));
    for f in files {
        h.update(sha256_file(&f).map_err(|e| Error::io(&f, e))?.as_bytes());
    }
    Ok(hex::encode(h.finalize())[..16].to_string())
}

/// Files of the Kubernetes module the images carry.
const KUBE_FILES: &[&str] = &[
    "test/images/agnhost/porter/localhost.crt",
    "test/images/agnhost/porter/localhost.key",
    "test/images/kitten/html/kitten.jpg",
    "test/images/kitten/html/data.json",
    "test/images/nautilus/html/nautilus.jpg",
    "test/images/nautilus/html/data.json",
];

/// Users and groups of the images: root, nobody, and the ones upstream's agnhost adds for
/// the supplemental-groups specs.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\n\
user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n\
nogroup:x:65534:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// The layers images are stacked from, each written once.
struct Layers<'a> {
    parts: &'a GoParts,
    busybox: LayerBlob,
    tools: LayerBlob,
    agnhost: LayerBlob,
    /// The Debian tree the tools come from (for conntrack).
    rootfs: PathBuf,
    blobs: &'a Path,
}

impl<'a> Layers<'a> {
    fn new(base: &Base, parts: &'a GoParts, blobs: &'a Path) -> Result<Layers<'a>, Error> {
        let busybox_bin = parts.busybox.clone();
        let applets = busybox_applets(&busybox_bin)?;

        // busybox as on Docker Hub: one binary, every applet linked in /bin.
        let mut bb = LayerBuilder::new();
        bb.add_file_from_disk("bin/busybox", 0o755, &busybox_bin)?;
        for a in &applets {
            if a != "busybox" {
                bb.add_symlink(format!("bin/{a}"), "busybox")?;
            }
        }
        add_etc(&mut bb)?;
        for (d, mode) in [
            ("tmp", 0o1777),
            ("root", 0o700),
            ("home", 0o755),
            ("var", 0o755),
        ] {
            bb.add_dir(d, mode)?;
        }
        let busybox = bb.write_gzip_blob(blobs)?;

        // Debian's tools with their libraries (merged /usr), busybox for every other command.
        let mut tools = LayerBuilder::new();
        dpkg::slim_layer(&base.rootfs, TOOLS_PACKAGES, &mut tools)?;
        tools.add_file_from_disk("usr/bin/busybox", 0o755, &busybox_bin)?;
        for a in &applets {
            let taken = ["usr/bin", "usr/sbin", "usr/local/bin"]
                .iter()
                .any(|d| tools.contains(format!("{d}/{a}")));
            if a != "busybox" && !taken {
                tools.add_symlink(format!("usr/bin/{a}"), "busybox")?;
            }
        }
        add_etc(&mut tools)?;
        for (d, mode) in [("tmp", 0o1777), ("root", 0o700), ("results", 0o777)] {
            tools.add_dir(d, mode)?;
        }
        let tools = tools.write_gzip_blob(blobs)?;

        // agnhost as upstream lays it out: /agnhost, /agnhost-2, porter's certificates, /uploads.
        let mut ag = LayerBuilder::new();
        ag.add_file_from_disk("agnhost", 0o755, parts.test_images.binary("agnhost"))?;
        ag.add_symlink("agnhost-2", "agnhost")?;
        ag.add_file_from_disk("coredns", 0o755, parts.coredns.binary("coredns"))?;
        for f in ["localhost.crt", "localhost.key"] {
            ag.add_file_from_disk(
                f,
                0o644,
                parts.kube_dir.join("test/images/agnhost/porter").join(f),
            )?;
        }
        ag.add_dir("uploads", 0o755)?;
        let agnhost = ag.write_gzip_blob(blobs)?;
        Ok(Layers {
            parts,
            busybox,
            tools,
            agnhost,
            rootfs: base.rootfs.clone(),
            blobs,
        })
    }

    fn spec(&self, name: &str, kind: Kind) -> Result<ImageSpec, Error> {
        let base_config = ImageConfig {
            env: vec![PATH_ENV.into()],
            ..Default::default()
        };
        let agnhost_config = ImageConfig {
            entrypoint: vec!["/agnhost".into()],
            cmd: vec!["pause".into()],
            ..base_config.clone()
        };
        let (layers, config) = match kind {
            Kind::Agnhost => (
                vec![self.tools.clone(), self.agnhost.clone()],
                agnhost_config,
            ),
            Kind::JessieDnsutils => (
                vec![self.tools.clone()],
                ImageConfig {
                    cmd: vec!["/bin/sh".into()],
                    ..base_config
                },
            ),
            Kind::Nautilus | Kind::Kitten => {
                let which = if kind == Kind::Nautilus {
                    "nautilus"
                } else {
                    "kitten"
                };
                let mut l = LayerBuilder::new();
                let html = self.parts.kube_dir.join("test/images").join(which).join("html");
                l.add_file_from_disk(format!("{which}.jpg"), 0o644, html.join(format!("{which}.jpg")))?;
                l.add_file_from_disk("data.json", 0o644, html.join("data.json"))?;
                (
                    vec![
                        self.tools.clone(),
                        self.agnhost.clone(),
                        l.write_gzip_blob(self.blobs)?,
                    ],
                    ImageConfig {
                        cmd: vec!["test-webserver".into()],
                        ..agnhost_config
                    },
                )
            }
            Kind::BusyBox => (
                vec![self.busybox.clone()],
                ImageConfig {
                    cmd: vec!["sh".into()],
                    ..base_config
                },
            ),
            Kind::Httpd => (
                vec![
                    self.busybox.clone(),
                    web_layer(
                        "usr/local/apache2/htdocs",
                        "<html><body><h1>It works!</h1></body></html>\n",
                        "usr/local/bin/httpd-foreground",
                        self.blobs,
                    )?,
                ],
                ImageConfig {
                    cmd: vec!["httpd-foreground".into()],
                    working_dir: Some("/usr/local/apache2".into()),
                    ..base_config
                },
            ),
            Kind::Nginx => (
                vec![
                    self.busybox.clone(),
                    web_layer(
                        "usr/share/nginx/html",
                        "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n",
                        "usr/sbin/nginx",
                        self.blobs,
                    )?,
                ],
                ImageConfig {
                    cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                    ..base_config
                },
            ),
            Kind::NonRoot => (
                vec![self.busybox.clone()],
                ImageConfig {
                    cmd: vec!["sh".into()],
                    user: Some("1234".into()),
                    ..base_config
                },
            ),
            Kind::Nonewprivs => {
                let mut l = LayerBuilder::new();
                // setuid root: the spec checks no_new_privs keeps it from taking effect.
                l.add_file_from_disk(
                    "usr/local/bin/nnp",
                    0o4755,
                    self.parts.test_images.binary("nonewprivs"),
                )?;
                (
                    vec![self.busybox.clone(), l.write_gzip_blob(self.blobs)?],
                    ImageConfig {
                        cmd: vec!["nnp".into()],
                        ..base_config
                    },
                )
            }
            Kind::SampleApiserver => {
                let bin = self.parts.sample_apiserver.as_ref().ok_or_else(|| {
                    Error::Msg("sample-apiserver was not built".into())
                })?;
                let mut l = LayerBuilder::new();
                l.add_file_from_disk("sample-apiserver", 0o755, bin.binary("sample-apiserver"))?;
                (
                    vec![self.busybox.clone(), l.write_gzip_blob(self.blobs)?],
                    ImageConfig {
                        entrypoint: vec!["/sample-apiserver".into()],
                        ..base_config
                    },
                )
            }
            Kind::RegressionIssue74839 => {
                let mut l = LayerBuilder::new();
                l.add_file_from_disk(
                    "regression-issue-74839",
                    0o755,
                    self.parts.test_images.binary("regression-issue-74839"),
                )?;
                (
                    vec![self.busybox.clone(), l.write_gzip_blob(self.blobs)?],
                    ImageConfig {
                        entrypoint: vec!["/regression-issue-74839".into()],
                        ..base_config
                    },
                )
            }
            Kind::DistrolessIptables => {
                let mut l = LayerBuilder::new();
                dpkg::slim_layer(&self.rootfs, &["conntrack"], &mut l)?;
                (vec![self.tools.clone(), l.write_gzip_blob(self.blobs)?], base_config)
            }
            Kind::Etcd => {
                let out = self
                    .parts
                    .etcd
                    .as_ref()
                    .ok_or_else(|| Error::Msg("etcd was not built".into()))?;
                let mut l = LayerBuilder::new();
                for b in ["etcd", "etcdctl", "etcdutl"] {
                    if out.binary(b).exists() {
                        l.add_file_from_disk(format!("usr/local/bin/{b}"), 0o755, out.binary(b))?;
                    }
                }
                l.add_dir("var/lib/etcd", 0o700)?;
                (vec![self.busybox.clone(), l.write_gzip_blob(self.blobs)?], base_config)
            }
        };
        Ok(ImageSpec {
            name: name.to_string(),
            config,
            layers,
            created: CREATED.into(),
        })
    }
}

/// /etc of the images: users, groups, name service order.
fn add_etc(layer: &mut LayerBuilder) -> Result<(), Error> {
    layer.add_file("etc/passwd", 0o644, PASSWD)?;
    layer.add_file("etc/group", 0o644, GROUP)?;
    layer.add_file("etc/nsswitch.conf", 0o644, NSSWITCH)?;
    Ok(())
}

/// A document root with an index page, and a start script that serves it on port 80 with
/// busybox's httpd. The shell stays PID 1 so SIGTERM stops the container at once (a server
/// without a handler would ignore it as PID 1 and wait for SIGKILL).
fn web_layer(root: &str, index: &str, script: &str, blobs: &Path) -> Result<LayerBlob, Error> {
    let mut l = LayerBuilder::new();
    l.add_file(format!("{root}/index.html"), 0o644, index)?;
    l.add_file(
        script,
        0o755,
        format!(
            "#!/bin/sh\n# kindred's stand-in: busybox httpd serving /{root} on port 80.\n\
             trap 'kill $pid 2>/dev/null; exit 0' TERM INT\n\
             httpd -f -v -p 80 -h /{root} &\npid=$!\nwait $pid\n"
        ),
    )?;
    Ok(l.write_gzip_blob(blobs)?)
}

/// Applet names of a busybox binary (`busybox --list`).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>, Error> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| Error::io(busybox, e))?;
    if !out.status.success() {
        return Err(Error::Msg(format!("{} --list failed", busybox.display())));
    }
    let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .map(String::from)
        .collect();
    if !applets.iter().any(|a| a == "sh") {
        return Err(Error::Msg(format!(
            "{} has no sh applet",
            busybox.display()
        )));
    }
    Ok(applets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_upstream_names() {
        assert_eq!(
            kind_of("registry.k8s.io/e2e-test-images/agnhost:2.56"),
            Some(Kind::Agnhost)
        );
        assert_eq!(
            kind_of("registry.k8s.io/e2e-test-images/busybox:1.37.0-1"),
            Some(Kind::BusyBox)
        );
        assert_eq!(
            kind_of("registry.k8s.io/e2e-test-images/httpd:2.4.39-4"),
            Some(Kind::Httpd)
        );
        assert_eq!(kind_of("registry.k8s.io/etcd:3.6.4-0"), Some(Kind::Etcd));
        assert_eq!(
            kind_of("registry.k8s.io/build-image/distroless-iptables:v0.9.6"),
            Some(Kind::DistrolessIptables)
        );
        assert_eq!(
            kind_of("registry.k8s.io/e2e-test-images/regression-issue-74839:1.2"),
            Some(Kind::RegressionIssue74839)
        );
        // The authenticated-registry agnhost must stay unpullable.
        assert_eq!(kind_of("gcr.io/k8s-authenticated-test/agnhost:2.6"), None);
        assert_eq!(kind_of("invalid.registry.k8s.io/invalid/alpine:3.1"), None);
        assert_eq!(
            kind_of("registry.k8s.io/e2e-test-images/volume/nfs:1.4"),
            None
        );
        assert!(preloaded_in_nodes("registry.k8s.io/pause:3.10.1"));
        assert!(!preloaded_in_nodes(
            "registry.k8s.io/e2e-test-images/agnhost:2.56"
        ));
    }

    #[test]
    fn image_list_ignores_noise() {
        let text = "I0101 10:00:00.000 1 test_context.go:500] Tolerating taints\nregistry.k8s.io/e2e-test-images/agnhost:2.56\n\nregistry.k8s.io/pause:3.10.1\nregistry.k8s.io/e2e-test-images/agnhost:2.56\n";
        assert_eq!(
            parse_image_list(text),
            vec![
                "registry.k8s.io/e2e-test-images/agnhost:2.56".to_string(),
                "registry.k8s.io/pause:3.10.1".to_string()
            ]
        );
    }
}
