//! Replacing a kubeconfig so that readers (a kubectl running meanwhile) see either the old file
//! or the new one, never half of it.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `contents` to a temporary file next to `path` (mode 0600: it holds a private key) and
/// renames it over `path`. A symlinked kubeconfig (dotfile managers do this) is written
/// through, so the link stays a link.
pub(super) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let target = resolve_symlink(path)?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".kubeconfig-")
        .tempfile_in(dir)?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(0o600))?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

fn resolve_symlink(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_path_buf()),
    }
}
