//! The backup repository on disk.
//!
//! ```text
//! REPO/
//!   kalamdb-backup.json      marks the directory as a repository
//!   objects/ab/ab12…         file contents, named by their SHA-256, shared by all backups
//!   backups/3.json           one manifest per complete backup
//!   backups/4.partial        a backup being written (or killed): never listed as complete
//!   tmp/                     objects being written
//!   lock, writer.lock        flock locks (see [`Repo::lock`])
//! ```
//!
//! Objects are written to `tmp/`, synced and renamed into place; a manifest likewise, last.
//! So after a crash the repository holds complete objects, complete manifests, and debris in
//! `tmp/` and `*.partial`, which the next writer removes.
//!
//! A repository may also be a prefix in an S3 bucket (`s3://bucket/prefix`), with the same
//! keys under it. There an object or manifest appears whole when its upload completes; `tmp/{id}/`
//! holds only the cold-tier objects of the same bucket that backup `id` copied in server-side
//! before hashing them (see [`Repo::pin_area`]), `tmp/uploads/` records the multipart uploads
//! the writer has open (see [`Repo::upload_journal`]), and the locks are objects under `locks/`
//! created with a conditional `PUT` (see [`Repo::lock`]).

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::location::RepoLocation;
use super::manifest::Manifest;
use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::object::{Bucket, Key, UploadJournal};
use kalamdb_core::cold::uploads::Uploads;
use kalamdb_core::fs::remove_tree;
use kalamdb_core::{CoreError, Result};

const MARKER: &str = "kalamdb-backup.json";
const REPO_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    repository_version: u32,
    created_at: i64,
    /// The highest backup id ever started here: ids are never reused, so a job row that
    /// names backup N names one backup.
    #[serde(default)]
    last_id: u64,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    location: RepoLocation,
    /// Its root directory, or its prefix in a bucket.
    root: ColdPath,
}

/// How a command shares the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// list, verify, restore: they only read.
    Read,
    /// create: adds objects and one manifest; readers may run meanwhile.
    Write,
    /// prune: deletes; nothing else may run.
    Exclusive,
}

/// Held locks; released on drop: flock'd files in a directory, lock objects in a bucket.
#[derive(Debug)]
pub struct RepoLock {
    _files: Vec<File>,
    objects: Vec<ColdPath>,
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        for o in &self.objects {
            let _ = o.remove_durable();
        }
    }
}

/// What a lock object in a bucket says of its holder.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since: i64,
}

/// Who a lock object names, in words.
fn holder_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<Holder>(bytes)
        .map(|h| format!("pid {} on {}", h.pid, h.host))
        .unwrap_or_else(|_| "an unknown process".into())
}

/// A lock object `unlock` found, and whether it removed it.
#[derive(Debug, Clone, Serialize)]
pub struct FoundLock {
    pub lock: String,
    /// `pid N on HOST`, or `an unknown process`.
    pub holder: String,
    pub removed: bool,
    /// Why it was removed or kept.
    pub reason: String,
}

/// A manifest found in `backups/`: its id, and the manifest or why it is unusable.
#[derive(Debug)]
pub struct Listed {
    pub id: u64,
    pub path: String,
    pub manifest: std::result::Result<Manifest, String>,
}

impl Repo {
    /// Opens an existing repository.
    pub fn open(location: &RepoLocation) -> Result<Repo> {
        let repo = Self::at(location)?;
        repo.read_marker()?;
        Ok(repo)
    }

    fn at(location: &RepoLocation) -> Result<Repo> {
        Ok(Repo {
            location: location.clone(),
            root: location.root()?,
        })
    }

    fn read_marker(&self) -> Result<Marker> {
        let marker = self.root.join(MARKER);
        let Some(bytes) = marker.read()? else {
            return Err(CoreError::NotFound(format!(
                "{} is not a backup repository (no {MARKER}); create one with `kalamctl backup create --data-dir D --to {}`",
                self.location, self.location
            )));
        };
        let m: Marker = serde_json::from_slice(&bytes)
            .map_err(|e| CoreError::BackupDamaged(format!("{marker}: unreadable: {e}")))?;
        if m.repository_version > REPO_VERSION {
            return Err(CoreError::InvalidInput(format!(
                "{} is a version {} repository, newer than this build's ({REPO_VERSION}); upgrade kalamctl",
                self.location, m.repository_version
            )));
        }
        Ok(m)
    }

    fn write_marker(&self, marker: &Marker) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(marker).map_err(|e| CoreError::Query(e.to_string()))?;
        self.root.join(MARKER).write_atomically(&bytes)
    }

    /// Whether [`Repo::open_or_create`] would accept `location`, decided without writing:
    /// a repository this build reads, or a new or empty directory (or prefix).
    pub fn check_usable(location: &RepoLocation) -> Result<()> {
        let repo = Self::at(location)?;
        if repo.root.join(MARKER).size()?.is_some() {
            return repo.read_marker().map(|_| ());
        }
        let empty = match &repo.root {
            ColdPath::Local(path) => match std::fs::read_dir(path) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(CoreError::io(path, e)),
            },
            root => !root.is_dir()?,
        };
        if !empty {
            return Err(CoreError::InvalidInput(format!(
                "{location} is not empty and not a backup repository; pick a new or empty {}",
                if location.as_dir().is_some() {
                    "directory"
                } else {
                    "prefix"
                }
            )));
        }
        Ok(())
    }

    /// Opens a repository, creating it in a new or empty directory (or prefix).
    pub fn open_or_create(location: &RepoLocation) -> Result<Repo> {
        let repo = Self::at(location)?;
        if repo.root.join(MARKER).size()?.is_some() {
            return Self::open(location);
        }
        Self::check_usable(location)?;
        if let Some(root) = repo.root.as_local() {
            for dir in ["objects", "backups", "tmp"] {
                kalamdb_core::fs::create_dir_durable(&root.join(dir))?;
            }
        }
        repo.write_marker(&Marker {
            repository_version: REPO_VERSION,
            created_at: kalamdb_store::now_ms(),
            last_id: 0,
        })?;
        Ok(repo)
    }

    pub fn location(&self) -> &RepoLocation {
        &self.location
    }

    /// The local directory of a directory repository.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.root.as_local()
    }

    fn backups(&self) -> ColdPath {
        self.root.join("backups")
    }

    /// Where objects are written before they are renamed into place (directories only:
    /// an object in a bucket appears whole when its upload completes).
    pub fn tmp(&self) -> Option<PathBuf> {
        self.local_root().map(|r| r.join("tmp"))
    }

    /// A bucket repository's bucket, and the prefix where backup `id` may put objects it
    /// copies in server-side before it knows their hash (removed when the backup ends, and by
    /// [`Repo::clean_debris`] after a killed one).
    pub fn pin_area(&self, id: u64) -> Option<(Arc<Bucket>, Key)> {
        match self.root.join("tmp").join(&id.to_string()) {
            ColdPath::Object(b, k) => Some((b, k)),
            ColdPath::Local(_) => None,
        }
    }

    /// Where the object with this SHA-256 lives.
    pub fn object(&self, sha256: &str) -> ColdPath {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join("objects").join(prefix).join(sha256)
    }

    /// The size of the object with this SHA-256, if the repository holds it.
    pub fn object_size(&self, sha256: &str) -> Option<u64> {
        self.object(sha256).size().ok().flatten()
    }

    pub fn manifest_path(&self, id: u64) -> ColdPath {
        self.backups().join(&format!("{id}.json"))
    }
    fn partial_path(&self, id: u64) -> ColdPath {
        self.backups().join(&format!("{id}.partial"))
    }

    /// Takes the locks `mode` needs, or says who holds them.
    pub fn lock(&self, mode: LockMode) -> Result<RepoLock> {
        match self.root.as_local() {
            Some(root) => self.lock_files(root, mode),
            None => self.lock_objects(mode),
        }
    }

    fn busy(&self, what: &str) -> CoreError {
        CoreError::Locked {
            path: self.location.to_string(),
            holder: what.to_string(),
        }
    }

    fn lock_files(&self, root: &std::path::Path, mode: LockMode) -> Result<RepoLock> {
        let open = |name: &str| -> Result<File> {
            let path = root.join(name);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| CoreError::io(&path, e))
        };
        let mut files = Vec::new();
        let main = open("lock")?;
        let shared = match mode {
            LockMode::Exclusive => main.try_lock(),
            _ => main.try_lock_shared(),
        };
        shared.map_err(|_| {
            self.busy(if mode == LockMode::Exclusive {
                "another kalamctl backup command"
            } else {
                "kalamctl backup prune"
            })
        })?;
        files.push(main);
        if mode == LockMode::Write {
            let writer = open("writer.lock")?;
            writer
                .try_lock()
                .map_err(|_| self.busy("another backup being created"))?;
            files.push(writer);
        }
        Ok(RepoLock {
            _files: files,
            objects: Vec::new(),
        })
    }

    /// In a bucket, locks are objects created only if absent (a conditional `PUT`):
    /// `locks/writer` for create, `locks/exclusive` for prune. Readers take none but refuse
    /// while a prune holds the repository. A lock left by a process of this host that is
    /// gone is taken over; one from another host names its holder and how to remove it.
    fn lock_objects(&self, mode: LockMode) -> Result<RepoLock> {
        let locks = self.root.join("locks");
        let (writer, exclusive) = (locks.join("writer"), locks.join("exclusive"));
        let mut held = RepoLock {
            _files: Vec::new(),
            objects: Vec::new(),
        };
        match mode {
            LockMode::Read => self.refuse_if_held(&exclusive, "kalamctl backup prune")?,
            LockMode::Write => {
                self.refuse_if_held(&exclusive, "kalamctl backup prune")?;
                self.take(&writer, "another backup being created")?;
                held.objects.push(writer);
            }
            LockMode::Exclusive => {
                self.take(&exclusive, "another kalamctl backup prune")?;
                held.objects.push(exclusive);
                // Dropping `held` releases the exclusive lock if a writer is running.
                self.refuse_if_held(&writer, "a backup being created")?;
            }
        }
        Ok(held)
    }

    fn take(&self, lock: &ColdPath, what: &str) -> Result<()> {
        let me = Holder {
            pid: std::process::id(),
            host: kalamdb_core::process::hostname(),
            since: kalamdb_store::now_ms(),
        };
        let bytes = serde_json::to_vec(&me).map_err(|e| CoreError::Query(e.to_string()))?;
        if lock.create_new(&bytes)? {
            return Ok(());
        }
        if self.stale(lock)? {
            lock.remove_durable()?;
            if lock.create_new(&bytes)? {
                return Ok(());
            }
        }
        self.refuse_if_held(lock, what)
    }

    /// Whether `lock` was left by a process of this host that no longer runs.
    fn stale(&self, lock: &ColdPath) -> Result<bool> {
        let Some(bytes) = lock.read()? else {
            return Ok(false);
        };
        let Ok(h) = serde_json::from_slice::<Holder>(&bytes) else {
            return Ok(false);
        };
        Ok(h.host == kalamdb_core::process::hostname()
            && h.pid != std::process::id()
            && !kalamdb_core::process::is_alive(h.pid))
    }

    fn refuse_if_held(&self, lock: &ColdPath, what: &str) -> Result<()> {
        let Some(bytes) = lock.read()? else {
            return Ok(());
        };
        if self.stale(lock)? {
            return Ok(());
        }
        Err(self.busy(&format!(
            "{what} ({}, lock {lock}); if that process is gone, run `kalamctl backup unlock {} --remove-all` with the same --credentials",
            holder_of(&bytes),
            self.location
        )))
    }

    /// Removes the lock objects of a bucket repository whose holder is gone (a process of
    /// this host that no longer runs), or every one with `all`, and says what it found. A
    /// directory repository's locks are `flock`s, which end with their holder: there is
    /// never one to remove.
    pub fn unlock(&self, all: bool) -> Result<Vec<FoundLock>> {
        if self.root.as_local().is_some() {
            return Ok(Vec::new());
        }
        let locks = self.root.join("locks");
        let mut found = Vec::new();
        for name in ["writer", "exclusive"] {
            let lock = locks.join(name);
            let Some(bytes) = lock.read()? else {
                continue;
            };
            let holder = holder_of(&bytes);
            let stale = self.stale(&lock)?;
            let (removed, reason) = match (stale, all) {
                (true, _) => (true, "its process no longer runs on this host"),
                (false, true) => (true, "--remove-all"),
                (false, false) => (
                    false,
                    "its holder may still run; if it is gone, use --remove-all",
                ),
            };
            if removed {
                lock.remove_durable()?;
            }
            found.push(FoundLock {
                lock: lock.to_string(),
                holder,
                removed,
                reason: reason.to_string(),
            });
        }
        Ok(found)
    }

    /// Every manifest, in id order. Unusable ones are listed with the reason.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for (id, path) in self.entries("json")? {
            let manifest = match path.read() {
                Ok(Some(bytes)) => Manifest::parse(&bytes).and_then(|m| {
                    if m.id == id {
                        Ok(m)
                    } else {
                        Err(format!("it names backup {}, not {id}", m.id))
                    }
                }),
                Ok(None) => Err("it is gone".to_string()),
                Err(e) => Err(format!("unreadable: {e}")),
            };
            out.push(Listed {
                id,
                path: path.to_string(),
                manifest,
            });
        }
        Ok(out)
    }

    /// Ids of backups that were started and never completed.
    pub fn partials(&self) -> Result<Vec<u64>> {
        Ok(self
            .entries("partial")?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    fn entries(&self, ext: &str) -> Result<Vec<(u64, ColdPath)>> {
        let mut out = Vec::new();
        for (path, _) in self.backups().files()? {
            let Some((stem, e)) = path.file_name().and_then(|n| n.rsplit_once('.')) else {
                continue;
            };
            if e != ext {
                continue;
            }
            if let Ok(id) = stem.parse::<u64>() {
                out.push((id, path));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// One complete backup by id, or the newest.
    pub fn manifest(&self, id: Option<u64>) -> Result<Manifest> {
        let listed = self.list()?;
        let found = match id {
            Some(id) => listed.into_iter().find(|l| l.id == id),
            None => listed.into_iter().rev().find(|l| l.manifest.is_ok()),
        };
        match found {
            Some(l) => l.manifest.map_err(|why| {
                CoreError::BackupDamaged(format!(
                    "backup {} cannot be used: {} {why}",
                    l.id, l.path
                ))
            }),
            None => Err(CoreError::NotFound(match id {
                Some(id) => format!(
                    "{} has no backup {id}; `kalamctl backup list {}` shows them",
                    self.location, self.location
                ),
                None => format!("{} holds no complete backup", self.location),
            })),
        }
    }

    /// Starts backup `id`: from here until [`Repo::commit`], it is listed as incomplete.
    /// Needs the write lock.
    pub fn begin(&self) -> Result<u64> {
        let mut marker = self.read_marker()?;
        let ids = self.entries("json")?.into_iter().map(|(id, _)| id);
        let partials = self.partials()?.into_iter();
        let id = ids.chain(partials).fold(marker.last_id, u64::max) + 1;
        marker.last_id = id;
        self.write_marker(&marker)?;
        let body = format!("{{\"pid\": {}}}\n", std::process::id());
        self.partial_path(id).write_atomically(body.as_bytes())?;
        Ok(id)
    }

    /// Completes a backup: the manifest appears, atomically, and the partial marker goes.
    pub fn commit(&self, manifest: &mut Manifest) -> Result<()> {
        let bytes = manifest.seal()?;
        self.manifest_path(manifest.id).write_atomically(&bytes)?;
        self.abandon(manifest.id)
    }

    /// Forgets a started backup (its objects stay until prune).
    pub fn abandon(&self, id: u64) -> Result<()> {
        self.partial_path(id).remove_durable()
    }

    /// Removes what killed writers left: partial markers, files in `tmp/`, and (in a bucket)
    /// the multipart uploads they left open. Needs the write or exclusive lock, so no writer
    /// is running.
    pub fn clean_debris(&self) -> Result<Debris> {
        let mut debris = Debris::default();
        for id in self.partials()? {
            self.abandon(id)?;
            debris.incomplete += 1;
        }
        match self.tmp() {
            Some(tmp) => {
                remove_tree(&tmp)?;
                kalamdb_core::fs::create_dir_durable(&tmp)?;
            }
            None => {
                debris.uploads_aborted = self.uploads().abort_all()?.len() as u64;
                for (object, _) in self.root.join("tmp").files_under()? {
                    object.remove()?;
                }
            }
        }
        Ok(debris)
    }

    /// Where a bucket repository's writer records its open multipart uploads (`tmp/uploads/`),
    /// so that [`Repo::clean_debris`] aborts those a killed writer left; `None` for a
    /// directory.
    pub fn upload_journal(&self) -> Option<Arc<dyn UploadJournal>> {
        match &self.root {
            ColdPath::Local(_) => None,
            ColdPath::Object(bucket, _) => Some(self.uploads().of("").journal(bucket)),
        }
    }

    fn uploads(&self) -> Uploads {
        Uploads::new(self.root.join("tmp").join("uploads"))
    }

    /// Deletes manifests (for prune).
    pub fn delete_manifest(&self, id: u64) -> Result<()> {
        let path = self.manifest_path(id);
        match path.remove()? {
            Some(_) => self.backups().sync_dir(),
            None => Err(CoreError::NotFound(format!("{path} is gone"))),
        }
    }

    /// Every object in the repository: (SHA-256, where, size).
    pub fn objects_on_disk(&self) -> Result<Vec<(String, ColdPath, u64)>> {
        let mut out = Vec::new();
        for (path, size) in self.root.join("objects").files_under()? {
            if let Some(name) = path.file_name().map(str::to_string) {
                out.push((name, path, size));
            }
        }
        Ok(out)
    }
}

/// What [`Repo::clean_debris`] removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Debris {
    /// Partial markers of backups that never completed.
    pub incomplete: u64,
    /// Multipart uploads a killed writer had left open.
    pub uploads_aborted: u64,
}
