//! The last steps shared by the single images kindred builds besides node images (the local
//! registry's, the CI image): finding them up to date in Docker by their recipe label, and
//! writing one as a `docker save` archive and loading it.

use std::path::Path;

use kindred::provider::Provider;
use kindred::ui::Step;
use tempfile::TempDir;

use crate::oci::{write_docker_archive, ImageSpec};
use crate::Error;

/// Docker's ID of `image` when Docker has it and its `label` holds `recipe`.
pub async fn current_id(
    docker: &dyn Provider,
    image: &str,
    label: &str,
    recipe: &str,
) -> Result<Option<String>, Error> {
    if !docker.image_exists(image).await? {
        return Ok(None);
    }
    let labels = docker.image_labels(image).await?;
    if labels.get(label).map(String::as_str) != Some(recipe) {
        return Ok(None);
    }
    Ok(Some(docker.image_id(image).await?.unwrap_or_default()))
}

/// A scratch directory for an image's layers and archive, under `<cache>/images` (the same
/// filesystem as the cached layers it may hard-link).
pub fn work_dir(cache: &Path, prefix: &str) -> Result<TempDir, Error> {
    let dir = cache.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))
}

/// Writes `spec` as a `docker save` archive in `work` and loads it; returns the image ID.
pub async fn write_and_load(
    docker: &dyn Provider,
    spec: ImageSpec,
    work: &Path,
    step: &Step,
) -> Result<String, Error> {
    let archive = work.join("image.tar");
    let ids = write_docker_archive(&[spec], &archive)?;
    step.progress("loading into Docker");
    docker.load_archive(&archive).await?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

/// The short form of an image ID for progress lines (`sha256:` and 12 hex digits).
pub fn short_id(id: &str) -> &str {
    &id[..19.min(id.len())]
}
