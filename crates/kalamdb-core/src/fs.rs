//! File-system steps the admin operations share: durable renames, whole-tree copies and
//! removals.

use std::path::Path;

use crate::{CoreError, Result};

/// Removes a tree; a missing one is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CoreError::io(path, e)),
    }
}

/// Copies a tree. Files for which `link` says so are hard-linked where the file system allows
/// (only files nobody writes in place may be), the rest are copied.
pub fn copy_tree(src: &Path, dst: &Path, link: &dyn Fn(&Path) -> bool) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| CoreError::io(dst, e))?;
    let entries = std::fs::read_dir(src).map_err(|e| CoreError::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| CoreError::io(&from, e))?;
        if kind.is_dir() {
            copy_tree(&from, &to, link)?;
        } else if link(&from) {
            link_or_copy(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| CoreError::io(&from, e))?;
        }
    }
    Ok(())
}

/// Makes a rename, creation or unlink in `path` durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| CoreError::io(path, e))
}

/// Hard-links `from` to `to` (creating its directory), or copies it on another file system.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| CoreError::io(from, e))?;
    }
    Ok(())
}
