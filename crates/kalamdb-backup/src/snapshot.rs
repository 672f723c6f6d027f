//! A consistent point-in-time snapshot of a data directory, taken while writes continue.
//!
//! Under the engine's cold-tier gate (which holds off flushes and table drops, the only
//! writers of Parquet files, but not INSERT, UPDATE or DELETE):
//! 1. a RocksDB checkpoint of the hot tier and catalog (memtables flushed, SST files
//!    hard-linked), in `D/backup/staging-{pid}-{n}/rocksdb`;
//! 2. a hard link to every Parquet file of every table the checkpoint's catalog names; an
//!    object in an S3 bucket is copied server-side into the repository's `tmp/{id}/` when the
//!    repository is on the same server, reached with the same credentials (its bytes never
//!    pass through this process), and downloaded otherwise.
//!
//! The gate is then released and the rest of the backup reads from the staging directory
//! and the pinned objects: none of them changes, whatever the database does meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kalamdb_sql::KalamSql;
use kalamdb_store::keys::TableCf;
use kalamdb_store::{OpenMode, Storage, TableKind};

use super::manifest::{FileEntry, Manifest, TableRows};
use super::scratch::Scratch;
use super::transfer::{parallel, threads};
use kalamdb_core::catalog::Catalog;
use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::manifest::recorded_files;
use kalamdb_core::cold::object::{Bucket, Key};
use kalamdb_core::cold::parquet::row_count;
use kalamdb_core::cold::path::join_key;
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
    /// Where it is staged: a local file, or an object pinned in the repository's own bucket.
    pub staged: ColdPath,
    pub size: u64,
    /// The modification time of the file, or of the original object.
    pub mtime_ns: i128,
}

/// A snapshot in its staging directory (removed, with its pinned objects, when this is
/// dropped).
#[derive(Debug)]
pub struct Snapshot {
    /// Removed, with every link in it, when the snapshot is dropped.
    _staging: Scratch,
    _pinned: Pinned,
    pub taken_at: i64,
    pub files: Vec<StagedFile>,
    pub tables: BTreeMap<String, TableRows>,
    /// The SST files that hold each table's hot rows (see `Manifest::hot_files`).
    pub hot_files: BTreeMap<String, Vec<String>>,
    /// Tables whose hot-row count was kept from the previous backup, not counted again.
    pub counts_kept: u64,
    /// How long flushes and drops were held off (checkpoint, links and server-side copies).
    pub gate_ms: u64,
    /// How long counting the rows took.
    pub count_ms: u64,
}

/// The prefix in the repository's bucket where a snapshot may pin objects server-side.
pub type PinArea = (Arc<Bucket>, Key);

/// The objects a snapshot pinned; deleted when it is dropped.
#[derive(Debug, Default)]
struct Pinned(Vec<ColdPath>);

impl Drop for Pinned {
    fn drop(&mut self) {
        for object in &self.0 {
            // What cannot be removed now is removed by the repository's next writer.
            let _ = object.remove();
        }
    }
}

/// The snapshot's table list: name, kind, and the staged Parquet files.
type Tables = Vec<(String, TableKind, Vec<ColdPath>)>;

/// Takes the snapshot. Blocks until running flushes and drops finish, and holds off new
/// ones only while the checkpoint, links and server-side copies are made. Objects of `pin`'s
/// bucket are copied under its prefix. A table whose hot rows are in the same unchanged SST
/// files as in `previous` (a backup of the same database) keeps that backup's count. Call
/// from a blocking thread.
pub(crate) fn take(
    engine: &Engine,
    root: &Path,
    pin: Option<&PinArea>,
    previous: Option<&Manifest>,
) -> Result<Snapshot> {
    let staging = Scratch::new(&engine.data_dir().root().join("backup"), "staging")?;
    let mut pinned = Pinned::default();
    let (taken_at, tables, objects, gate_ms) = {
        let _gate = engine.cold_gate().blocking_write();
        let held = std::time::Instant::now();
        let taken_at = kalamdb_store::now_ms();
        let checkpoint = staging.path().join(ROCKSDB);
        engine.storage().checkpoint(&checkpoint)?;
        kalamdb_core::fail::point("backup.checkpointed");
        let (tables, objects) = stage_parquet(&checkpoint, root, staging.path(), pin, &mut pinned)?;
        (taken_at, tables, objects, held.elapsed().as_millis() as u64)
    };
    let mut files = list_files(staging.path())?;
    files.extend(objects);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let counting = std::time::Instant::now();
    let counted = count_rows(&staging.path().join(ROCKSDB), &tables, &files, previous)?;
    let count_ms = counting.elapsed().as_millis() as u64;
    Ok(Snapshot {
        _staging: staging,
        _pinned: pinned,
        taken_at,
        files,
        tables: counted.tables,
        hot_files: counted.hot_files,
        counts_kept: counted.kept,
        gate_ms,
        count_ms,
    })
}

/// The checkpoint's directory in the staging directory, and in the backup's paths.
const ROCKSDB: &str = "rocksdb";

/// Stages every Parquet file of the checkpoint's tables: local ones linked into the staging
/// directory, objects pinned in `pin` (a bucket of the same server) or downloaded. Returns the tables and
/// the pinned objects' entries.
fn stage_parquet(
    checkpoint: &Path,
    root: &Path,
    staging: &Path,
    pin: Option<&PinArea>,
    pinned: &mut Pinned,
) -> Result<(Tables, Vec<StagedFile>)> {
    let storage = Storage::open(checkpoint, OpenMode::ReadOnly)?;
    let live = DataDir::new(root);
    let sql = KalamSql::new(storage);
    let catalog = Catalog::new(sql.clone(), live.clone());
    let mut tables = Vec::new();
    let mut objects = Vec::new();
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
                let path = backup_path(root, &file);
                match (&file, pin) {
                    (ColdPath::Object(b, k), Some((repo_bucket, prefix)))
                        if b.same_server(repo_bucket) =>
                    {
                        let to = join_key(prefix, &pinned.0.len().to_string());
                        let meta = b.head(k)?.ok_or_else(|| missing(&file))?;
                        repo_bucket.copy_from(b, k, &to)?;
                        let at = ColdPath::Object(Arc::clone(repo_bucket), to);
                        pinned.0.push(at.clone());
                        objects.push(StagedFile {
                            path,
                            staged: at.clone(),
                            size: meta.size,
                            mtime_ns: meta
                                .last_modified
                                .timestamp_nanos_opt()
                                .map_or(0, i128::from),
                        });
                        staged.push(at);
                    }
                    _ => {
                        let to = staging.join(path);
                        stage(&file, &to)?;
                        staged.push(ColdPath::Local(to));
                    }
                }
            }
        }
        tables.push((name, kind, staged));
    }
    Ok((tables, objects))
}

fn missing(file: &ColdPath) -> CoreError {
    CoreError::Io {
        path: file.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
    }
}

/// Puts a cold file into the staging directory: a local one hard-linked (or copied), an
/// object downloaded, with the object's modification time (so an unchanged object matches
/// the previous backup without being read again). The caller fsyncs the staging tree.
fn stage(file: &ColdPath, to: &Path) -> Result<()> {
    match file {
        ColdPath::Local(p) => link_or_copy(p, to),
        ColdPath::Object(b, k) => {
            let meta = b.head(k)?.ok_or_else(|| missing(file))?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
            }
            let mut out = std::fs::File::create(to).map_err(|e| CoreError::io(to, e))?;
            b.get_chunks(k, |piece| {
                std::io::Write::write_all(&mut out, piece).map_err(|e| CoreError::io(to, e))
            })?;
            out.set_modified(SystemTime::from(meta.last_modified))
                .map_err(|e| CoreError::io(to, e))
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

/// The counts of a snapshot's tables.
struct Counted {
    tables: BTreeMap<String, TableRows>,
    hot_files: BTreeMap<String, Vec<String>>,
    kept: u64,
}

/// Physical row counts of each table: keys in its column family, rows in its Parquet files.
/// A table's hot rows are not counted again when `previous` counted them in the same SST
/// files, each with the size and modification time it has now (immutable files: the same
/// bytes), and no memtable of the opened checkpoint holds a write of it (writes that landed
/// after the checkpoint's flush, replayed from its WAL).
fn count_rows(
    rocksdb: &Path,
    tables: &Tables,
    staged: &[StagedFile],
    previous: Option<&Manifest>,
) -> Result<Counted> {
    let storage = Storage::open(rocksdb, OpenMode::ReadOnly)?;
    let mut sst_of: HashMap<String, Vec<String>> = HashMap::new();
    for f in storage.live_files()? {
        sst_of
            .entry(f.column_family)
            .or_default()
            .push(format!("{ROCKSDB}/{}", f.name));
    }
    let staged: HashMap<&str, &StagedFile> = staged.iter().map(|f| (f.path.as_str(), f)).collect();
    let before: HashMap<&str, &FileEntry> = previous
        .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let mut counted = Counted {
        tables: BTreeMap::new(),
        hot_files: BTreeMap::new(),
        kept: 0,
    };
    for (name, kind, files) in tables {
        let (ns, t) = name.split_once('.').unwrap_or((name, ""));
        let cf = TableCf::new(*kind, ns, t).name();
        let mut sst = sst_of.remove(&cf).unwrap_or_default();
        sst.sort();
        let unchanged = |path: &String| match (staged.get(path.as_str()), before.get(path.as_str()))
        {
            (Some(now), Some(then)) => now.size == then.size && now.mtime_ns == then.mtime_ns,
            _ => false,
        };
        let kept = previous.and_then(|p| {
            let rows = p.tables.get(name)?;
            let same = rows.kind == kind.to_string()
                && p.hot_files.get(name) == Some(&sst)
                && sst.iter().all(unchanged)
                && storage.has_cf(&cf)
                && storage.memtable_entries(&cf).ok().flatten() == Some(0);
            same.then_some(rows.hot_rows)
        });
        counted.kept += u64::from(kept.is_some());
        let rows = table_rows(&storage, *kind, ns, t, files, kept)?;
        counted.tables.insert(name.clone(), rows);
        counted.hot_files.insert(name.clone(), sst);
    }
    Ok(counted)
}

/// One table's physical row counts; the hot rows are counted unless `hot_rows` is known.
pub fn table_rows(
    storage: &Storage,
    kind: TableKind,
    namespace: &str,
    table: &str,
    files: &[ColdPath],
    hot_rows: Option<u64>,
) -> Result<TableRows> {
    let cf = TableCf::new(kind, namespace, table).name();
    let hot_rows = match hot_rows {
        Some(n) => n,
        None if storage.has_cf(&cf) => {
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
            counts.iter().sum()
        }
        None => 0,
    };
    let mut cold_rows = 0;
    for f in files {
        cold_rows += row_count(f)?;
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
                staged: ColdPath::Local(path),
                size: meta.len(),
                mtime_ns,
            });
        }
    }
    Ok(())
}
