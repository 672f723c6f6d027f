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

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use kalamdb_core::fs::{remove_tree, sync_dir, write_atomically};
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
    root: PathBuf,
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

/// Held locks; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _files: Vec<File>,
}

/// A manifest file found in `backups/`: its id, and the manifest or why it is unusable.
#[derive(Debug)]
pub struct Listed {
    pub id: u64,
    pub path: PathBuf,
    pub manifest: std::result::Result<Manifest, String>,
}

impl Repo {
    /// Opens an existing repository.
    pub fn open(path: &Path) -> Result<Repo> {
        Self::read_marker(path)?;
        Ok(Repo {
            root: path.to_path_buf(),
        })
    }

    fn read_marker(path: &Path) -> Result<Marker> {
        let marker = path.join(MARKER);
        let bytes = match std::fs::read(&marker) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoreError::NotFound(format!(
                    "{} is not a backup repository (no {MARKER}); create one with `kalamctl backup create --data-dir D --to {}`",
                    path.display(),
                    path.display()
                )));
            }
            Err(e) => return Err(CoreError::io(&marker, e)),
        };
        let m: Marker = serde_json::from_slice(&bytes).map_err(|e| {
            CoreError::BackupDamaged(format!("{}: unreadable: {e}", marker.display()))
        })?;
        if m.repository_version > REPO_VERSION {
            return Err(CoreError::InvalidInput(format!(
                "{} is a version {} repository, newer than this build's ({REPO_VERSION}); upgrade kalamctl",
                path.display(),
                m.repository_version
            )));
        }
        Ok(m)
    }

    fn write_marker(&self, marker: &Marker) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(marker).map_err(|e| CoreError::Query(e.to_string()))?;
        write_atomically(&self.tmp(), &self.root.join(MARKER), &bytes, 0o644)
    }

    /// Whether [`Repo::open_or_create`] would accept `path`, decided without writing: a
    /// repository this build reads, or a new or empty directory.
    pub fn check_usable(path: &Path) -> Result<()> {
        if path.join(MARKER).exists() {
            return Self::open(path).map(|_| ());
        }
        if path.exists() {
            let mut entries = std::fs::read_dir(path).map_err(|e| CoreError::io(path, e))?;
            if entries.next().is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "{} is not empty and not a backup repository; pick a new or empty directory",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Opens a repository, creating it in a new or empty directory.
    pub fn open_or_create(path: &Path) -> Result<Repo> {
        if path.join(MARKER).exists() {
            return Self::open(path);
        }
        Self::check_usable(path)?;
        let repo = Repo {
            root: path.to_path_buf(),
        };
        for dir in [repo.objects(), repo.backups(), repo.tmp()] {
            kalamdb_core::fs::create_dir_durable(&dir)?;
        }
        repo.write_marker(&Marker {
            repository_version: REPO_VERSION,
            created_at: kalamdb_store::now_ms(),
            last_id: 0,
        })?;
        Ok(repo)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the object with this SHA-256 lives.
    pub fn object(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.objects().join(prefix).join(sha256)
    }

    pub fn manifest_path(&self, id: u64) -> PathBuf {
        self.backups().join(format!("{id}.json"))
    }
    fn partial_path(&self, id: u64) -> PathBuf {
        self.backups().join(format!("{id}.partial"))
    }

    /// Takes the locks `mode` needs, or says who holds them.
    pub fn lock(&self, mode: LockMode) -> Result<RepoLock> {
        let open = |name: &str| -> Result<File> {
            let path = self.root.join(name);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| CoreError::io(&path, e))
        };
        let busy = |what: &str| CoreError::Locked {
            path: self.root.display().to_string(),
            holder: what.to_string(),
        };
        let mut files = Vec::new();
        let main = open("lock")?;
        let shared = match mode {
            LockMode::Exclusive => main.try_lock(),
            _ => main.try_lock_shared(),
        };
        shared.map_err(|_| {
            busy(if mode == LockMode::Exclusive {
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
                .map_err(|_| busy("another backup being created"))?;
            files.push(writer);
        }
        Ok(RepoLock { _files: files })
    }

    /// Every manifest, in id order. Unusable ones are listed with the reason.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for (id, path) in self.entries("json")? {
            let manifest = match std::fs::read(&path) {
                Ok(bytes) => Manifest::parse(&bytes).and_then(|m| {
                    if m.id == id {
                        Ok(m)
                    } else {
                        Err(format!("it names backup {}, not {id}", m.id))
                    }
                }),
                Err(e) => Err(format!("unreadable: {e}")),
            };
            out.push(Listed { id, path, manifest });
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

    fn entries(&self, ext: &str) -> Result<Vec<(u64, PathBuf)>> {
        let dir = self.backups();
        let entries = std::fs::read_dir(&dir).map_err(|e| CoreError::io(&dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| CoreError::io(&dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(ext) {
                continue;
            }
            if let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push((id, path));
            }
        }
        out.sort();
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
                    l.id,
                    l.path.display()
                ))
            }),
            None => Err(CoreError::NotFound(match id {
                Some(id) => format!(
                    "{} has no backup {id}; `kalamctl backup list {}` shows them",
                    self.root.display(),
                    self.root.display()
                ),
                None => format!("{} holds no complete backup", self.root.display()),
            })),
        }
    }

    /// Starts backup `id`: from here until [`Repo::commit`], it is listed as incomplete.
    /// Needs the write lock.
    pub fn begin(&self) -> Result<u64> {
        let mut marker = Self::read_marker(&self.root)?;
        let ids = self.entries("json")?.into_iter().map(|(id, _)| id);
        let partials = self.partials()?.into_iter();
        let id = ids.chain(partials).fold(marker.last_id, u64::max) + 1;
        marker.last_id = id;
        self.write_marker(&marker)?;
        let path = self.partial_path(id);
        let body = format!("{{\"pid\": {}}}\n", std::process::id());
        std::fs::write(&path, body).map_err(|e| CoreError::io(&path, e))?;
        Ok(id)
    }

    /// Completes a backup: the manifest appears, atomically, and the partial marker goes.
    pub fn commit(&self, manifest: &mut Manifest) -> Result<()> {
        let bytes = manifest.seal()?;
        write_atomically(&self.tmp(), &self.manifest_path(manifest.id), &bytes, 0o644)?;
        self.abandon(manifest.id)
    }

    /// Forgets a started backup (its objects stay until prune).
    pub fn abandon(&self, id: u64) -> Result<()> {
        let partial = self.partial_path(id);
        match std::fs::remove_file(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io(&partial, e)),
        }
        sync_dir(&self.backups())
    }

    /// Removes what killed writers left: partial markers and files in `tmp/`. Needs the write
    /// or exclusive lock, so no writer is running.
    pub fn clean_debris(&self) -> Result<u64> {
        let mut removed = 0;
        for id in self.partials()? {
            self.abandon(id)?;
            removed += 1;
        }
        let tmp = self.tmp();
        remove_tree(&tmp)?;
        kalamdb_core::fs::create_dir_durable(&tmp)?;
        Ok(removed)
    }

    /// Deletes manifests (for prune).
    pub fn delete_manifest(&self, id: u64) -> Result<()> {
        let path = self.manifest_path(id);
        std::fs::remove_file(&path).map_err(|e| CoreError::io(&path, e))?;
        sync_dir(&self.backups())
    }

    /// Every object in the repository: (SHA-256, path, size).
    pub fn objects_on_disk(&self) -> Result<Vec<(String, PathBuf, u64)>> {
        let mut out = Vec::new();
        let root = self.objects();
        let dirs = std::fs::read_dir(&root).map_err(|e| CoreError::io(&root, e))?;
        for dir in dirs {
            let dir = dir.map_err(|e| CoreError::io(&root, e))?.path();
            if !dir.is_dir() {
                continue;
            }
            let files = std::fs::read_dir(&dir).map_err(|e| CoreError::io(&dir, e))?;
            for f in files {
                let f = f.map_err(|e| CoreError::io(&dir, e))?;
                let size = f.metadata().map_err(|e| CoreError::io(f.path(), e))?.len();
                let name = f.file_name().to_string_lossy().into_owned();
                out.push((name, f.path(), size));
            }
        }
        Ok(out)
    }
}
