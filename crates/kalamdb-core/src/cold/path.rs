//! Where a batch file lives: a path on the local file system, or an object in a bucket. Every
//! place that touches cold files (flush, reads, drop, verify, backup) goes through this one
//! type, so a table on S3 and a table on a local disk take the same code paths.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as Key;

use super::object::Bucket;
use crate::{CoreError, Result};

/// A batch file or a directory of them (a key prefix, on object storage).
#[derive(Clone, Debug)]
pub enum ColdPath {
    Local(PathBuf),
    Object(Arc<Bucket>, Key),
}

impl ColdPath {
    /// The entry `name` within this directory.
    pub fn join(&self, name: &str) -> ColdPath {
        match self {
            ColdPath::Local(p) => ColdPath::Local(p.join(name)),
            ColdPath::Object(b, k) => ColdPath::Object(Arc::clone(b), join_key(k, name)),
        }
    }

    /// The last segment.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            ColdPath::Local(p) => p.file_name().and_then(|n| n.to_str()),
            ColdPath::Object(_, k) => k.filename(),
        }
    }

    /// The local path, for a file on the local file system.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            ColdPath::Local(p) => Some(p),
            ColdPath::Object(..) => None,
        }
    }

    /// Whether `self` is `dir` or lies under it.
    pub fn starts_with(&self, dir: &ColdPath) -> bool {
        match (self, dir) {
            (ColdPath::Local(p), ColdPath::Local(d)) => p.starts_with(d),
            (ColdPath::Object(b, k), ColdPath::Object(db, dk)) => {
                b.name() == db.name() && (dk.as_ref().is_empty() || k.prefix_matches(dk))
            }
            _ => false,
        }
    }

    /// The size of the file; `None` if there is none.
    pub fn size(&self) -> Result<Option<u64>> {
        match self {
            ColdPath::Local(p) => match std::fs::metadata(p) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CoreError::io(p, e)),
            },
            ColdPath::Object(b, k) => Ok(b.head(k)?.map(|m| m.size)),
        }
    }

    /// Removes the file and returns its size; `None` if it was gone already. Not yet
    /// durable on a local disk: the caller fsyncs the directory (see [`ColdPath::sync_dir`]).
    pub fn remove(&self) -> Result<Option<u64>> {
        match self {
            ColdPath::Local(p) => {
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                match std::fs::remove_file(p) {
                    Ok(()) => Ok(Some(size)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CoreError::io(p, e)),
                }
            }
            ColdPath::Object(b, k) => match b.head(k)? {
                Some(m) => {
                    b.delete(k)?;
                    Ok(Some(m.size))
                }
                None => Ok(None),
            },
        }
    }

    /// Removes the file durably (its directory fsynced on a local disk); a missing file is
    /// not an error.
    pub fn remove_durable(&self) -> Result<()> {
        match self {
            ColdPath::Local(p) => crate::fs::remove_file_durable(p),
            ColdPath::Object(b, k) => b.delete(k),
        }
    }

    /// Makes creations and removals in this directory durable: an fsync on a local disk
    /// (a directory that is gone is fine), nothing on object storage, where they are.
    pub fn sync_dir(&self) -> Result<()> {
        match self {
            ColdPath::Local(p) => match crate::fs::sync_dir(p) {
                Err(CoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(())
                }
                other => other,
            },
            ColdPath::Object(..) => Ok(()),
        }
    }

    /// The SHA-256 (hex) and size of the file, reading every byte; `each` sees every chunk.
    pub fn sha256_chunks(&self, each: impl FnMut(&[u8]) -> Result<()>) -> Result<(String, u64)> {
        match self {
            ColdPath::Local(p) => crate::checksum::sha256_chunks(p, each),
            ColdPath::Object(b, k) => {
                let mut each = each;
                let mut hash = crate::checksum::Sha256Stream::default();
                b.get_chunks(k, |piece| {
                    hash.update(piece);
                    each(piece)
                })?;
                Ok(hash.finish())
            }
        }
    }

    /// The whole content of the file; `None` if there is none.
    pub fn read(&self) -> Result<Option<Vec<u8>>> {
        match self {
            ColdPath::Local(p) => match std::fs::read(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CoreError::io(p, e)),
            },
            ColdPath::Object(b, k) => match b.get(k) {
                Ok(bytes) => Ok(Some(bytes.to_vec())),
                Err(CoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Writes the file so that it appears complete or not at all, durably (on a local disk:
    /// a temporary file in the same directory, fsynced, renamed, the directory fsynced).
    pub fn write_atomically(&self, bytes: &[u8]) -> Result<()> {
        match self {
            ColdPath::Local(p) => {
                let dir = p.parent().unwrap_or_else(|| Path::new("."));
                crate::fs::write_atomically(dir, p, bytes, 0o644)
            }
            ColdPath::Object(b, k) => b.put(k, bytes.to_vec()),
        }
    }

    /// Creates the file with `bytes` only if it does not exist (durably); `false` if it did.
    pub fn create_new(&self, bytes: &[u8]) -> Result<bool> {
        match self {
            ColdPath::Local(p) => {
                use std::io::Write as _;
                let mut f = match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(CoreError::io(p, e)),
                };
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| CoreError::io(p, e))?;
                if let Some(dir) = p.parent() {
                    crate::fs::sync_dir(dir)?;
                }
                Ok(true)
            }
            ColdPath::Object(b, k) => b.put_if_absent(k, bytes.to_vec()),
        }
    }

    /// The directories directly in this one (common prefixes, on object storage), as
    /// `(name, path)`, sorted; none if it does not exist.
    pub fn subdirs(&self) -> Result<Vec<(String, ColdPath)>> {
        let mut out = Vec::new();
        match self {
            ColdPath::Local(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(CoreError::io(dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| CoreError::io(dir, e))?;
                    if entry.path().is_dir() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        out.push((name, ColdPath::Local(entry.path())));
                    }
                }
            }
            ColdPath::Object(b, k) => {
                let (dirs, _) = b.list_dir(k)?;
                for d in dirs {
                    if let Some(name) = d.filename() {
                        out.push((name.to_string(), ColdPath::Object(Arc::clone(b), d.clone())));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Whether the directory exists (on object storage: holds any object).
    pub fn is_dir(&self) -> Result<bool> {
        match self {
            ColdPath::Local(p) => Ok(p.is_dir()),
            ColdPath::Object(b, k) => {
                let (dirs, objects) = b.list_dir(k)?;
                Ok(!dirs.is_empty() || !objects.is_empty())
            }
        }
    }

    /// The files directly in this directory, with their sizes.
    pub fn files(&self) -> Result<Vec<(ColdPath, u64)>> {
        match self {
            ColdPath::Local(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(CoreError::io(dir, e)),
                };
                let mut out = Vec::new();
                for entry in entries.flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_file() {
                        out.push((ColdPath::Local(entry.path()), meta.len()));
                    }
                }
                Ok(out)
            }
            ColdPath::Object(b, k) => {
                let (_, objects) = b.list_dir(k)?;
                Ok(objects
                    .into_iter()
                    .map(|m| (ColdPath::Object(Arc::clone(b), m.location), m.size))
                    .collect())
            }
        }
    }

    /// Every file under this directory, recursively, with its size.
    pub fn files_under(&self) -> Result<Vec<(ColdPath, u64)>> {
        match self {
            ColdPath::Local(_) => {
                let mut out = self.files()?;
                for (_, sub) in self.subdirs()? {
                    out.extend(sub.files_under()?);
                }
                Ok(out)
            }
            ColdPath::Object(b, k) => Ok(b
                .list(k)?
                .into_iter()
                .map(|m| (ColdPath::Object(Arc::clone(b), m.location), m.size))
                .collect()),
        }
    }

    fn sort_key(&self) -> (u8, &str, &str) {
        match self {
            ColdPath::Local(p) => (0, "", p.to_str().unwrap_or_default()),
            ColdPath::Object(b, k) => (1, b.name(), k.as_ref()),
        }
    }
}

/// `prefix/name` as a key (an empty prefix is the bucket's root).
pub fn join_key(prefix: &Key, name: &str) -> Key {
    if prefix.as_ref().is_empty() {
        Key::from(name)
    } else {
        Key::from(format!("{prefix}/{name}"))
    }
}

impl std::fmt::Display for ColdPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColdPath::Local(p) => write!(f, "{}", p.display()),
            ColdPath::Object(b, k) => write!(f, "{}", b.url(k)),
        }
    }
}

impl PartialEq for ColdPath {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ColdPath::Local(a), ColdPath::Local(b)) => a == b,
            _ => self.sort_key() == other.sort_key(),
        }
    }
}

impl Eq for ColdPath {}

impl Hash for ColdPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            ColdPath::Local(p) => p.hash(state),
            ColdPath::Object(b, k) => {
                b.name().hash(state);
                k.as_ref().hash(state);
            }
        }
    }
}

impl PartialOrd for ColdPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ColdPath {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (ColdPath::Local(a), ColdPath::Local(b)) => a.cmp(b),
            _ => self.sort_key().cmp(&other.sort_key()),
        }
    }
}

impl From<PathBuf> for ColdPath {
    fn from(p: PathBuf) -> Self {
        ColdPath::Local(p)
    }
}
