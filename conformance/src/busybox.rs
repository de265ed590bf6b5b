//! busybox for the test images, built from upstream's source tarball — the one Debian's
//! mirror carries as the `.orig` of its busybox package, byte for byte upstream's release
//! (checked by sha256) — with upstream's `defconfig`, linked statically.
//!
//! Not Debian's binaries: Debian patches ash to drop environment variables whose names are not
//! shell identifiers (`data-1`, which Kubernetes allows and the suite's `sh -c env` specs look
//! for), and its static build prefers its own applets to programs on PATH (so `nc` in a shell
//! would never be netcat). Upstream's busybox, as in the images upstream uses, does neither.

use std::path::{Path, PathBuf};

use kindred::ui::Step;
use kindred_node_image::Error;
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// The version upstream's e2e busybox image (busybox:1.37.0) carries.
pub const VERSION: &str = "1.37.0";
/// sha256 of busybox-1.37.0.tar.bz2 as released (Debian's busybox_1.37.0.orig.tar.bz2).
pub const SOURCE_SHA256: &str = "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4";
/// Bumped whenever the build below changes.
const RECIPE_VERSION: &str = "busybox-v1";

/// Changes to `defconfig`: a static binary (no libraries in the images); no `tc` (its CBQ
/// code does not build against newer kernel headers); the plain `sync` (as Docker's image).
const CONFIG_EDITS: &[(&str, &str)] = &[
    ("# CONFIG_STATIC is not set", "CONFIG_STATIC=y"),
    ("CONFIG_TC=y", "# CONFIG_TC is not set"),
    (
        "CONFIG_FEATURE_SYNC_FANCY=y",
        "# CONFIG_FEATURE_SYNC_FANCY is not set",
    ),
];

/// Where Debian's mirror keeps the source tarball.
pub fn source_url(mirror: &str) -> String {
    format!(
        "{}/pool/main/b/busybox/busybox_{VERSION}.orig.tar.bz2",
        mirror.trim_end_matches('/')
    )
}

/// Applies [`CONFIG_EDITS`] to a `.config`; every line to change must be there.
pub fn edit_config(config: &str) -> Result<String, String> {
    let mut lines: Vec<String> = config.lines().map(String::from).collect();
    for (from, to) in CONFIG_EDITS {
        let line = lines
            .iter_mut()
            .find(|l| l.as_str() == *from)
            .ok_or_else(|| format!("busybox's defconfig has no line `{from}`"))?;
        *line = to.to_string();
    }
    Ok(lines.join("\n") + "\n")
}

fn cache_key() -> String {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(SOURCE_SHA256.as_bytes());
    for (from, to) in CONFIG_EDITS {
        h.update(from.as_bytes());
        h.update(to.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The built binary, from the cache when it is there.
pub async fn build(
    cache: &Path,
    mirror: &str,
    no_cache: bool,
    step: &Step,
) -> Result<PathBuf, Error> {
    let dir = cache
        .join("busybox")
        .join(format!("{VERSION}-{}", cache_key()));
    let binary = dir.join("busybox");
    if !no_cache && dir.join("done").exists() && binary.exists() {
        step.detail(format!("busybox {VERSION} cached in {}", dir.display()));
        return Ok(binary);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;

    let url = source_url(mirror);
    step.progress(format!("busybox {VERSION} source"));
    step.detail(format!("downloading {url}"));
    let tarball = dir.join(format!("busybox-{VERSION}.tar.bz2"));
    let (u, t) = (url.clone(), tarball.clone());
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let resp = ureq::get(&u).call().map_err(|e| e.to_string())?;
        let mut reader = resp.into_body().into_reader();
        let mut file = std::fs::File::create(&t).map_err(|e| e.to_string())?;
        std::io::copy(&mut reader, &mut file).map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Msg(e.to_string()))?
    .map_err(|e| Error::Msg(format!("downloading {url}: {e}")))?;
    let got = kindred_node_image::bom::sha256_file(&tarball).map_err(|e| Error::io(&tarball, e))?;
    if got != SOURCE_SHA256 {
        return Err(Error::Msg(format!(
            "{url} has sha256 {got}, not busybox {VERSION}'s {SOURCE_SHA256}"
        )));
    }

    step.progress(format!("busybox {VERSION}"));
    let run = |args: &[&str], cwd: &Path| {
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..]).current_dir(cwd);
        cmd
    };
    let fail = |what: &str| {
        let what = what.to_string();
        move |e: kindred::process::ProcessError| Error::Step {
            step: format!("building busybox {VERSION}: {what}"),
            source: Box::new(e),
        }
    };
    kindred::process::run(
        run(&["tar", "xjf", tarball.to_str().unwrap_or_default()], &dir),
        step,
    )
    .await
    .map_err(fail("unpacking (needs tar and bzip2)"))?;
    let src = dir.join(format!("busybox-{VERSION}"));
    kindred::process::run(run(&["make", "defconfig"], &src), step)
        .await
        .map_err(fail("make defconfig (needs make and gcc)"))?;
    let config_path = src.join(".config");
    let config = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let edited = edit_config(&config).map_err(Error::Msg)?;
    std::fs::write(&config_path, edited).map_err(|e| Error::io(&config_path, e))?;
    // Settles the options the edits touch; anything new keeps its default.
    kindred::process::run(run(&["sh", "-c", "yes '' | make oldconfig"], &src), step)
        .await
        .map_err(fail("make oldconfig"))?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string();
    let mut make = run(&["make", "-j", &jobs, "busybox"], &src);
    // The build date goes into the binary; pin it for reproducible images.
    make.env("SOURCE_DATE_EPOCH", "0");
    kindred::process::run(make, step)
        .await
        .map_err(fail("make"))?;
    std::fs::copy(src.join("busybox"), &binary).map_err(|e| Error::io(&binary, e))?;
    std::fs::remove_dir_all(&src).map_err(|e| Error::io(&src, e))?;
    std::fs::write(dir.join("done"), b"").map_err(|e| Error::io(&dir, e))?;
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defconfig_edits() {
        let defconfig =
            "CONFIG_A=y\n# CONFIG_STATIC is not set\nCONFIG_TC=y\nCONFIG_FEATURE_SYNC_FANCY=y\n";
        let edited = edit_config(defconfig).unwrap();
        assert_eq!(
            edited,
            "CONFIG_A=y\nCONFIG_STATIC=y\n# CONFIG_TC is not set\n# CONFIG_FEATURE_SYNC_FANCY is not set\n"
        );
        assert!(edit_config("CONFIG_A=y\n")
            .unwrap_err()
            .contains("CONFIG_STATIC"));
    }

    #[test]
    fn source_comes_from_the_mirror_pool() {
        assert_eq!(
            source_url("http://deb.debian.org/debian/"),
            "http://deb.debian.org/debian/pool/main/b/busybox/busybox_1.37.0.orig.tar.bz2"
        );
    }
}
