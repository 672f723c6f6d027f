//! The original engine's layout and its conversion.
//!
//! The original engine's data directory *is* its RocksDB directory (`CURRENT`, `MANIFEST-*`,
//! the SST files, and in G1 the `conf/` folder, all at its top). `apply` first nests it: it
//! builds `D/rocksdb` beside the original files (SST and blob files hard-linked, as nothing
//! writes them in place; the rest copied; `conf/` and the WAL `archive/` with them) and
//! makes it appear with one rename, so a kill at any point leaves either the original alone
//! or a complete `D/rocksdb`. The original files stay untouched at the top: they are what
//! `rollback` returns to, byte for byte, and what `finalize` deletes.
//!
//! `apply --to NEW` copies the same way into a new directory and leaves the original
//! untouched for good.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::image::Image;
use kalamdb_core::data_dir::DataDir;
use kalamdb_core::fs::{copy_tree, create_dir_durable, link_or_copy, remove_tree, sync_dir};
use kalamdb_core::{CoreError, Result};

/// Where `nest` builds the new database before renaming it into place.
const STAGING: &str = "rocksdb.tmp";
/// Folders inside the original RocksDB directory that are not RocksDB's own but move with it.
const CARRIED: [&str; 2] = ["conf", "archive"];
/// What a KalamDB data directory holds besides its locations' folders.
const OURS: [&str; 6] = [
    "rocksdb",
    STAGING,
    "migration",
    "kalamdb.pid",
    "jobs",
    "uploads",
];
/// In a directory made by `--to`: the original it was copied from.
const COPIED_FROM: &str = "copied-from";

/// How RocksDB treats one of its files when it is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Immutable once written (SST and blob files): hard-linked.
    Link,
    /// Rewritten by replacement or appended to (CURRENT, MANIFEST, OPTIONS, WAL): copied.
    Copy,
    /// Not data (the lock file, info logs, temporary files): left behind.
    Skip,
}

/// A RocksDB file name and how it is carried, or `None` for a name RocksDB does not write.
fn rocksdb_file(name: &str) -> Option<Carry> {
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    if name == "LOCK" || name == "LOG" || name.starts_with("LOG.old.") || ext == Some("dbtmp") {
        Some(Carry::Skip)
    } else if matches!(ext, Some("sst" | "blob" | "ldb")) {
        Some(Carry::Link)
    } else if name == "CURRENT"
        || name == "IDENTITY"
        || name.starts_with("MANIFEST-")
        || name.starts_with("OPTIONS-")
        || ext == Some("log")
    {
        Some(Carry::Copy)
    } else {
        None
    }
}

/// The conversion as `plan` and `status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutPlan {
    /// `original`: the RocksDB files at the directory's top.
    pub from: &'static str,
    /// Where the database will be.
    pub database: String,
    /// RocksDB files carried: hard-linked (SST, blob) and copied (the rest).
    pub linked: u64,
    pub copied: u64,
    /// Bytes copied (hard links cost none).
    pub copied_bytes: u64,
    /// Folders carried with the database (G1's `conf/`, the WAL `archive/`).
    pub carried: Vec<String>,
    /// Folders of storage locations, left where they are.
    pub locations: Vec<String>,
    /// Why the conversion cannot be done in place; `apply --to NEW_DIR` still can.
    pub blocked: Option<String>,
}

/// What the top of an original-layout directory holds.
struct Top {
    rocksdb: Vec<(String, Carry, u64)>,
    carried: Vec<String>,
    locations: Vec<String>,
    strays: Vec<String>,
}

fn read_top(root: &Path, location_dirs: &BTreeSet<String>) -> Result<Top> {
    let mut top = Top {
        rocksdb: Vec::new(),
        carried: Vec::new(),
        locations: Vec::new(),
        strays: Vec::new(),
    };
    let entries = std::fs::read_dir(root).map_err(|e| CoreError::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry
            .file_type()
            .map_err(|e| CoreError::io(entry.path(), e))?;
        if kind.is_file()
            && let Some(carry) = rocksdb_file(&name)
        {
            let size = entry
                .metadata()
                .map_err(|e| CoreError::io(entry.path(), e))?
                .len();
            top.rocksdb.push((name, carry, size));
        } else if kind.is_dir() && CARRIED.contains(&name.as_str()) {
            top.carried.push(name);
        } else if location_dirs.contains(&name) {
            top.locations.push(name);
        } else if !OURS.contains(&name.as_str()) {
            top.strays.push(name);
        }
    }
    top.rocksdb.sort_by(|a, b| a.0.cmp(&b.0));
    top.carried.sort();
    top.locations.sort();
    top.strays.sort();
    Ok(top)
}

/// The top-level folders that storage locations with relative paths point into: where a
/// legacy directory keeps its Parquet files (`storage` by default).
pub fn location_dirs(image: &Image) -> BTreeSet<String> {
    let mut paths: Vec<String> = Vec::new();
    let mut collect = |v: &serde_json::Value| {
        for field in ["path", "storage_location"] {
            if let Some(p) = v.get(field).and_then(serde_json::Value::as_str) {
                paths.push(p.to_string());
            }
        }
    };
    for (cf, records) in &image.catalog {
        if cf.contains("storage_locations") || cf == "system_tables" {
            for bytes in records.values() {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
                    collect(&v);
                }
            }
        }
    }
    if let Some(bytes) = image
        .conf
        .as_ref()
        .and_then(|c| c.get("storage_locations.json"))
        && let Ok(serde_json::Value::Object(all)) = serde_json::from_slice(bytes)
    {
        all.values().for_each(&mut collect);
    }
    let mut dirs: BTreeSet<String> = ["storage".to_string()].into();
    for p in paths {
        if p.contains("://") || Path::new(&p).is_absolute() {
            continue;
        }
        let first = p
            .trim_start_matches("./")
            .split('/')
            .next()
            .unwrap_or_default();
        if !first.is_empty() && first != "." && first != ".." && !first.contains("${") {
            dirs.insert(first.to_string());
        }
    }
    dirs
}

/// The plan of the conversion of `dir`, which is in the original layout.
pub fn plan(dir: &DataDir, location_dirs: &BTreeSet<String>) -> Result<LayoutPlan> {
    let top = read_top(dir.root(), location_dirs)?;
    let (mut linked, mut copied, mut copied_bytes) = (0, 0, 0);
    for (_, carry, size) in &top.rocksdb {
        match carry {
            Carry::Link => linked += 1,
            Carry::Copy => {
                copied += 1;
                copied_bytes += size;
            }
            Carry::Skip => {}
        }
    }
    let blocked = if !top.strays.is_empty() {
        let shown: Vec<&str> = top.strays.iter().take(3).map(String::as_str).collect();
        Some(format!(
            "it also holds {} entr{} that are neither RocksDB's nor KalamDB's ({}{}), so it cannot become a data directory in place",
            top.strays.len(),
            if top.strays.len() == 1 { "y" } else { "ies" },
            shown.join(", "),
            if top.strays.len() > 3 { ", ..." } else { "" }
        ))
    } else if !writable(dir.root()) {
        Some("it is not writable by this user".to_string())
    } else {
        None
    };
    Ok(LayoutPlan {
        from: "original",
        database: dir.rocksdb().display().to_string(),
        linked,
        copied,
        copied_bytes,
        carried: top.carried,
        locations: top.locations,
        blocked,
    })
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a valid NUL-terminated path and has no other effect.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The process that holds the RocksDB lock of `db` (a running original engine), if any.
/// Probes with `F_GETLK`, which takes no lock and changes nothing.
pub fn rocksdb_lock_holder(db: &Path) -> Option<i32> {
    let file = std::fs::File::open(db.join("LOCK")).ok()?;
    // SAFETY: a zeroed flock is a valid argument; F_GETLK only fills it in.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: a valid descriptor and a pointer to a live flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    (rc == 0 && probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid)
}

/// Refuses if a process has the original database open.
pub fn check_not_open(dir: &DataDir, db: &Path) -> Result<()> {
    match rocksdb_lock_holder(db) {
        Some(pid) => Err(CoreError::Locked {
            path: dir.root().display().to_string(),
            holder: format!(
                "pid {pid}, which has its RocksDB database open (the original engine?)"
            ),
        }),
        None => Ok(()),
    }
}

/// Builds `into` from the original RocksDB directory `from`: staged in `into`'s sibling
/// `rocksdb.tmp`, renamed into place when complete. A stale staging folder from a killed run
/// is discarded first.
fn build(from: &Path, into: &Path) -> Result<()> {
    let parent = into
        .parent()
        .ok_or_else(|| CoreError::InvalidInput(format!("{} has no parent", into.display())))?;
    let staging = parent.join(STAGING);
    remove_tree(&staging)?;
    create_dir_durable(&staging)?;
    let top = read_top(from, &BTreeSet::new())?;
    let half = top.rocksdb.len() / 2;
    for (i, (name, carry, _)) in top.rocksdb.iter().enumerate() {
        let (src, dst) = (from.join(name), staging.join(name));
        match carry {
            Carry::Link => link_or_copy(&src, &dst)?,
            Carry::Copy => {
                std::fs::copy(&src, &dst).map_err(|e| CoreError::io(&src, e))?;
                std::fs::File::open(&dst)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| CoreError::io(&dst, e))?;
            }
            Carry::Skip => {}
        }
        if i == half {
            kalamdb_core::fail::point("migrate.layout");
        }
    }
    for name in &top.carried {
        copy_tree(&from.join(name), &staging.join(name), &|_| false)?;
    }
    sync_dir(&staging)?;
    std::fs::rename(&staging, into).map_err(|e| CoreError::io(into, e))?;
    sync_dir(parent)?;
    kalamdb_core::fail::point("migrate.layout.done");
    Ok(())
}

/// Nests the original-layout directory `dir`: `D/rocksdb` appears complete or not at all.
pub fn nest(dir: &DataDir) -> Result<()> {
    build(dir.root(), &dir.rocksdb())
}

/// Copies the legacy directory `src` (either layout) into the new data directory `dst`: its
/// database into `dst/rocksdb` and the folders of its storage locations (Parquet files
/// hard-linked). `dst/migration/copied-from` names the original, so that `finalize` on the
/// copy never deletes a file outside it. Runs again from the start if it was killed before
/// the database appeared.
pub fn copy_to(src: &DataDir, dst: &DataDir, location_dirs: &BTreeSet<String>) -> Result<()> {
    let marker = copied_from(dst);
    let folder = marker.parent().unwrap_or(dst.root());
    let source = source_name(src).display().to_string();
    kalamdb_core::fs::write_atomically(folder, &marker, source.as_bytes(), 0o644)?;
    for name in location_dirs {
        let from = src.root().join(name);
        let to = dst.root().join(name);
        if from.is_dir() {
            remove_tree(&to)?;
            // Parquet files are never written in place: links are safe.
            copy_tree(&from, &to, &|p| {
                p.extension().is_some_and(|e| e == "parquet")
            })?;
        }
    }
    build(&src.database(), &dst.rocksdb())
}

/// Where a `--to` target stands.
pub enum Target {
    /// Missing or empty: the copy starts.
    Fresh,
    /// A copy killed before its database appeared: discarded and started again.
    Partial,
    /// A copy of this source is in place: apply goes on there.
    Copied,
}

/// What `dst` holds, refusing anything but a fresh directory or a copy of `src`.
pub fn target(src: &DataDir, dst: &DataDir) -> Result<Target> {
    let root = dst.root();
    if !root.exists() {
        return Ok(Target::Fresh);
    }
    let mut entries = std::fs::read_dir(root).map_err(|e| CoreError::io(root, e))?;
    if entries.next().is_none() {
        return Ok(Target::Fresh);
    }
    let ours =
        std::fs::read_to_string(copied_from(dst)).is_ok_and(|s| Path::new(&s) == source_name(src));
    match (ours, kalamdb_store::is_database(&dst.rocksdb())) {
        (true, true) => Ok(Target::Copied),
        (true, false) => Ok(Target::Partial),
        (false, _) => Err(CoreError::InvalidInput(format!(
            "{} is not empty; `--to` needs a new or empty directory",
            root.display()
        ))),
    }
}

/// Empties a partial `--to` copy (it holds only what the copy wrote).
pub fn discard_partial(dst: &DataDir) -> Result<()> {
    let root = dst.root();
    for entry in std::fs::read_dir(root).map_err(|e| CoreError::io(root, e))? {
        let path = entry.map_err(|e| CoreError::io(root, e))?.path();
        if path.is_dir() {
            remove_tree(&path)?;
        } else {
            kalamdb_core::fs::remove_file_durable(&path)?;
        }
    }
    sync_dir(root)
}

/// The original files at the top of a nested directory (what `finalize` deletes): RocksDB's
/// files and the folders carried into `rocksdb/`.
pub fn original_files(dir: &DataDir) -> Result<Vec<PathBuf>> {
    let top = read_top(dir.root(), &BTreeSet::new())?;
    Ok(top
        .rocksdb
        .into_iter()
        .map(|(name, _, _)| dir.root().join(name))
        .chain(top.carried.into_iter().map(|name| dir.root().join(name)))
        .collect())
}

/// Whether `dir` was copied from an original by `--to`.
pub fn is_copy(dir: &DataDir) -> bool {
    copied_from(dir).is_file()
}

/// The marker a `--to` copy keeps: the original it was copied from.
fn copied_from(dir: &DataDir) -> PathBuf {
    dir.root().join("migration").join(COPIED_FROM)
}

/// How a copy names its original: the canonical path, where it resolves.
fn source_name(src: &DataDir) -> PathBuf {
    src.root()
        .canonicalize()
        .unwrap_or_else(|_| src.root().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_files_are_told_apart_from_foreign_ones() {
        assert_eq!(rocksdb_file("000012.sst"), Some(Carry::Link));
        assert_eq!(rocksdb_file("MANIFEST-000005"), Some(Carry::Copy));
        assert_eq!(rocksdb_file("OPTIONS-000007"), Some(Carry::Copy));
        assert_eq!(rocksdb_file("000004.log"), Some(Carry::Copy));
        assert_eq!(rocksdb_file("CURRENT"), Some(Carry::Copy));
        assert_eq!(rocksdb_file("LOCK"), Some(Carry::Skip));
        assert_eq!(rocksdb_file("LOG.old.1700000000"), Some(Carry::Skip));
        assert_eq!(rocksdb_file("OPTIONS-000009.dbtmp"), Some(Carry::Skip));
        assert_eq!(rocksdb_file("backup.tar"), None);
        assert_eq!(rocksdb_file("notes.txt"), None);
    }
}
