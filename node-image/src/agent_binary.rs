//! The agent image runs the kindred binary that builds the node image (`kindred agent ...`), so
//! a node image always carries the agent code of the kindred that made it. Debug symbols are
//! stripped when `strip` is available: they are most of a debug build's size.

use std::path::{Path, PathBuf};

use kindred::ui::Step;

use crate::bom::sha256_file;
use crate::Error;

/// Returns the binary to pack: a stripped copy cached under `<cache>/agent/<sha256 prefix>/`.
pub async fn prepare(binary: &Path, cache: &Path, step: &Step) -> Result<PathBuf, Error> {
    let sha = sha256_file(binary).map_err(|e| Error::io(binary, e))?;
    let dir = cache.join("agent").join(&sha[..16]);
    let out = dir.join("kindred");
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = dir.join(".kindred.tmp");
    let stripped = tokio::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(binary)
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !stripped {
        step.detail("strip is not available; packing the agent binary unstripped");
        std::fs::copy(binary, &tmp).map_err(|e| Error::io(binary, e))?;
    }
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    Ok(out)
}
