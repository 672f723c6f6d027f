//! Creating a backup: snapshot, copy what the repository lacks, then write the manifest.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use kalamdb_sql::{CURRENT_FORMAT_VERSION, JobProgress, tool_version};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::location::RepoLocation;
use super::manifest::{FileEntry, MANIFEST_VERSION, Manifest, Source};
use super::repo::{LockMode, Repo, RepoLock};
use super::snapshot::{Snapshot, StagedFile};
use super::transfer::{self, Meter, Observer, Transfer};
use kalamdb_core::cold::ColdPath;
use kalamdb_core::fs::sync_dir;
use kalamdb_core::jobs::{Job, job_type};
use kalamdb_core::{CoreError, Engine, Result};

/// What `backup create` is asked to do.
#[derive(Clone, Default)]
pub struct CreateOptions {
    pub repo: RepoLocation,
    /// Read and hash every file, even those whose name, size and modification time match
    /// the previous backup of the same database.
    pub rehash: bool,
    pub observer: Option<Observer>,
    /// Set (by a signal handler, say) to stop; the run then leaves nothing behind.
    pub interrupt: Option<&'static AtomicBool>,
}

/// What a backup did (also the `backup` job's result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateReport {
    pub backup_id: u64,
    pub job_id: String,
    pub repository: String,
    pub created_at: i64,
    pub parent: Option<u64>,
    pub files: u64,
    pub total_bytes: u64,
    /// Files and bytes this backup added to the repository.
    pub new_files: u64,
    pub new_bytes: u64,
    /// Files read to compute their checksum (the rest matched the previous backup by name,
    /// size and modification time and were not read).
    pub files_read: u64,
    pub bytes_read: u64,
    /// Cold-tier objects copied into the repository server-side (same bucket): read once
    /// to hash them, never uploaded.
    #[serde(default)]
    pub server_side_copies: u64,
    pub tables: u64,
    pub rows: u64,
    /// How long flushes and table drops waited for the snapshot (writes never wait).
    pub gate_ms: u64,
    /// Counting each table's rows in the snapshot.
    pub count_ms: u64,
    /// Tables whose hot rows were not counted again: the parent backup counted them in the
    /// same unchanged SST files.
    #[serde(default)]
    pub counts_kept: u64,
    pub duration_ms: u64,
}

/// A backup that has begun: the repository is locked, the id taken, the job row written.
pub struct Started {
    engine: Engine,
    repo: Repo,
    _lock: RepoLock,
    id: u64,
    job: Job,
    root: PathBuf,
    options: CreateOptions,
}

/// Opens (or creates) the repository, takes its writer lock and records the `backup` job.
/// Errors here change nothing but the repository's creation.
pub fn begin(engine: &Engine, options: CreateOptions) -> Result<Started> {
    super::register();
    if engine.storage().is_read_only() {
        return Err(CoreError::InvalidInput(
            "a backup needs the database open read-write (it records a job row)".into(),
        ));
    }
    let root = std::fs::canonicalize(engine.data_dir().root())
        .map_err(|e| CoreError::io(engine.data_dir().root(), e))?;
    let location = check_repository(&root, &options.repo)?;
    let repo = Repo::open_or_create(&location)?;
    let lock = repo.lock(LockMode::Write)?;
    repo.clean_debris()?;
    let id = repo.begin()?;
    // The job row names the repository (and its credentials profile, never a secret), so a
    // later process can tell whether the backup committed.
    let mut params = vec![location.to_string(), id.to_string()];
    params.extend(location.credentials().map(str::to_string));
    let job = match Job::start(engine, job_type::BACKUP, "", params) {
        Ok(job) => job,
        Err(e) => {
            let _ = repo.abandon(id);
            return Err(e);
        }
    };
    Ok(Started {
        engine: engine.clone(),
        repo,
        _lock: lock,
        id,
        job,
        root,
        options,
    })
}

impl Started {
    pub fn backup_id(&self) -> u64 {
        self.id
    }
    pub fn job_id(&self) -> &str {
        self.job.id()
    }

    /// Runs the backup to the end. Call from a blocking thread. On failure the job fails,
    /// the backup is never listed as complete, and its partial files are removed.
    pub fn run(mut self) -> Result<CreateReport> {
        let started = Instant::now();
        match self.work(started) {
            Ok(report) => {
                self.job.complete(json!(report))?;
                Ok(report)
            }
            Err(e) => {
                let _ = self.repo.abandon(self.id);
                let _ = self.repo.clean_debris();
                let _ = self.job.fail(&e);
                Err(e)
            }
        }
    }

    fn work(&mut self, started: Instant) -> Result<CreateReport> {
        // A checkpoint gets an IDENTITY of its own; the database's is the live one.
        let identity = std::fs::read_to_string(self.engine.data_dir().rocksdb().join("IDENTITY"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let parent = self
            .repo
            .list()?
            .into_iter()
            .rev()
            .filter_map(|l| l.manifest.ok())
            .find(|m| !identity.is_empty() && m.source.db_identity == identity);
        let pin = self.repo.pin_area(self.id);
        // --rehash reads and counts everything again.
        let previous = parent.as_ref().filter(|_| !self.options.rehash);
        let snapshot = super::snapshot::take(&self.engine, &self.root, pin.as_ref(), previous)?;
        kalamdb_core::fail::point("backup.snapshot");
        let (entries, read) = self.copy_files(&snapshot, parent.as_ref())?;
        kalamdb_core::fail::point("backup.copied");

        let new_files = entries.iter().filter(|(_, new)| *new).count() as u64;
        let server_side_copies = snapshot
            .files
            .iter()
            .filter(|f| f.staged.as_local().is_none())
            .filter(|f| entries.iter().any(|(e, new)| *new && e.path == f.path))
            .count() as u64;
        let new_bytes = entries
            .iter()
            .filter(|(_, new)| *new)
            .map(|(f, _)| f.size)
            .sum();
        let files: Vec<FileEntry> = entries.into_iter().map(|(f, _)| f).collect();
        let mut manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            id: self.id,
            created_at: snapshot.taken_at,
            completed_at: kalamdb_store::now_ms(),
            format_version: CURRENT_FORMAT_VERSION,
            tool_version: tool_version(),
            source: Source {
                data_dir: self.root.display().to_string(),
                db_identity: identity,
                host: kalamdb_core::process::hostname(),
            },
            job_id: self.job.id().to_string(),
            parent: parent.as_ref().map(|p| p.id),
            total_bytes: files.iter().map(|f| f.size).sum(),
            files,
            tables: snapshot.tables.clone(),
            hot_files: snapshot.hot_files.clone(),
            new_bytes,
            new_files,
            checksum: String::new(),
        };
        self.repo.commit(&mut manifest)?;
        kalamdb_core::fail::point("backup.committed");
        Ok(CreateReport {
            backup_id: self.id,
            job_id: self.job.id().to_string(),
            repository: self.repo.location().to_string(),
            created_at: manifest.created_at,
            parent: manifest.parent,
            files: manifest.files.len() as u64,
            total_bytes: manifest.total_bytes,
            new_files,
            new_bytes,
            files_read: read.files_total,
            bytes_read: read.bytes_total,
            server_side_copies,
            tables: manifest.tables.len() as u64,
            rows: manifest.table_rows(),
            gate_ms: snapshot.gate_ms,
            count_ms: snapshot.count_ms,
            counts_kept: snapshot.counts_kept,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Stores every staged file the repository does not hold yet. Returns the entries (with
    /// whether each is new) and the size of what had to be read.
    fn copy_files(
        &mut self,
        snapshot: &Snapshot,
        parent: Option<&Manifest>,
    ) -> Result<(Vec<(FileEntry, bool)>, Transfer)> {
        let known: HashMap<&str, &FileEntry> = parent
            .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
            .unwrap_or_default();
        let mut done = Vec::new();
        let mut to_read: Vec<(&StagedFile, Option<&FileEntry>)> = Vec::new();
        for f in &snapshot.files {
            let before = known.get(f.path.as_str()).copied();
            let unchanged = before.filter(|b| {
                !self.options.rehash
                    && is_immutable(&f.path)
                    && b.size == f.size
                    && b.mtime_ns == f.mtime_ns
                    && self.repo.object_size(&b.sha256) == Some(b.size)
            });
            match unchanged {
                Some(b) => done.push((
                    FileEntry {
                        mtime_ns: f.mtime_ns,
                        ..b.clone()
                    },
                    false,
                )),
                None => to_read.push((f, before)),
            }
        }
        let bytes_total = to_read.iter().map(|(f, _)| f.size).sum();
        let observer = self.options.observer.clone();
        let job = &mut self.job;
        let mut report = move |t: Transfer| -> Result<()> {
            job.progress(JobProgress {
                fraction: if t.bytes_total == 0 {
                    1.0
                } else {
                    t.bytes_done as f64 / t.bytes_total as f64
                },
                items_done: t.files_done,
                items_total: t.files_total,
                bytes_done: t.bytes_done,
                bytes_total: t.bytes_total,
            })?;
            if let Some(o) = &observer {
                o(t);
            }
            job.checkpoint("copying files")
        };
        let interrupt = self.options.interrupt;
        let meter = Meter::new(to_read.len() as u64, bytes_total, &mut report, interrupt);
        meter.flush()?;
        let repo = &self.repo;
        let id = self.id;
        // A new object is synced and renamed into place by a thread of its own, so the disk
        // writes one file back while the workers copy and hash the next. Every rename is done
        // before the directories are synced below, and they before the manifest is written.
        let stored = transfer::alongside("placing the new objects", place_each, |placing| {
            transfer::parallel(&to_read, transfer::threads(), |(f, before)| {
                let r = store(repo, id, f, *before, &placing, &meter);
                meter.file_done()?;
                r
            })
        })?;
        meter.flush()?;
        let read = meter.now();
        // Make the new objects' names durable before the manifest that needs them (in a
        // bucket, an object exists once its upload completed).
        let dirs: BTreeSet<PathBuf> = stored
            .iter()
            .filter(|(_, new)| *new)
            .filter_map(|(f, _)| {
                let object = self.repo.object(&f.sha256);
                object
                    .as_local()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
            })
            .collect();
        for dir in dirs {
            sync_dir(&dir)?;
        }
        done.extend(stored);
        done.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok((done, read))
    }
}

/// Stores one file. Content the repository already holds is not written again: when the
/// previous backup had a file of this name and size, it is hashed first and copied only if
/// new; otherwise it is copied and hashed in one pass. In a directory repository, a new
/// object is written under `tmp/` and handed to `placing` (see [`place_each`]).
fn store(
    repo: &Repo,
    id: u64,
    f: &StagedFile,
    before: Option<&FileEntry>,
    placing: &std::sync::mpsc::Sender<(PathBuf, PathBuf)>,
    meter: &Meter<'_>,
) -> Result<(FileEntry, bool)> {
    let entry = |sha256: String, size: u64| FileEntry {
        path: f.path.clone(),
        size,
        sha256,
        mtime_ns: f.mtime_ns,
    };
    let staged = match &f.staged {
        ColdPath::Local(p) => p,
        ColdPath::Object(bucket, key) => {
            // Pinned in the repository's own bucket: hash it there, then copy it into place
            // server-side unless the repository holds it already.
            let (sha, size) = transfer::hash_object(&f.staged, meter)?;
            if repo.object_size(&sha) == Some(size) {
                return Ok((entry(sha, size), false));
            }
            let ColdPath::Object(_, to) = repo.object(&sha) else {
                return Err(CoreError::Query(format!(
                    "{} was pinned in a bucket, but the repository is a directory",
                    f.staged
                )));
            };
            bucket.copy(key, &to)?;
            return Ok((entry(sha, size), true));
        }
    };
    let Some(tmp_dir) = repo.tmp() else {
        // A bucket: hash the file, then upload it under its hash unless it is there. The
        // progress counts the upload (or, for content already there, the file at once).
        let (sha, size) = kalamdb_core::checksum::sha256_file(staged)?;
        if repo.object_size(&sha) == Some(size) {
            meter.bytes(size)?;
            return Ok((entry(sha, size), false));
        }
        transfer::upload(staged, &repo.object(&sha), repo.upload_journal(), meter)?;
        return Ok((entry(sha, size), true));
    };
    if before.is_some_and(|b| b.size == f.size) {
        let (sha, size) = transfer::hash_file(staged, meter)?;
        if repo.object_size(&sha) == Some(size) {
            return Ok((entry(sha, size), false));
        }
    }
    let tmp = tmp_dir.join(format!("{id}-{}.part", f.path.replace(['/', '\\'], "_")));
    let (sha, size) = transfer::copy_hashing(staged, &tmp, transfer::SyncWhen::Later, meter)?;
    let object = repo.object(&sha);
    if repo.object_size(&sha) == Some(size) {
        std::fs::remove_file(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        return Ok((entry(sha, size), false));
    }
    let Some(object) = object.as_local() else {
        return Err(CoreError::Query(format!("{object} is not a local path")));
    };
    // Refused only once the placer stopped on an error, which `transfer::alongside` returns.
    placing
        .send((tmp, object.to_path_buf()))
        .map_err(|_| CoreError::Query("the thread placing the new objects stopped early".into()))?;
    Ok((entry(sha, size), true))
}

/// Places each new object sent on `objects` as it arrives, until every sender is gone: syncs
/// the file written under `tmp/`, makes it read-only and renames it to its name under
/// `objects/` (whose directory it creates durably). An object is never visible under its
/// name before its bytes are on disk. Stops at the first error, which it returns.
fn place_each(objects: std::sync::mpsc::Receiver<(PathBuf, PathBuf)>) -> Result<()> {
    for (tmp, object) in objects {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| CoreError::io(&tmp, e))?;
        set_read_only(&tmp)?;
        if let Some(dir) = object.parent() {
            kalamdb_core::fs::create_dir_durable(dir)?;
        }
        std::fs::rename(&tmp, &object).map_err(|e| CoreError::io(&object, e))?;
    }
    Ok(())
}

fn set_read_only(path: &Path) -> Result<()> {
    let mut perms = std::fs::metadata(path)
        .map_err(|e| CoreError::io(path, e))?
        .permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(path, perms).map_err(|e| CoreError::io(path, e))
}

/// Files nobody rewrites in place once written: RocksDB's SST files and Parquet batches.
pub fn is_immutable(path: &str) -> bool {
    path.ends_with(".sst") || path.ends_with(".parquet")
}

/// Decides, without writing anything, whether `repo` can take a backup of the data directory
/// `data_dir`: a directory not inside it, and a repository or a new or empty directory (or
/// bucket prefix). kalamctl calls it before it opens the database, so a refusal changes
/// nothing. Returns the repository with an absolute path.
pub fn check_repository(data_dir: &Path, repo: &RepoLocation) -> Result<RepoLocation> {
    let location = match repo {
        RepoLocation::Dir(path) => {
            let root = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            let repo_path = absolute(path)?;
            if repo_path.starts_with(&root) {
                return Err(CoreError::InvalidInput(format!(
                    "the repository {} is inside the data directory {}, and would be lost with it; pick a path outside",
                    repo_path.display(),
                    root.display()
                )));
            }
            RepoLocation::Dir(repo_path)
        }
        s3 => s3.clone(),
    };
    Repo::check_usable(&location)?;
    Ok(location)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| CoreError::io(path, e))?;
    // Resolve symlinks of the part that exists, so "inside the data directory" is decided
    // on real paths.
    Ok(std::fs::canonicalize(&abs).unwrap_or(abs))
}
