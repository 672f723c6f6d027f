//! The pre-migration checkpoint: `D/migration/checkpoint`, a RocksDB checkpoint (SST files
//! hard-linked, so it costs little space or time) plus a copy of the files RocksDB does not
//! manage (`conf/`, `archive/`). `rollback` swaps it in; `finalize` deletes it.
//!
//! A directory that was in the original engine's layout needs none: its original files stay
//! at its top (see [`super::layout`]), and `rollback` only removes what the migration added.

use std::path::{Path, PathBuf};

use kalamdb_store::Storage;

use kalamdb_core::data_dir::DataDir;
pub use kalamdb_core::fs::{copy_tree, remove_tree, sync_dir};
use kalamdb_core::{CoreError, Result};

/// Files inside the RocksDB directory that are not RocksDB's own.
const FOREIGN: [&str; 2] = ["conf", "archive"];

pub fn root(dir: &DataDir) -> PathBuf {
    dir.root().join("migration")
}
pub fn path(dir: &DataDir) -> PathBuf {
    root(dir).join("checkpoint")
}
fn tmp(dir: &DataDir) -> PathBuf {
    root(dir).join("checkpoint.tmp")
}
fn trash(dir: &DataDir) -> PathBuf {
    root(dir).join("rolled-back")
}

/// Takes the checkpoint. It appears complete (renamed into place) or not at all; a stale one
/// from a run that died before it started is replaced.
pub fn create(storage: &Storage, dir: &DataDir) -> Result<PathBuf> {
    let (tmp, done) = (tmp(dir), path(dir));
    for stale in [&tmp, &done] {
        remove_tree(stale)?;
    }
    kalamdb_core::fs::create_dir_durable(&root(dir))?;
    storage.checkpoint(&tmp)?;
    for name in FOREIGN {
        let src = dir.rocksdb().join(name);
        if src.exists() {
            // Nothing ever writes these files in place, so links are safe.
            copy_tree(&src, &tmp.join(name), &|_| true)?;
        }
    }
    sync_dir(&tmp)?;
    std::fs::rename(&tmp, &done).map_err(|e| CoreError::io(&done, e))?;
    sync_dir(&root(dir))?;
    Ok(done)
}

/// Where a rollback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackState {
    /// No checkpoint and nothing half-done.
    Nothing,
    /// A checkpoint waits; the directory is the migrated one.
    Ready,
    /// A rollback stopped between its renames; running it again finishes it.
    Interrupted,
}

pub fn rollback_state(dir: &DataDir) -> RollbackState {
    let (cp, trash) = (path(dir), trash(dir));
    if trash.exists() || (cp.exists() && !dir.rocksdb().exists() && !has_original(dir)) {
        RollbackState::Interrupted
    } else if cp.exists() || (has_original(dir) && dir.rocksdb().exists()) {
        RollbackState::Ready
    } else {
        RollbackState::Nothing
    }
}

/// Whether the original engine's files sit at the directory's top: the directory was in the
/// original layout, and `rollback` returns it there.
pub fn has_original(dir: &DataDir) -> bool {
    kalamdb_store::is_database(dir.root())
}

/// What `rollback` would return to, as `status` shows it.
pub fn rollback_target(dir: &DataDir) -> Option<String> {
    let cp = path(dir);
    if cp.exists() {
        Some(cp.display().to_string())
    } else if has_original(dir) && dir.rocksdb().exists() {
        Some(format!(
            "{} (the original engine's files, kept at its top)",
            dir.root().display()
        ))
    } else {
        None
    }
}

/// Puts the checkpoint in place of `D/rocksdb`. Each rename is atomic; a crash between them
/// is finished by running it again. A directory that was in the original layout gets it
/// back: `D/rocksdb` and everything else the migration added are removed, leaving the
/// original files exactly as they were.
pub fn roll_back(dir: &DataDir) -> Result<()> {
    if has_original(dir) {
        return roll_back_to_original(dir);
    }
    let (cp, trash, live) = (path(dir), trash(dir), dir.rocksdb());
    if cp.exists() {
        if live.exists() {
            remove_tree(&trash)?;
            std::fs::rename(&live, &trash).map_err(|e| CoreError::io(&live, e))?;
            sync_dir(dir.root())?;
            kalamdb_core::fail::point("migrate.rollback");
        }
        std::fs::rename(&cp, &live).map_err(|e| CoreError::io(&cp, e))?;
        sync_dir(dir.root())?;
    }
    remove_tree(&trash)?;
    remove_empty(&root(dir));
    Ok(())
}

fn roll_back_to_original(dir: &DataDir) -> Result<()> {
    let (trash, live) = (trash(dir), dir.rocksdb());
    if live.exists() {
        kalamdb_core::fs::create_dir_durable(&root(dir))?;
        remove_tree(&trash)?;
        // One rename: from here the directory is the original again.
        std::fs::rename(&live, &trash).map_err(|e| CoreError::io(&live, e))?;
        sync_dir(dir.root())?;
        kalamdb_core::fail::point("migrate.rollback");
    }
    remove_tree(&dir.root().join("rocksdb.tmp"))?;
    remove_tree(&root(dir))?;
    // The lock file and the jobs folder exist only since the migration (the original engine
    // used neither); the lock is still held by this process until it exits.
    let _ = std::fs::remove_dir(dir.cancel_requests());
    let _ = std::fs::remove_dir(dir.root().join("jobs"));
    kalamdb_core::fs::remove_file_durable(&dir.pidfile())?;
    sync_dir(dir.root())
}

/// Deletes the checkpoint.
pub fn remove(dir: &DataDir) -> Result<()> {
    remove_tree(&path(dir))?;
    remove_tree(&tmp(dir))?;
    remove_empty(&root(dir));
    Ok(())
}

fn remove_empty(path: &Path) {
    // Only an empty directory is removed; anything else an operator put there stays.
    let _ = std::fs::remove_dir(path);
}
