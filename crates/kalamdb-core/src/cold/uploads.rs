//! The multipart uploads to object storage that a data directory's process has open: one
//! small file each under `D/uploads/`, written (and fsynced) before the upload's first part
//! and removed when it completes or is aborted. A process killed meanwhile cannot abort its
//! upload, whose parts the bucket keeps (and bills) without ever making an object of them;
//! the record, which names the table the upload was for, lets the next process abort it:
//! the next flush of that table, or its deletion ([`Uploads::abort_of`]). (An S3 backup
//! repository keeps the same records under its `tmp/uploads/`, aborted by the next writer:
//! [`Uploads::abort_all`].) The data
//! directory's lock makes one process its only writer, and the table's flush lock one flush the
//! only writer of the table's files, so a record of a table being flushed or dropped is never
//! of an upload still running.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ColdPath;
use super::object::{self, Bucket, Key, UploadJournal};
use crate::checksum::Sha256Stream;
use crate::{CoreError, Result};

/// A directory (or prefix) of upload records: `D/uploads/`, or a repository's `tmp/uploads/`.
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: ColdPath,
}

/// One open upload, as `{dir}/{sha256 of its id}.json` records it.
#[derive(Serialize, Deserialize)]
struct Record {
    /// `namespace.table` (empty for a backup's upload).
    table: String,
    bucket: String,
    /// The credentials profile the bucket was reached with.
    profile: Option<String>,
    key: String,
    upload: String,
}

/// The uploads of one table's files.
#[derive(Clone)]
pub struct TableUploads {
    uploads: Uploads,
    table: String,
}

/// The journal of one table's uploads to one bucket.
struct ToBucket {
    of: TableUploads,
    bucket: String,
    profile: Option<String>,
}

impl Uploads {
    pub fn new(dir: impl Into<ColdPath>) -> Uploads {
        Uploads { dir: dir.into() }
    }

    /// The uploads of the files of `table` (`namespace.table`; empty for a backup's).
    pub fn of(&self, table: &str) -> TableUploads {
        TableUploads {
            uploads: self.clone(),
            table: table.to_string(),
        }
    }

    fn record(&self, upload: &str) -> ColdPath {
        let mut name = Sha256Stream::default();
        name.update(upload.as_bytes());
        self.dir.join(&format!("{}.json", name.finish().0))
    }

    /// Every upload on record: what `verify` reports while no process runs.
    pub fn recorded(&self) -> Result<Vec<Recorded>> {
        let mut out = Vec::new();
        for (_, r) in self.records()? {
            out.push(Recorded {
                object: format!("s3://{}/{}", r.bucket, r.key),
                table: r.table,
            });
        }
        Ok(out)
    }

    /// The records, with where each is. A `.name.tmp` (a record whose writer died before
    /// renaming it into place, so before the upload's first part) and a file that does not
    /// parse are not records.
    fn records(&self) -> Result<Vec<(ColdPath, Record)>> {
        let mut out = Vec::new();
        for (path, _) in self.dir.files()? {
            if !path.file_name().is_some_and(|n| n.ends_with(".json")) {
                continue;
            }
            let Some(bytes) = path.read()? else {
                continue;
            };
            if let Ok(r) = serde_json::from_slice::<Record>(&bytes) {
                out.push((path, r));
            }
        }
        Ok(out)
    }

    /// Aborts the recorded uploads of `table` (`namespace.table`), forgetting each; returns
    /// the objects they were uploading. The caller holds the table's flush lock.
    pub fn abort_of(&self, table: &str) -> Result<Vec<String>> {
        self.abort_where(|r| r.table == table)
    }

    /// Aborts every recorded upload, forgetting each; returns the objects they were
    /// uploading. The caller is the only writer (a repository's writer lock).
    pub fn abort_all(&self) -> Result<Vec<String>> {
        self.abort_where(|_| true)
    }

    fn abort_where(&self, wanted: impl Fn(&Record) -> bool) -> Result<Vec<String>> {
        let mut aborted = Vec::new();
        for (path, r) in self.records()? {
            if !wanted(&r) {
                continue;
            }
            let what = format!("an upload left open in s3://{}", r.bucket);
            let bucket = object::bucket(&r.bucket, r.profile.as_deref(), &what)?;
            let key = Key::from(r.key.as_str());
            bucket.abort_upload(&key, &r.upload)?;
            path.remove()?;
            aborted.push(bucket.url(&key));
        }
        Ok(aborted)
    }
}

/// An upload on record, as `verify` names it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `s3://bucket/key`.
    pub object: String,
    /// `namespace.table`.
    pub table: String,
}

impl TableUploads {
    /// A journal for uploads to `bucket` (see [`super::object::ObjectWriter::journaled`]).
    pub fn journal(&self, bucket: &Bucket) -> Arc<dyn UploadJournal> {
        Arc::new(ToBucket {
            of: self.clone(),
            bucket: bucket.name().to_string(),
            profile: bucket.profile().map(str::to_string),
        })
    }
}

impl UploadJournal for ToBucket {
    fn opened(&self, key: &Key, upload: &str) -> Result<()> {
        let record = Record {
            table: self.of.table.clone(),
            bucket: self.bucket.clone(),
            profile: self.profile.clone(),
            key: key.to_string(),
            upload: upload.to_string(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| CoreError::Query(e.to_string()))?;
        self.of.uploads.record(upload).write_atomically(&bytes)
    }

    /// The removal is not fsynced: a record that outlives its upload names one no longer
    /// open, whose abort is a no-op.
    fn closed(&self, upload: &str) -> Result<()> {
        self.of.uploads.record(upload).remove().map(|_| ())
    }
}
