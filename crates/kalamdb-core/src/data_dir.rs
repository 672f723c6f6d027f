//! The data directory: where RocksDB, the default Parquet storage and the pidfile lock live.
//!
//! ```text
//! D/
//!   rocksdb/        the RocksDB database (hot tier and catalog)
//!   storage/        Parquet files of tables on the default `local` storage location
//!   kalamdb.pid     pidfile lock: held (flock) by the process that has D open for writing
//!   jobs/cancel/    cancellation requests for running jobs, one empty file per job id
//!   uploads/        multipart uploads to object storage in progress, one file each
//!                   (see [`crate::cold::uploads`])
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::process::{self, ProcessIdentity};
use crate::{CoreError, Result};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn rocksdb(&self) -> PathBuf {
        self.root.join("rocksdb")
    }
    pub fn storage(&self) -> PathBuf {
        self.root.join("storage")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.root.join("kalamdb.pid")
    }
    pub fn cancel_requests(&self) -> PathBuf {
        self.root.join("jobs").join("cancel")
    }
    /// The record of multipart uploads in progress (see [`crate::cold::uploads`]).
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Resolves a path from a storage template: relative paths are under the data directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// How the directory is laid out.
    pub fn layout(&self) -> Layout {
        if kalamdb_store::is_database(&self.rocksdb()) {
            Layout::Nested
        } else if kalamdb_store::is_database(&self.root) {
            Layout::Original
        } else {
            Layout::NoDatabase
        }
    }

    /// The RocksDB directory as the directory stands: `rocksdb/`, or the directory itself in
    /// the original engine's layout.
    pub fn database(&self) -> PathBuf {
        match self.layout() {
            Layout::Original => self.root.clone(),
            Layout::Nested | Layout::NoDatabase => self.rocksdb(),
        }
    }

    /// Checks that the directory holds a database, with a message that says what to do.
    pub fn check_is_database(&self) -> Result<()> {
        match self.layout() {
            Layout::Nested => Ok(()),
            Layout::Original if !self.is_inner_rocksdb() => Err(CoreError::Unmigrated {
                path: self.root.display().to_string(),
                what: "legacy directory in the original engine's layout (the RocksDB files at its top)".into(),
            }),
            Layout::Original | Layout::NoDatabase => Err(self.not_a_database()),
        }
    }

    /// Checks that the directory holds a database in either layout (what `kalamctl migrate`
    /// accepts).
    pub fn check_holds_database(&self) -> Result<()> {
        match self.layout() {
            Layout::Nested => Ok(()),
            Layout::Original if !self.is_inner_rocksdb() => Ok(()),
            Layout::Original | Layout::NoDatabase => Err(self.not_a_database()),
        }
    }

    /// Whether the directory is the `rocksdb/` of a data directory (its parent is the one
    /// to pass; a legacy directory so named works from its parent too).
    fn is_inner_rocksdb(&self) -> bool {
        self.root.file_name().is_some_and(|n| n == "rocksdb")
    }

    /// Why the directory is no database, with the fix that fits: never `init` for a
    /// directory that holds something.
    fn not_a_database(&self) -> CoreError {
        let path = self.root.display().to_string();
        let reason = if !self.root.exists() {
            format!(
                "no such directory; check the path (a new database is made with `kalamctl init --data-dir {path}`)"
            )
        } else if !self.root.is_dir() {
            "it is a file, not a directory; check the path".to_string()
        } else if self.is_inner_rocksdb() {
            match self.root.parent() {
                Some(parent) => format!(
                    "it is the RocksDB directory of a data directory; pass its parent, {}",
                    parent.display()
                ),
                None => "it is a bare RocksDB directory".to_string(),
            }
        } else {
            match self.databases_inside() {
                Some(inner) => format!(
                    "it holds no database itself, but {} inside it is a RocksDB directory; pass --data-dir {}",
                    inner.display(),
                    inner.display()
                ),
                None if self.is_empty() => format!(
                    "it is empty; create a database with `kalamctl init --data-dir {path}`"
                ),
                None => "it holds no RocksDB database (no CURRENT file at its top or in rocksdb/); check the path".to_string(),
            }
        };
        CoreError::NotADatabase { path, reason }
    }

    /// The first subdirectory (sorted by name) that is a RocksDB directory, if any.
    fn databases_inside(&self) -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| kalamdb_store::is_database(p))
            .collect();
        found.sort();
        found.into_iter().next()
    }

    fn is_empty(&self) -> bool {
        std::fs::read_dir(&self.root).is_ok_and(|mut e| e.next().is_none())
    }
}

/// How a data directory is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `D/rocksdb` is the database (the original engine's files may still sit at the top,
    /// kept for `kalamctl migrate rollback` until `finalize`).
    Nested,
    /// The original engine's layout: the directory is the RocksDB directory itself, with G1's
    /// `conf/` inside it. Only `kalamctl migrate` takes it, and nests it first.
    Original,
    /// Neither.
    NoDatabase,
}

/// The pidfile lock. Held for as long as this value lives; the kernel drops it when the
/// process dies, so a stale pidfile never blocks anybody.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(dir: &DataDir, who: &str) -> Result<DirLock> {
        let path = dir.pidfile();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(CoreError::Locked {
                    path: dir.root().display().to_string(),
                    holder: describe_holder(&text),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(CoreError::io(&path, e)),
        }
        let me = crate::process::this_process();
        let contents = format!("{}\n{}\n{}\n", me.pid, who, me.started_at);
        file.set_len(0).map_err(|e| CoreError::io(&path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| CoreError::io(&path, e))?;
        file.write_all(contents.as_bytes())
            .map_err(|e| CoreError::io(&path, e))?;
        file.sync_data().map_err(|e| CoreError::io(&path, e))?;
        Ok(DirLock { _file: file })
    }
}

impl DirLock {
    /// The live process the pidfile names, if any. Reads the pidfile without locking it, so
    /// probing never makes a starting kalamd see the directory as locked; a pidfile whose
    /// process is gone names nobody.
    pub fn holder(dir: &DataDir) -> Result<Option<ProcessIdentity>> {
        let path = dir.pidfile();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CoreError::io(&path, e)),
        };
        let mut lines = text.lines().map(str::trim);
        let Some(pid) = lines.next().and_then(|p| p.parse::<u32>().ok()) else {
            return Ok(None);
        };
        let started_at = lines.nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
        // The pidfile is local: its process runs on this host.
        Ok(process::is_alive(pid).then(|| ProcessIdentity {
            host: process::hostname(),
            pid,
            started_at,
        }))
    }
}

fn describe_holder(text: &str) -> String {
    let mut lines = text.lines();
    match (
        lines.next().map(str::trim).filter(|p| !p.is_empty()),
        lines.next(),
    ) {
        (Some(pid), Some(name)) => format!("{} (pid {pid})", name.trim()),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "another process".to_string(),
    }
}
