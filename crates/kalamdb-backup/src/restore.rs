//! Restoring a backup into a new directory, and checking a restored copy against its manifest.
//!
//! The files are written to a hidden sibling of the target, each checked against its
//! SHA-256 on the way. The copy is then opened, its storage locations outside the original
//! data directory re-pointed under `external/`, checked by verify and counted; only then is
//! it renamed into place. A restore that fails or is interrupted leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use kalamdb_sql::KalamSql;
use serde::Serialize;
use serde_json::json;

use super::create::is_immutable;
use super::job_row::mark_completed;
use super::location::RepoLocation;
use super::manifest::{FileEntry, Manifest, TableRows};
use super::repo::{LockMode, Repo};
use super::scratch::Scratch;
use super::snapshot::{EXTERNAL, object_dir};
use super::transfer::{self, Meter, Observer, Phase, Transfer};
use kalamdb_core::fs::link_or_copy;
use kalamdb_core::fs::sync_dir;
use kalamdb_core::jobs::{Job, job_type};
use kalamdb_core::{Access, CoreError, Engine, Result};

#[derive(Clone, Default)]
pub struct RestoreOptions {
    pub repo: RepoLocation,
    /// The backup; the newest complete one when `None`.
    pub id: Option<u64>,
    /// A new or empty directory.
    pub to: PathBuf,
    pub observer: Option<Observer>,
    pub interrupt: Option<&'static AtomicBool>,
    /// Restore even when verify finds errors in the copy (its files being intact, the source
    /// held them when it was backed up); the report counts them. Counts must still match.
    pub allow_verify_errors: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup_id: u64,
    /// The `restore` job row, in the restored database.
    pub job_id: String,
    pub restored_to: String,
    pub files: u64,
    pub bytes: u64,
    pub tables: u64,
    pub rows: u64,
    /// Storage paths outside the original data directory, now under `external/`.
    pub relocated: Vec<String>,
    pub verify_warnings: u64,
    /// Only with `allow_verify_errors`: errors verify found in the restored database.
    pub verify_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_verify_error: Option<String>,
    pub duration_ms: u64,
}

/// How the files reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Copied and checked: a restore.
    Copy,
    /// SST and Parquet files hard-linked from the repository (already checked): a scratch
    /// copy for `verify --deep`, opened and thrown away.
    Link,
}

/// Restores a backup. Fails, leaving nothing behind, unless every file is present and
/// intact, the copy passes verify (or `allow_verify_errors`), and its row counts match the
/// manifest's.
pub fn restore(options: &RestoreOptions) -> Result<RestoreReport> {
    let started = Instant::now();
    let repo = Repo::open(&options.repo)?;
    let _lock = repo.lock(LockMode::Read)?;
    let manifest = repo.manifest(options.id)?;
    let to = std::path::absolute(&options.to).map_err(|e| CoreError::io(&options.to, e))?;
    check_target(&to)?;
    let parent = to.parent().unwrap_or(Path::new("/"));
    kalamdb_core::fs::create_dir_durable(parent)?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into());
    let scratch = Scratch::new(parent, &format!(".{name}.restoring"))?;
    // Each copied file is synced by a thread of its own as soon as it is written, so the
    // disk writes copies back while later files are still being copied and hashed, and
    // while the copy is checked: the check reads the copy from memory and needs none of it
    // on disk yet. Only the rename below makes the copy the restored directory, and it comes
    // after every file and directory is synced. A file the check's opening of the database
    // removes (an obsolete WAL or MANIFEST) is skipped by the syncer.
    let check = Check {
        repo: &options.repo,
        target: Some(&to),
        allow_errors: options.allow_verify_errors,
        observer: options.observer.as_ref(),
    };
    let outcome = transfer::alongside(
        "syncing the restored files",
        transfer::sync_each,
        |copied| {
            let written = materialize(
                &repo,
                &manifest,
                scratch.path(),
                Mode::Copy,
                options,
                &|file| {
                    // The syncer stops only on an error, which `alongside` returns first.
                    let _ = copied.send(file.to_path_buf());
                },
            );
            drop(copied);
            written?;
            check_restored(scratch.path(), &manifest, &check)
        },
    )?;
    for dir in directories(scratch.path(), &manifest) {
        sync_dir(&dir)?;
    }
    if std::fs::metadata(&to).is_ok_and(|meta| meta.is_dir()) {
        // Empty (checked above): the rename replaces it.
        std::fs::remove_dir(&to).map_err(|e| CoreError::io(&to, e))?;
    }
    let from = scratch.keep();
    std::fs::rename(&from, &to).map_err(|e| CoreError::io(&to, e))?;
    sync_dir(parent)?;
    Ok(RestoreReport {
        backup_id: manifest.id,
        job_id: outcome.job_id,
        restored_to: to.display().to_string(),
        files: manifest.files.len() as u64,
        bytes: manifest.total_bytes,
        tables: manifest.tables.len() as u64,
        rows: manifest.table_rows(),
        relocated: outcome.relocated,
        verify_warnings: outcome.verify_warnings,
        verify_errors: outcome.verify_errors,
        first_verify_error: outcome.first_verify_error,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Every directory holding a file of the backup under `dest` (`dest` included).
fn directories(dest: &Path, manifest: &Manifest) -> Vec<PathBuf> {
    let mut dirs = std::collections::BTreeSet::new();
    for f in &manifest.files {
        let file = dest.join(&f.path);
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(dest)) {
            if !dirs.insert(d.to_path_buf()) {
                break;
            }
            dir = d.parent();
        }
    }
    dirs.into_iter().collect()
}

fn check_target(to: &Path) -> Result<()> {
    match std::fs::read_dir(to).map(|mut e| e.next().is_some()) {
        Ok(true) => Err(CoreError::InvalidInput(format!(
            "{} is not empty; restore never writes into a non-empty directory; pick a new one",
            to.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if to.exists() => Err(CoreError::InvalidInput(format!(
            "{} exists and is not a directory; pick a new directory",
            to.display()
        ))),
        Err(e) => Err(CoreError::io(to, e)),
    }
}

/// Writes every file of the backup under `dest`, checking each against its SHA-256, and
/// hands each intact copy to `written`. The files are not synced here: a restore has
/// `written` sync them, and a scratch copy for `verify --deep` is thrown away.
/// Counts missing and corrupt files and fails naming them, after looking at all of them.
pub(crate) fn materialize(
    repo: &Repo,
    manifest: &Manifest,
    dest: &Path,
    mode: Mode,
    options: &RestoreOptions,
    written: &(dyn Fn(&Path) + Sync),
) -> Result<()> {
    let observer = options.observer.clone();
    let mut report = move |t: Transfer| -> Result<()> {
        if let Some(o) = &observer {
            o(t);
        }
        Ok(())
    };
    let meter = Meter::new(
        manifest.files.len() as u64,
        manifest.total_bytes,
        &mut report,
        options.interrupt,
    );
    meter.flush()?;
    let outcomes = transfer::parallel(&manifest.files, transfer::threads(), |f| {
        let r = place(repo, f, dest, mode, &meter);
        if let Ok(Placed::Ok) = r {
            written(&dest.join(&f.path));
        }
        meter.file_done()?;
        r
    })?;
    meter.flush()?;
    let missing: Vec<&str> = problems(&manifest.files, &outcomes, Placed::Missing);
    let corrupt: Vec<&str> = problems(&manifest.files, &outcomes, Placed::Corrupt);
    if !missing.is_empty() || !corrupt.is_empty() {
        let mut names: Vec<&str> = missing.iter().chain(&corrupt).copied().collect();
        names.truncate(5);
        return Err(CoreError::BackupDamaged(format!(
            "backup {} cannot be restored: of {} file(s), {} intact, {} missing and {} corrupt in {} (e.g. {}); run `kalamctl backup verify {} --id {}`; nothing was restored",
            manifest.id,
            manifest.files.len(),
            manifest.files.len() - missing.len() - corrupt.len(),
            missing.len(),
            corrupt.len(),
            repo.location(),
            names.join(", "),
            repo.location(),
            manifest.id
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    Ok,
    Missing,
    Corrupt,
}

fn problems<'a>(files: &'a [FileEntry], outcomes: &[Placed], which: Placed) -> Vec<&'a str> {
    files
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == which)
        .map(|(f, _)| f.path.as_str())
        .collect()
}

fn place(repo: &Repo, f: &FileEntry, dest: &Path, mode: Mode, meter: &Meter<'_>) -> Result<Placed> {
    let object = repo.object(&f.sha256);
    if object.size()?.is_none() {
        return Ok(Placed::Missing);
    }
    let to = dest.join(&f.path);
    if let Some(parent) = to.parent() {
        kalamdb_core::fs::create_dir_durable(parent)?;
    }
    let (sha, size) = match object.as_local() {
        Some(local) if mode == Mode::Link && is_immutable(&f.path) => {
            link_or_copy(local, &to)?;
            meter.bytes(f.size)?;
            return Ok(Placed::Ok);
        }
        Some(local) => transfer::copy_hashing(local, &to, transfer::SyncWhen::Later, meter)?,
        None => transfer::download_hashing(&object, &to, meter)?,
    };
    if sha != f.sha256 || size != f.size {
        std::fs::remove_file(&to).map_err(|e| CoreError::io(&to, e))?;
        return Ok(Placed::Corrupt);
    }
    // Copies are writable: the restored database owns them.
    let mut perms = std::fs::metadata(&to)
        .map_err(|e| CoreError::io(&to, e))?
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&to, perms).map_err(|e| CoreError::io(&to, e))?;
    Ok(Placed::Ok)
}

/// How to check a restored copy.
pub(crate) struct Check<'a> {
    pub repo: &'a RepoLocation,
    /// The directory it becomes; `None` for `verify --deep`'s scratch copy.
    pub target: Option<&'a Path>,
    /// Accept verify errors (the source held them), still requiring equal counts.
    pub allow_errors: bool,
    pub observer: Option<&'a Observer>,
}

/// What checking a restored copy found.
pub(crate) struct Checked {
    pub job_id: String,
    pub relocated: Vec<String>,
    pub verify_warnings: u64,
    pub verify_errors: u64,
    pub first_verify_error: Option<String>,
}

/// Opens a restored copy, re-points storage outside the original data directory, completes
/// the backup's own job row (the snapshot caught it running), records a `restore` job, and
/// checks the copy: verify must find no error (unless `allow_errors`), and every table's
/// counts must match.
pub(crate) fn check_restored(dir: &Path, manifest: &Manifest, how: &Check<'_>) -> Result<Checked> {
    let Check {
        repo,
        target,
        allow_errors,
        observer,
    } = *how;
    let report_phase = |t: Transfer| {
        if let Some(o) = observer {
            o(t);
        }
    };
    // Synced writes: the relocated catalog and job rows are durable before "restored" prints.
    let who = "kalamctl backup restore";
    let mut engine = Engine::open_restored(dir, who)?;
    engine.set_offline();
    let relocated = relocate(engine.sql(), &manifest.source.data_dir)?;
    complete_backup_job(engine.sql(), manifest)?;
    if !matches!(
        engine.sql().format_state()?,
        kalamdb_sql::FormatState::Current(_)
    ) {
        // A backup from before the cold-tier manifest: the copy is migrated (its files,
        // relocated above, recorded with their checksums) before it is checked.
        drop(engine);
        kalamdb_migrate::apply(dir, kalamdb_migrate::ApplyOptions::default())?;
        kalamdb_migrate::finalize_inside(dir)?;
        engine = Engine::open_with(dir, Access::ReadWrite, who, true)?;
        engine.set_offline();
    }
    let params = vec![
        repo.to_string(),
        manifest.id.to_string(),
        target.map_or(String::new(), |t| t.display().to_string()),
    ];
    let job = Job::start(&engine, job_type::RESTORE, "", params)?;
    let job_id = job.id().to_string();
    let check = || -> Result<(u64, u64, Option<String>)> {
        // Parquet files the copy pass checked against the SHA-256 their cold-tier manifest
        // entries record are not read for it again (sizes, footers, schemas still are).
        let fast = parquet_checked_in_copy(&engine, dir, manifest).unwrap_or(false);
        let report = kalamdb_verify::verify(
            &engine,
            kalamdb_verify::VerifyOptions {
                fast,
                ..kalamdb_verify::VerifyOptions::default()
            },
            &|done, total, bytes| {
                report_phase(Transfer {
                    phase: Phase::Verifying,
                    files_done: done,
                    files_total: total,
                    bytes_done: bytes,
                    bytes_total: 0,
                })
            },
        )?;
        let first = report
            .findings
            .iter()
            .find(|f| f.severity == kalamdb_verify::Severity::Error)
            .map(|f| format!("{} on {}: {}", f.code.as_str(), f.object, f.message));
        if let Some(first) = first.as_ref().filter(|_| !allow_errors) {
            // Every file matched its SHA-256 on the way in: the source held these errors.
            return Err(CoreError::BackupDamaged(format!(
                "backup {}: the restored copy fails verify with {} error(s), first {first}; its files are intact, so the database held these errors when it was backed up: `kalamctl backup restore --allow-verify-errors` restores it anyway, for `kalamctl verify --repair`",
                manifest.id, report.summary.errors,
            )));
        }
        // The scan that verified the copy counted it too: one pass over the data.
        let counts = counts_of(&engine, &report)?;
        let mismatches = compare_counts(&manifest.tables, &counts);
        if !mismatches.is_empty() {
            return Err(CoreError::BackupDamaged(format!(
                "backup {}: the restored copy's row counts differ from the manifest: {}",
                manifest.id,
                mismatches.join("; ")
            )));
        }
        Ok((report.summary.warnings, report.summary.errors, first))
    };
    match check() {
        Ok((verify_warnings, verify_errors, first_verify_error)) => {
            job.complete(json!({
                "backup_id": manifest.id,
                "repository": repo.to_string(),
                "files": manifest.files.len(),
                "bytes": manifest.total_bytes,
                "rows": manifest.table_rows(),
                "relocated": relocated,
                "verify_errors": verify_errors,
            }))?;
            Ok(Checked {
                job_id,
                relocated,
                verify_warnings,
                verify_errors,
                first_verify_error,
            })
        }
        Err(e) => {
            let _ = job.fail(&e);
            Err(e)
        }
    }
}

/// Every table's physical counts, as the verify scan of the copy found them: the keys in its
/// column family and the rows its recorded Parquet files' footers hold (what a snapshot's
/// counts are, see `snapshot::table_rows`).
fn counts_of(
    engine: &Engine,
    report: &kalamdb_verify::Report,
) -> Result<BTreeMap<String, TableRows>> {
    let mut out = BTreeMap::new();
    for record in engine.catalog().tables(None)? {
        let Some(kind) = record.table_type.kind() else {
            continue;
        };
        let name = format!("{}.{}", record.namespace, record.table_name);
        let found = report
            .summary
            .table_counts
            .get(&name)
            .cloned()
            .unwrap_or_default();
        let cold = kind != kalamdb_store::TableKind::Stream;
        let rows = TableRows {
            kind: kind.to_string(),
            hot_rows: found.keys,
            cold_rows: if cold { found.parquet_rows } else { 0 },
            parquet_files: if cold { found.parquet_files } else { 0 },
        };
        out.insert(name, rows);
    }
    Ok(out)
}

fn compare_counts(
    expected: &BTreeMap<String, TableRows>,
    actual: &BTreeMap<String, TableRows>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in expected {
        match actual.get(name) {
            None => out.push(format!("{name} is missing")),
            Some(got) if got != want => out.push(format!(
                "{name}: {} hot + {} cold row(s) in {} file(s), expected {} + {} in {}",
                got.hot_rows,
                got.cold_rows,
                got.parquet_files,
                want.hot_rows,
                want.cold_rows,
                want.parquet_files
            )),
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!("{name} is not in the manifest"));
    }
    out
}

/// Re-points absolute storage paths: under the original data directory → relative; elsewhere
/// → `external/{path}`, where the backup put those files. A location on object storage
/// (`s3://bucket/prefix`) becomes the local directory `external/s3/bucket/prefix`, where the
/// backup put its objects: a restored copy never writes to, or deletes from, the bucket the
/// original uses. Returns one line per change.
fn relocate(sql: &KalamSql, source_root: &str) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    let (locations, _) = sql.storage_locations().scan_lenient()?;
    for mut loc in locations {
        let new = match kalamdb_core::cold::object::split_url(&loc.path) {
            Some((bucket, prefix)) if loc.is_object_store() => Some(object_dir(bucket, prefix)),
            _ => relocated(&loc.path, source_root),
        };
        if let Some(new) = new {
            changed.push(format!(
                "storage location {}: {} -> {new}",
                loc.location_name, loc.path
            ));
            loc.path = new;
            loc.location_type = kalamdb_sql::LocationType::Filesystem;
            loc.credentials_ref = None;
            sql.storage_locations().put(&loc)?;
        }
    }
    let (tables, _) = sql.tables().scan_lenient()?;
    for mut t in tables {
        let location = t.storage_location.trim().to_string();
        if sql.storage_locations().exists(&location)? {
            continue;
        }
        if let Some(new) = relocated(&location, source_root) {
            changed.push(format!(
                "table {}.{}: {location} -> {new}",
                t.namespace, t.table_name
            ));
            t.storage_location = new;
            sql.tables().put(&t)?;
        }
    }
    Ok(changed)
}

fn relocated(path: &str, source_root: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    Some(match Path::new(path).strip_prefix(source_root) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => format!("{EXTERNAL}/{}", path.trim_start_matches('/')),
    })
}

/// Whether every Parquet file the restored copy's cold-tier manifest records was checked by
/// the copy pass against that entry's own SHA-256: the backup's entry for the file (which
/// the copy matched byte for byte) carries the same SHA-256. Then verify need not hash them
/// again. Any file it cannot match this way (a file that changed before the backup, an entry
/// outside the copy) makes verify hash them all, as before.
fn parquet_checked_in_copy(engine: &Engine, dir: &Path, manifest: &Manifest) -> Result<bool> {
    let copied: std::collections::HashMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    for record in engine.catalog().tables(None)? {
        let Some(kind) = record.table_type.kind() else {
            continue;
        };
        let template = engine.catalog().storage_template(&record, kind)?;
        for b in engine
            .sql()
            .table_batches(&record.namespace, &record.table_name)?
        {
            let file = template.locate(engine.data_dir(), &b.path)?;
            let rel = file
                .as_local()
                .and_then(|p| p.strip_prefix(dir).ok())
                .and_then(Path::to_str);
            if rel.and_then(|r| copied.get(r)) != Some(&b.sha256.as_str()) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The snapshot caught the backup's own job running; in the copy, it is what it became.
fn complete_backup_job(sql: &KalamSql, manifest: &Manifest) -> Result<()> {
    let Some(mut job) = sql.jobs().get(&manifest.job_id)? else {
        return Ok(());
    };
    mark_completed(&mut job, manifest);
    sql.jobs().put(&job)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_re_pointed_into_the_restored_directory() {
        assert_eq!(relocated("storage", "/d"), None);
        assert_eq!(
            relocated("/d/storage/x", "/d").as_deref(),
            Some("storage/x")
        );
        assert_eq!(
            relocated("/mnt/cold/${user_id}/t", "/d").as_deref(),
            Some("external/mnt/cold/${user_id}/t")
        );
    }
}
