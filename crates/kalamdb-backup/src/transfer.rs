//! Moving file contents with their SHA-256 computed on the way, on every core, with progress
//! in bytes and a way to stop.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use kalamdb_core::{CoreError, Result};

const REPORT_EVERY: Duration = Duration::from_millis(100);

/// How far a run has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub phase: Phase,
    /// Files; column families while verifying; tables while counting.
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What a run is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Reading, hashing or writing file contents.
    #[default]
    Copying,
    /// `verify` over a restored copy, which also counts every table's rows: column
    /// families, and the key and value bytes read (no total: it is not known ahead).
    Verifying,
}

/// Called with progress (from any thread, at most every 100 ms, and once at the end).
pub type Observer = std::sync::Arc<dyn Fn(Transfer) + Send + Sync>;

/// Counts progress across worker threads and reports it, also asking whether to stop.
pub struct Meter<'a> {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    last: Mutex<Instant>,
    report: Mutex<&'a mut (dyn FnMut(Transfer) -> Result<()> + Send)>,
    interrupt: Option<&'a AtomicBool>,
}

impl<'a> Meter<'a> {
    pub fn new(
        files_total: u64,
        bytes_total: u64,
        report: &'a mut (dyn FnMut(Transfer) -> Result<()> + Send),
        interrupt: Option<&'a AtomicBool>,
    ) -> Self {
        Meter {
            files_total,
            bytes_total,
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            report: Mutex::new(report),
            interrupt,
        }
    }

    pub fn now(&self) -> Transfer {
        Transfer {
            phase: Phase::Copying,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
        }
    }

    /// Adds bytes; reports if it is time. Fails when the run must stop.
    pub fn bytes(&self, n: u64) -> Result<()> {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.tick(false)
    }

    pub fn file_done(&self) -> Result<()> {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.tick(false)
    }

    /// Reports now (at the end).
    pub fn flush(&self) -> Result<()> {
        self.tick(true)
    }

    fn tick(&self, force: bool) -> Result<()> {
        if self.interrupt.is_some_and(|i| i.load(Ordering::Relaxed)) {
            return Err(CoreError::Cancelled {
                job_id: "this run".into(),
                at: "an interrupt (the work done so far was discarded)".into(),
            });
        }
        {
            let Ok(mut last) = self.last.lock() else {
                return Ok(());
            };
            if !force && last.elapsed() < REPORT_EVERY {
                return Ok(());
            }
            *last = Instant::now();
        }
        let transfer = self.now();
        match self.report.lock() {
            Ok(mut report) => report(transfer),
            Err(_) => Ok(()),
        }
    }
}

pub use kalamdb_core::parallel::{parallel, threads};

/// Copies `from` to a new file `to`, returning its SHA-256 and size. The copy is synced
/// when `sync` says so; otherwise the caller syncs it (see [`sync_each`]).
pub fn copy_hashing(
    from: &Path,
    to: &Path,
    sync: SyncWhen,
    meter: &Meter<'_>,
) -> Result<(String, u64)> {
    let mut dst = File::create(to).map_err(|e| CoreError::io(to, e))?;
    let hashed = read_hashing(from, Some((to, &mut dst)), meter)?;
    if sync == SyncWhen::Now {
        dst.sync_all().map_err(|e| CoreError::io(to, e))?;
    }
    Ok(hashed)
}

/// Whether a written file is synced as soon as it is written, or later by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWhen {
    Now,
    Later,
}

/// Syncs each file sent on `files` as it arrives, until every sender is gone: run on a
/// thread of its own, it has the disk write back files already copied while the copy goes on.
/// A file that is gone is skipped (its directory's sync makes the removal durable).
pub fn sync_each(files: std::sync::mpsc::Receiver<PathBuf>) -> Result<()> {
    for f in files {
        match File::open(&f) {
            Ok(file) => file.sync_all().map_err(|e| CoreError::io(&f, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io(&f, e)),
        }
    }
    Ok(())
}

/// Runs `work` while a thread of its own runs `background` over what `work` sends it (files
/// to sync, say), and waits for both. `work` drops its sender when it has nothing more to
/// send. A failure of `background` is returned first (a disk that failed a sync, say: what
/// `work` then met, such as a send refused, follows from it), else `work`'s. `what` names
/// the background thread, should it panic.
pub fn alongside<T: Send, R>(
    what: &str,
    background: impl FnOnce(std::sync::mpsc::Receiver<T>) -> Result<()> + Send,
    work: impl FnOnce(std::sync::mpsc::Sender<T>) -> Result<R>,
) -> Result<R> {
    let (sender, receiver) = std::sync::mpsc::channel::<T>();
    std::thread::scope(|s| {
        let behind = s.spawn(|| background(receiver));
        let done = work(sender);
        let finished = behind
            .join()
            .unwrap_or_else(|_| Err(CoreError::Query(format!("the thread {what} panicked"))));
        finished.and(done)
    })
}

/// Past this many bytes an upload is a multipart upload with a part sent.
const UPLOAD_PART_MARK: u64 = 9 << 20;

/// Uploads `from` to the object `to` as it reads it (a multipart upload past one part), so
/// that the object appears, whole, only at the end; an interrupted upload is aborted, and
/// one a killed process could not abort stays on record in `journal`.
pub fn upload(
    from: &Path,
    to: &kalamdb_core::cold::ColdPath,
    journal: Option<std::sync::Arc<dyn kalamdb_core::cold::object::UploadJournal>>,
    meter: &Meter<'_>,
) -> Result<()> {
    let kalamdb_core::cold::ColdPath::Object(bucket, key) = to else {
        return Err(CoreError::Query(format!("{to} is not an object")));
    };
    let mut writer = bucket.writer(key.clone());
    if let Some(journal) = journal {
        writer = writer.journaled(journal);
    }
    let mut sent = 0u64;
    kalamdb_core::checksum::sha256_chunks(from, |chunk| {
        writer
            .write_all(chunk)
            .map_err(|e| CoreError::ObjectStore {
                location: to.to_string(),
                reason: e.to_string(),
            })?;
        let before = sent;
        sent = sent.saturating_add(chunk.len() as u64);
        // Once, when the first part has gone up: a multipart upload is in progress.
        if before < UPLOAD_PART_MARK && sent >= UPLOAD_PART_MARK {
            kalamdb_core::fail::point("backup.uploading");
        }
        meter.bytes(chunk.len() as u64)
    })?;
    writer.finish()
}

/// Downloads the object `from` into a new file `to`, not synced (see [`sync_files`]),
/// returning its SHA-256 and size.
pub fn download_hashing(
    from: &kalamdb_core::cold::ColdPath,
    to: &Path,
    meter: &Meter<'_>,
) -> Result<(String, u64)> {
    let mut dst = File::create(to).map_err(|e| CoreError::io(to, e))?;
    from.sha256_chunks(|chunk| {
        dst.write_all(chunk).map_err(|e| CoreError::io(to, e))?;
        meter.bytes(chunk.len() as u64)
    })
}

/// The SHA-256 and size of a file (or object).
pub fn hash_object(
    path: &kalamdb_core::cold::ColdPath,
    meter: &Meter<'_>,
) -> Result<(String, u64)> {
    path.sha256_chunks(|chunk| meter.bytes(chunk.len() as u64))
}

/// The SHA-256 and size of a file.
pub fn hash_file(path: &Path, meter: &Meter<'_>) -> Result<(String, u64)> {
    read_hashing(path, None, meter)
}

/// Reads `from` in chunks, hashing it and writing each chunk to `copy` if given.
fn read_hashing(
    from: &Path,
    mut copy: Option<(&Path, &mut File)>,
    meter: &Meter<'_>,
) -> Result<(String, u64)> {
    kalamdb_core::checksum::sha256_chunks(from, |chunk| {
        if let Some((to, dst)) = copy.as_mut() {
            dst.write_all(chunk).map_err(|e| CoreError::io(to, e))?;
        }
        meter.bytes(chunk.len() as u64)
    })
}
