//! File-system steps the admin operations share: durable writes and renames, whole-tree
//! copies and removals.
//!
//! Durable means fsynced: the file, and its entry in its directory. Every file an operation
//! reports as done is written with [`write_atomically`] or copied with [`copy_tree`].

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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

/// Removes a file and makes the removal durable (its directory fsynced); a missing file is
/// not an error.
pub fn remove_file_durable(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CoreError::io(path, e)),
    }
}

/// Writes a file so that it appears complete or not at all: written to a temporary file in
/// `tmp` (on the same file system as `dest`), fsynced, renamed into place, and the directory
/// fsynced. `mode` is its permission bits (`0o600` for a secret).
pub fn write_atomically(tmp: &Path, dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    create_dir_durable(tmp)?;
    let part = tmp.join(format!(
        ".{}.{}.tmp",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&part)
        .map_err(|e| CoreError::io(&part, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CoreError::io(&part, e))?;
    std::fs::rename(&part, dest).map_err(|e| CoreError::io(dest, e))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents, fsyncing each new directory's entry in its parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Made meanwhile by someone else: fine if it is a directory.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(CoreError::io(dir, e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Copies a tree durably: every copied file and every directory is fsynced. Files for which
/// `link` says so are hard-linked where the file system allows (only files nobody writes in
/// place may be), the rest are copied.
pub fn copy_tree(src: &Path, dst: &Path, link: &dyn Fn(&Path) -> bool) -> Result<()> {
    create_dir_durable(dst)?;
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
            File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(|e| CoreError::io(&to, e))?;
        }
    }
    // Every entry made above (files, links, subdirectories) is durable with its directory.
    sync_dir(dst)
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
