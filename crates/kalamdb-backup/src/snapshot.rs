//! A consistent point-in-time snapshot of a data directory, taken while writes continue.
//!
//! Under the engine's cold-tier gate (which holds off flushes and table drops, the only
//! writers of Parquet files, but not INSERT, UPDATE or DELETE):
//! 1. a RocksDB checkpoint of the hot tier and catalog (memtables flushed, SST files
//!    hard-linked), in `D/backup/staging-{pid}-{n}/rocksdb`;
//! 2. a hard link to every Parquet file of every table the checkpoint's catalog names.
//!
//! The gate is then released and the rest of the backup reads from the staging directory:
//! no file in it changes, whatever the database does meanwhile.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use kalamdb_sql::KalamSql;
use kalamdb_store::keys::TableCf;
use kalamdb_store::{OpenMode, Storage, TableKind};

use super::manifest::TableRows;
use super::scratch::Scratch;
use super::transfer::{parallel, threads};
use kalamdb_core::catalog::Catalog;
use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::manifest::recorded_files;
use kalamdb_core::cold::parquet::row_count;
use kalamdb_core::data_dir::DataDir;
use kalamdb_core::fs::link_or_copy;
use kalamdb_core::{CoreError, Engine, Result};

/// Where files of storage locations outside the data directory go, in backups and restores.
pub const EXTERNAL: &str = "external";

/// A file of the snapshot.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// Its path in the backup (relative to the data directory).
    pub path: String,
    /// Where it is staged.
    pub staged: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

/// A snapshot in its staging directory (removed when this is dropped).
#[derive(Debug)]
pub struct Snapshot {
    /// Removed, with every link in it, when the snapshot is dropped.
    _staging: Scratch,
    pub taken_at: i64,
    pub files: Vec<StagedFile>,
    pub tables: BTreeMap<String, TableRows>,
    /// How long flushes and drops were held off (checkpoint and links).
    pub gate_ms: u64,
    /// How long counting the rows took.
    pub count_ms: u64,
}

/// The snapshot's table list: name, kind, and the staged Parquet files.
type Tables = Vec<(String, TableKind, Vec<PathBuf>)>;

/// Takes the snapshot. Blocks until running flushes and drops finish, and holds off new
/// ones only while the checkpoint and links are made. Call from a blocking thread.
pub(crate) fn take(engine: &Engine, root: &Path) -> Result<Snapshot> {
    let staging = Scratch::new(&engine.data_dir().root().join("backup"), "staging")?;
    let (taken_at, tables, gate_ms) = {
        let _gate = engine.cold_gate().blocking_write();
        let held = std::time::Instant::now();
        let taken_at = kalamdb_store::now_ms();
        let checkpoint = staging.path().join("rocksdb");
        engine.storage().checkpoint(&checkpoint)?;
        kalamdb_core::fail::point("backup.checkpointed");
        let tables = link_parquet(&checkpoint, root, staging.path())?;
        (taken_at, tables, held.elapsed().as_millis() as u64)
    };
    let counting = std::time::Instant::now();
    let counts = count_rows(&staging.path().join("rocksdb"), &tables)?;
    let count_ms = counting.elapsed().as_millis() as u64;
    let files = list_files(staging.path())?;
    Ok(Snapshot {
        _staging: staging,
        taken_at,
        files,
        tables: counts,
        gate_ms,
        count_ms,
    })
}

/// Links every Parquet file of the checkpoint's tables into the staging directory.
fn link_parquet(checkpoint: &Path, root: &Path, staging: &Path) -> Result<Tables> {
    let storage = Storage::open(checkpoint, OpenMode::ReadOnly)?;
    let live = DataDir::new(root);
    let sql = KalamSql::new(storage);
    let catalog = Catalog::new(sql.clone(), live.clone());
    let mut tables = Vec::new();
    for record in catalog.tables(None)? {
        let Some(kind) = record.table_type.kind() else {
            continue;
        };
        let name = format!("{}.{}", record.namespace, record.table_name);
        let mut staged = Vec::new();
        if kind != TableKind::Stream {
            let template = catalog.storage_template(&record, kind)?;
            // The files the checkpoint's manifest records: exactly the snapshot's cold tier.
            let files = recorded_files(
                &sql,
                &template,
                &live,
                &record.namespace,
                &record.table_name,
            )?;
            for file in files {
                let to = staging.join(backup_path(root, &file));
                stage(&file, &to)?;
                staged.push(to);
            }
        }
        tables.push((name, kind, staged));
    }
    Ok(tables)
}

/// Puts a cold file into the staging directory: a local one hard-linked (or copied), an
/// object downloaded. The caller fsyncs the staging tree.
fn stage(file: &ColdPath, to: &Path) -> Result<()> {
    match file {
        ColdPath::Local(p) => link_or_copy(p, to),
        ColdPath::Object(b, k) => {
            let bytes = b.get(k)?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
            }
            std::fs::write(to, &bytes).map_err(|e| CoreError::io(to, e))
        }
    }
}

/// A live file's path in the backup: relative to the data directory, or under `external/`
/// (an object: `external/s3/{bucket}/{key}`).
pub fn backup_path(root: &Path, file: &ColdPath) -> String {
    let file = match file {
        ColdPath::Local(p) => p,
        ColdPath::Object(b, k) => {
            return object_dir(b.name(), k.as_ref());
        }
    };
    match file.strip_prefix(root) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => Path::new(EXTERNAL)
            .join(file.strip_prefix("/").unwrap_or(file))
            .to_string_lossy()
            .into_owned(),
    }
}

/// Where a backup keeps the objects of `s3://bucket/prefix`, relative to the data directory
/// (and where a restore puts them, re-pointing the location there).
pub(crate) fn object_dir(bucket: &str, prefix: &str) -> String {
    let mut dir = format!("{EXTERNAL}/s3/{bucket}");
    if !prefix.is_empty() {
        dir.push('/');
        dir.push_str(prefix);
    }
    dir
}

/// Physical row counts of each table: keys in its column family, rows in its Parquet files.
fn count_rows(rocksdb: &Path, tables: &Tables) -> Result<BTreeMap<String, TableRows>> {
    let storage = Storage::open(rocksdb, OpenMode::ReadOnly)?;
    let mut out = BTreeMap::new();
    for (name, kind, files) in tables {
        let (ns, t) = name.split_once('.').unwrap_or((name, ""));
        out.insert(name.clone(), table_rows(&storage, *kind, ns, t, files)?);
    }
    Ok(out)
}

/// One table's physical row counts.
pub fn table_rows(
    storage: &Storage,
    kind: TableKind,
    namespace: &str,
    table: &str,
    files: &[PathBuf],
) -> Result<TableRows> {
    let cf = TableCf::new(kind, namespace, table).name();
    let mut hot_rows = 0;
    if storage.has_cf(&cf) {
        // Ranges of about equal size on disk, counted on every core.
        let cuts = storage.split_keys(&cf, threads())?;
        let ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..=cuts.len())
            .map(|i| {
                let from = i.checked_sub(1).map_or_else(Vec::new, |j| cuts[j].clone());
                (from, cuts.get(i).cloned())
            })
            .collect();
        let counts = parallel(&ranges, threads(), |(from, to)| {
            let mut n = 0u64;
            storage.scan_verified_range(&cf, from, to.as_deref(), |_, _| {
                n += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(n)
        })?;
        hot_rows = counts.iter().sum();
    }
    let mut cold_rows = 0;
    for f in files {
        cold_rows += row_count(&ColdPath::Local(f.clone()))?;
    }
    Ok(TableRows {
        kind: kind.to_string(),
        hot_rows,
        cold_rows,
        parquet_files: files.len() as u64,
    })
}

/// Every file under `dir`, with its path relative to `dir`, sorted.
pub fn list_files(dir: &Path) -> Result<Vec<StagedFile>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<StagedFile>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| CoreError::io(&path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            out.push(StagedFile {
                path: path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
                staged: path,
                size: meta.len(),
                mtime_ns,
            });
        }
    }
    Ok(())
}
