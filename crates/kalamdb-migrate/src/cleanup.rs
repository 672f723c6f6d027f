//! `kalamctl migrate rollback` and `finalize`.

use kalamdb_core::data_dir::{DataDir, DirLock};
use kalamdb_core::{CoreError, Result};
use kalamdb_sql::SystemRecord as _;
use kalamdb_store::{Batch, now_ms};
use serde::Serialize;

use crate::checkpoint;
use crate::image::{self, G1_COLUMN_FAMILIES};
use crate::journal::{self, FinalizedRecord};
use crate::layout;
use crate::opened::{Opened, Standing, not_migrated, open};
use crate::steps::Leftovers;

/// `kalamctl migrate rollback` and `finalize`.
#[derive(Debug, Clone, Serialize)]
pub struct Cleanup {
    pub data_dir: String,
    /// `rolled_back`, `finalized` or `nothing_to_do`.
    pub state: &'static str,
    pub removed: Vec<String>,
}

/// `kalamctl migrate rollback`: the checkpoint replaces `D/rocksdb`.
pub fn rollback(root: &std::path::Path) -> Result<Cleanup> {
    let dir = DataDir::new(root);
    let path = dir.root().display().to_string();
    if !dir.root().is_dir() {
        dir.check_holds_database()?;
    }
    // Refused before the lock: nothing, not even the lock file, is written to a directory
    // with nothing to roll back (an original layout stays exactly as it is).
    let nothing = |dir: &DataDir| match dir.check_holds_database() {
        Err(e) => e,
        Ok(()) => CoreError::NotFound(format!(
            "{path} has no migration checkpoint to roll back to (never migrated here, or finalized)"
        )),
    };
    if checkpoint::rollback_state(&dir) == checkpoint::RollbackState::Nothing {
        return Err(nothing(&dir));
    }
    let _lock = DirLock::acquire(&dir, "kalamctl migrate rollback")?;
    if checkpoint::rollback_state(&dir) == checkpoint::RollbackState::Nothing {
        return Err(nothing(&dir));
    }
    let original = checkpoint::has_original(&dir);
    checkpoint::roll_back(&dir)?;
    Ok(Cleanup {
        data_dir: path,
        state: "rolled_back",
        removed: vec![if original {
            format!(
                "{} (the migrated database; the original engine's files at the top are as they were)",
                dir.rocksdb().display()
            )
        } else {
            format!(
                "{} (the migrated database; the checkpoint took its place)",
                dir.rocksdb().display()
            )
        }],
    })
}

/// `kalamctl migrate finalize`: deletes the checkpoint and what the old engine left.
pub fn finalize(root: &std::path::Path) -> Result<Cleanup> {
    finalize_with(root, false)
}

/// [`finalize`], leaving files outside the data directory alone: for a copy (a scratch or a
/// restore) whose leftovers may name the original's files.
pub fn finalize_inside(root: &std::path::Path) -> Result<Cleanup> {
    finalize_with(root, true)
}

/// Like [`finalize`]; with `inside_only`, files outside the data directory are left alone
/// (a scratch copy's leftovers may name the original's files).
pub(crate) fn finalize_with(root: &std::path::Path, inside_only: bool) -> Result<Cleanup> {
    let o = open(root, Some("kalamctl migrate finalize"))?;
    let path = o.path();
    match o.standing()? {
        Standing::Current(_) => {}
        Standing::Legacy { .. } => return Err(not_migrated(&o.dir)),
    }
    // A copy made by `--to` leaves the original's files alone.
    let inside_only = inside_only || layout::is_copy(&o.dir);
    let mut removed = Vec::new();
    if checkpoint::has_original(&o.dir)
        || o.image.kalamdb_keys.contains_key(journal::FINALIZING_KEY)
    {
        removed.extend(remove_original_files(&o)?);
    }
    let leftovers: Vec<Leftovers> = journal::applied(&o.image)
        .into_iter()
        .map(|a| a.leftovers)
        .collect();
    let mut drop: Vec<String> = G1_COLUMN_FAMILIES
        .iter()
        .map(|(cf, _)| cf.to_string())
        .collect();
    drop.push(image::COUNTERS_CF.to_string());
    for cf in leftovers.iter().flat_map(|l| &l.column_families) {
        // Only if it is still empty and still no table's.
        let owned = o.image.data.get(cf).is_some_and(|d| {
            o.storage
                .get(
                    kalamdb_sql::TableRecord::CF,
                    format!("table:{}:{}", d.cf.namespace, d.cf.table).as_bytes(),
                )
                .ok()
                .flatten()
                .is_some()
        });
        if !owned && o.storage.has_cf(cf) && o.storage.is_cf_empty(cf)? {
            drop.push(cf.clone());
        }
    }
    for cf in drop {
        if o.storage.has_cf(&cf) {
            o.storage.drop_cf(&cf)?;
            removed.push(format!("column family {cf}"));
        }
    }
    for file in leftovers.iter().flat_map(|l| &l.files) {
        if inside_only && !std::path::Path::new(file).starts_with(o.dir.root()) {
            continue;
        }
        match std::fs::remove_file(file) {
            Ok(()) => {
                removed.push(file.clone());
                // Then the directories the file leaves empty, up to the storage root.
                let mut parent = std::path::Path::new(file).parent();
                while let Some(p) = parent {
                    let inside = p.starts_with(o.dir.root());
                    if p == o.dir.root()
                        || p == o.dir.storage()
                        || std::fs::remove_dir(p).is_err()
                        || !inside
                    {
                        break;
                    }
                    parent = p.parent();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io(file, e)),
        }
    }
    let conf = o.dir.rocksdb().join("conf");
    if conf.exists() {
        checkpoint::remove_tree(&conf)?;
        removed.push(conf.display().to_string());
    }
    let cp = checkpoint::path(&o.dir);
    if cp.exists() {
        checkpoint::remove(&o.dir)?;
        removed.push(format!("{} (rollback is no longer possible)", cp.display()));
    }
    if removed.is_empty() {
        return Ok(Cleanup {
            data_dir: path,
            state: "nothing_to_do",
            removed,
        });
    }
    let mut batch = Batch::new();
    journal::put(
        &mut batch,
        journal::FINALIZED_KEY,
        &FinalizedRecord {
            at: now_ms(),
            removed: removed.clone(),
        },
    )?;
    batch.delete(
        kalamdb_store::DEFAULT_CF,
        journal::FINALIZING_KEY.as_bytes(),
    );
    o.storage.write(batch)?;
    Ok(Cleanup {
        data_dir: path,
        state: "finalized",
        removed,
    })
}

/// Deletes the original engine's files from the top of a nested directory. Recorded first
/// (`FINALIZING_KEY`): a finalize killed part-way finishes the deletion when run again,
/// though the files left no longer form a database. CURRENT goes first, durably: without it
/// what remains is never taken for the original.
fn remove_original_files(o: &Opened) -> Result<Vec<String>> {
    let mut batch = Batch::new();
    journal::put(&mut batch, journal::FINALIZING_KEY, &true)?;
    o.storage.write(batch)?;
    let mut files = layout::original_files(&o.dir)?;
    let is_current = |f: &std::path::Path| f.file_name().is_some_and(|n| n == "CURRENT");
    files.sort_by_key(|f| !is_current(f));
    let mut removed = Vec::new();
    for file in files {
        if file.is_dir() {
            checkpoint::remove_tree(&file)?;
        } else if is_current(&file) {
            kalamdb_core::fs::remove_file_durable(&file)?;
            kalamdb_core::fail::point("migrate.finalize.original");
        } else {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CoreError::io(&file, e)),
            }
        }
        removed.push(file.display().to_string());
    }
    checkpoint::sync_dir(o.dir.root())?;
    Ok(removed)
}
