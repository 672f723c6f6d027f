//! Backups: consistent, incremental, verified copies of a data directory in a repository.
//!
//! - [`register`]: what a process that runs backups calls first: the `backup` job type (how
//!   an orphaned backup job is settled, where it can be cancelled) and the handler of
//!   `BACKUP DATABASE`.
//! - [`begin`] / [`Started::run`]: a point-in-time snapshot taken while writes
//!   continue ([`snapshot`]), whose files the repository does not hold yet are copied into
//!   it, then a sealed manifest. A backup is a `backup` job in the source database.
//! - [`list`], [`verify`] (sizes and checksums; `deep`: also restore to scratch, verify and
//!   count), [`restore()`] (into a new directory, reported only once checked), [`prune`].
//!
//! The repository layout is in [`repo`]; the contract is `specs/backup.md`.

mod create;
mod job_row;
mod location;
mod manifest;
mod repo;
mod restore;
mod scratch;
mod snapshot;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

pub use create::{CreateOptions, CreateReport, Started, begin, check_repository};
pub use location::RepoLocation;
pub use manifest::{FileEntry, Manifest, TableRows};
pub use repo::FoundLock;
pub use restore::{RestoreOptions, RestoreReport, restore};
pub use transfer::{Observer, Phase, Transfer};

use repo::{LockMode, Repo};
use restore::{Check, Mode, check_restored, materialize};
use scratch::Scratch;
use transfer::Meter;

use kalamdb_core::fs::sync_dir;
use kalamdb_core::{CoreError, Result};

/// One backup in `backup list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub id: u64,
    /// `complete`, `incomplete` (started and never finished: killed, or still running) or
    /// `damaged` (its manifest cannot be used).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    pub files: u64,
    pub total_bytes: u64,
    pub new_bytes: u64,
    pub tables: u64,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every backup in the repository, oldest first.
pub fn list(repo: &RepoLocation) -> Result<Vec<Listing>> {
    let repo = Repo::open(repo)?;
    let mut out: Vec<Listing> = repo
        .list()?
        .into_iter()
        .map(|l| match l.manifest {
            Ok(m) => Listing {
                id: m.id,
                status: "complete",
                created_at: Some(m.created_at),
                parent: m.parent,
                files: m.files.len() as u64,
                total_bytes: m.total_bytes,
                new_bytes: m.new_bytes,
                tables: m.tables.len() as u64,
                rows: m.table_rows(),
                format_version: Some(m.format_version),
                tool_version: Some(m.tool_version),
                problem: None,
            },
            Err(why) => damaged(l.id, format!("{}: {why}", l.path)),
        })
        .collect();
    for id in repo.partials()? {
        let mut l = damaged(
            id,
            "never completed; the next create or prune removes it".into(),
        );
        l.status = "incomplete";
        out.push(l);
    }
    out.sort_by_key(|l| l.id);
    Ok(out)
}

fn damaged(id: u64, problem: String) -> Listing {
    Listing {
        id,
        status: "damaged",
        created_at: None,
        parent: None,
        files: 0,
        total_bytes: 0,
        new_bytes: 0,
        tables: 0,
        rows: 0,
        format_version: None,
        tool_version: None,
        problem: Some(problem),
    }
}

/// What `backup verify` is asked to check.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    pub repo: RepoLocation,
    /// One backup; every backup when `None`.
    pub id: Option<u64>,
    /// Also restore to scratch, verify and count (the given backup, or the newest).
    pub deep: bool,
    pub observer: Option<Observer>,
    pub interrupt: Option<&'static AtomicBool>,
}

/// A file of a backup that is not as its manifest says.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub backup_id: u64,
    /// The file's path in the backup (or the manifest's own path).
    pub path: String,
    /// Where its content is stored in the repository.
    pub object: String,
    /// `missing`, `size`, `checksum` or `manifest`.
    pub problem: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub backups_checked: Vec<u64>,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<Problem>,
    /// With `deep`: the backup restored to scratch and checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deep: Option<DeepCheck>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeepCheck {
    pub backup_id: u64,
    pub passed: bool,
    pub tables: u64,
    pub rows: u64,
    pub verify_warnings: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.deep.as_ref().is_none_or(|d| d.passed)
    }
}

/// Checks backups: every file's object is present with the manifest's size and SHA-256;
/// with `deep`, the backup also restores, passes verify and has the manifest's counts.
pub fn verify(options: &VerifyOptions) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let repo = Repo::open(&options.repo)?;
    let _lock = repo.lock(LockMode::Read)?;
    let mut report = VerifyReport::default();
    let mut manifests = Vec::new();
    for l in repo.list()? {
        if options.id.is_some_and(|id| id != l.id) {
            continue;
        }
        report.backups_checked.push(l.id);
        match l.manifest {
            Ok(m) => manifests.push(m),
            Err(why) => report.problems.push(Problem {
                backup_id: l.id,
                path: l.path.clone(),
                object: l.path.clone(),
                problem: "manifest",
                message: format!("manifest {}: {why}", l.path),
            }),
        }
    }
    if let Some(id) = options.id.filter(|_| report.backups_checked.is_empty()) {
        return Err(CoreError::NotFound(format!(
            "{} has no backup {id}; `kalamctl backup list {}` shows them",
            options.repo, options.repo
        )));
    }
    // Checking nothing is not a pass: a CI gate on an empty (or wrong) repository must fail.
    if report.backups_checked.is_empty() {
        return Err(CoreError::NotFound(format!(
            "{} holds no backup, so there is nothing to verify; check the path, or create one with `kalamctl backup create --to {}`",
            options.repo, options.repo
        )));
    }
    // Each object once, however many backups share it.
    let mut objects: BTreeMap<&str, u64> = BTreeMap::new();
    for f in manifests.iter().flat_map(|m| &m.files) {
        objects.insert(&f.sha256, f.size);
    }
    let objects: Vec<(&str, u64)> = objects.into_iter().collect();
    let observer = options.observer.clone();
    let mut progress = move |t: Transfer| -> Result<()> {
        if let Some(o) = &observer {
            o(t);
        }
        Ok(())
    };
    let meter = Meter::new(
        objects.len() as u64,
        objects.iter().map(|(_, s)| s).sum(),
        &mut progress,
        options.interrupt,
    );
    let outcomes = transfer::parallel(&objects, transfer::threads(), |(sha, size)| {
        let path = repo.object(sha);
        let r = match path.size() {
            Err(e) => Err(e),
            Ok(None) => Ok(Some(("missing", "is missing".to_string()))),
            Ok(Some(len)) if len != *size => Ok(Some((
                "size",
                format!("has {len} byte(s), expected {size}"),
            ))),
            Ok(Some(_)) => transfer::hash_object(&path, &meter).map(|(actual, _)| {
                (actual != *sha).then(|| ("checksum", format!("has SHA-256 {actual}")))
            }),
        };
        meter.file_done()?;
        r
    })?;
    meter.flush()?;
    let done = meter.now();
    report.objects_checked = done.files_done;
    report.bytes_checked = done.bytes_done;
    let bad: BTreeMap<&str, (&'static str, String)> = objects
        .iter()
        .zip(outcomes)
        .filter_map(|((sha, _), o)| o.map(|o| (*sha, o)))
        .collect();
    for m in &manifests {
        for f in &m.files {
            if let Some((problem, what)) = bad.get(f.sha256.as_str()) {
                let object = repo.object(&f.sha256).to_string();
                report.problems.push(Problem {
                    backup_id: m.id,
                    path: f.path.clone(),
                    message: format!("backup {}: {} (stored as {object}) {what}", m.id, f.path),
                    object,
                    problem,
                });
            }
        }
    }
    if options.deep {
        let target = match options.id {
            Some(id) => manifests.iter().find(|m| m.id == id),
            None => manifests.last(),
        };
        if let Some(m) = target {
            report.deep = Some(deep_check(&repo, m, options)?);
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Restores `m` into scratch inside the repository (hard links where possible), opens it,
/// verifies it and counts its rows; the scratch copy is then removed.
fn deep_check(repo: &Repo, m: &Manifest, options: &VerifyOptions) -> Result<DeepCheck> {
    // Inside a directory repository (so files can be hard-linked); for a bucket, in the
    // system's temporary directory.
    let scratch_dir = match repo.local_root() {
        Some(root) => root.join("scratch"),
        None => std::env::temp_dir().join("kalamdb-backup-scratch"),
    };
    let scratch = Scratch::new(&scratch_dir, "verify")?;
    let restore_options = RestoreOptions {
        repo: options.repo.clone(),
        id: Some(m.id),
        to: scratch.path().to_path_buf(),
        observer: None,
        interrupt: options.interrupt,
        allow_verify_errors: false,
    };
    let outcome = materialize(
        repo,
        m,
        scratch.path(),
        Mode::Link,
        &restore_options,
        &|_| {},
    )
    .and_then(|()| {
        let check = Check {
            repo: &options.repo,
            target: None,
            allow_errors: false,
            observer: options.observer.as_ref(),
        };
        check_restored(scratch.path(), m, &check)
    });
    Ok(match outcome {
        Ok(checked) => DeepCheck {
            backup_id: m.id,
            passed: true,
            tables: m.tables.len() as u64,
            rows: m.table_rows(),
            verify_warnings: checked.verify_warnings,
            error: None,
        },
        Err(
            e @ (CoreError::BackupDamaged(_) | CoreError::Parquet { .. } | CoreError::Store(_)),
        ) => DeepCheck {
            backup_id: m.id,
            passed: false,
            tables: m.tables.len() as u64,
            rows: m.table_rows(),
            verify_warnings: 0,
            error: Some(e.to_string()),
        },
        Err(e) => return Err(e),
    })
}

/// What `backup prune` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub kept: Vec<u64>,
    pub deleted: Vec<u64>,
    pub objects_deleted: u64,
    pub bytes_freed: u64,
    pub incomplete_removed: u64,
    /// Multipart uploads a killed `create` had left open in a bucket repository, aborted.
    pub uploads_aborted: u64,
}

/// What `unlock` found in a repository.
#[derive(Debug, Clone, Serialize)]
pub struct UnlockReport {
    pub repository: String,
    pub locks: Vec<FoundLock>,
}

impl UnlockReport {
    /// Whether a lock is still there: the repository stays locked.
    pub fn still_locked(&self) -> bool {
        self.locks.iter().any(|l| !l.removed)
    }
}

/// Removes the lock objects a bucket repository's crashed writers left: those of processes
/// of this host that no longer run, or every one with `all` (for a holder on another host
/// that is known to be gone). Directory repositories hold `flock` locks, which end with
/// their process: there is nothing to remove.
pub fn unlock(repo: &RepoLocation, all: bool) -> Result<UnlockReport> {
    let opened = Repo::open(repo)?;
    Ok(UnlockReport {
        repository: repo.to_string(),
        locks: opened.unlock(all)?,
    })
}

/// Keeps the newest `keep` complete backups and deletes the rest, then every object no kept
/// backup needs. Refuses while a manifest is damaged: what it needs cannot be known.
pub fn prune(repo: &RepoLocation, keep: usize) -> Result<PruneReport> {
    if keep == 0 {
        return Err(CoreError::InvalidInput(
            "--keep must be at least 1; to delete every backup, delete the repository".into(),
        ));
    }
    let repo = Repo::open(repo)?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let debris = repo.clean_debris()?;
    let mut report = PruneReport {
        incomplete_removed: debris.incomplete,
        uploads_aborted: debris.uploads_aborted,
        ..PruneReport::default()
    };
    let mut manifests = Vec::new();
    for l in repo.list()? {
        match l.manifest {
            Ok(m) => manifests.push(m),
            Err(why) => {
                return Err(CoreError::BackupDamaged(format!(
                    "manifest {} is damaged ({why}), so which files it needs is unknown; nothing was pruned. Move it out of the repository (that backup cannot be restored) and prune again",
                    l.path
                )));
            }
        }
    }
    let split = manifests.len().saturating_sub(keep);
    let (old, kept) = manifests.split_at(split);
    let needed: BTreeSet<&str> = kept
        .iter()
        .flat_map(|m| &m.files)
        .map(|f| f.sha256.as_str())
        .collect();
    for m in old {
        repo.delete_manifest(m.id)?;
        report.deleted.push(m.id);
    }
    report.kept = kept.iter().map(|m| m.id).collect();
    let mut dirs = BTreeSet::new();
    for (sha, path, size) in repo.objects_on_disk()? {
        if needed.contains(sha.as_str()) {
            continue;
        }
        path.remove()?;
        report.objects_deleted += 1;
        report.bytes_freed += size;
        if let Some(d) = path.as_local().and_then(Path::parent) {
            dirs.insert(d.to_path_buf());
        }
    }
    for d in dirs {
        // Empty prefix directories go; the rest are synced so the deletions are durable.
        if std::fs::remove_dir(&d).is_err() {
            sync_dir(&d)?;
        }
    }
    Ok(report)
}

/// Registers the `backup` job type and the `BACKUP DATABASE` handler with the engine. Call
/// once at startup in every process that opens databases (kalamd, kalamctl); [`begin`] calls
/// it too.
pub fn register() {
    job_row::register();
    static HANDLER: SqlBackup = SqlBackup;
    kalamdb_core::sql::register_backup_handler(&HANDLER);
}

/// `BACKUP DATABASE TO '/repo'`, as the engine runs it.
struct SqlBackup;

impl kalamdb_core::sql::BackupHandler for SqlBackup {
    fn start(
        &self,
        engine: &kalamdb_core::Engine,
        repository: &str,
        credentials: Option<&str>,
    ) -> Result<kalamdb_core::sql::StartedBackup> {
        let started = begin(
            engine,
            CreateOptions {
                repo: RepoLocation::parse(repository, credentials)?,
                ..CreateOptions::default()
            },
        )?;
        Ok(kalamdb_core::sql::StartedBackup {
            backup_id: started.backup_id(),
            job_id: started.job_id().to_string(),
            run: Box::new(move || {
                let report = started.run()?;
                let mut figures = serde_json::Map::new();
                for (k, v) in [
                    ("files", report.files),
                    ("total_bytes", report.total_bytes),
                    ("new_bytes", report.new_bytes),
                    ("server_side_copies", report.server_side_copies),
                    ("rows", report.rows),
                    ("duration_ms", report.duration_ms),
                ] {
                    figures.insert(k.to_string(), v.into());
                }
                Ok(figures)
            }),
        })
    }
}
