//! Streaming uploads: one `PUT` for a small object, a multipart upload for a large one, the
//! object appearing only when complete.

use std::io::Write;
use std::sync::Arc;

use object_store::PutPayload;
use object_store::multipart::{MultipartStore, PartId};

use super::Key;
use super::bucket::{Bucket, PART_BYTES};
use super::runtime::{block, runtime};
use crate::{CoreError, Result};

impl Bucket {
    /// A writer that uploads as it goes: the object appears, complete, only at
    /// [`ObjectWriter::finish`].
    pub fn writer(self: &Arc<Self>, key: Key) -> ObjectWriter {
        ObjectWriter {
            bucket: Arc::clone(self),
            key,
            buf: Vec::new(),
            upload: None,
            journal: None,
        }
    }
}

/// Where a writer records the multipart uploads it opens, so that one a killed process left
/// open (its parts stored, and billed, but no object) can be aborted by whoever comes next
/// (see [`Bucket::abort_upload`]).
pub trait UploadJournal: Send + Sync {
    /// Records, durably, that `upload` of `key` is open. Called before any part is sent.
    fn opened(&self, key: &Key, upload: &str) -> Result<()>;
    /// Forgets it: the upload completed or was aborted.
    fn closed(&self, upload: &str) -> Result<()>;
}

/// An open multipart upload: its id and the parts sent.
struct Open {
    id: String,
    parts: Vec<PartId>,
    /// The part on its way while the writer fills the next: one at a time, so memory stays
    /// at two parts and the caller's encoding overlaps the network.
    sending: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
}

/// A streaming upload: one `PUT` for an object smaller than a part, else a multipart upload
/// whose parts go as they fill, so memory stays at one part whatever the object's size. An
/// upload dropped before [`ObjectWriter::finish`] is aborted: no object, no parts left. A
/// process killed meanwhile cannot abort it; with a journal ([`ObjectWriter::journaled`])
/// the upload is on record for the next one to abort.
pub struct ObjectWriter {
    bucket: Arc<Bucket>,
    key: Key,
    buf: Vec<u8>,
    upload: Option<Open>,
    journal: Option<Arc<dyn UploadJournal>>,
}

impl ObjectWriter {
    /// Records the multipart upload, if there is one, in `journal` while it is open.
    pub fn journaled(mut self, journal: Arc<dyn UploadJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    fn start(&self) -> Result<Open> {
        let store = &self.bucket.store;
        let id =
            block(store.create_multipart(&self.key))?.map_err(|e| self.bucket.err(&self.key, e))?;
        if let Some(journal) = &self.journal
            && let Err(e) = journal.opened(&self.key, &id)
        {
            let _ = self.bucket.abort_upload(&self.key, &id);
            return Err(e);
        }
        Ok(Open {
            id,
            parts: Vec::new(),
            sending: None,
        })
    }

    /// Waits for the part on its way, if any.
    fn settle(&mut self) -> Result<()> {
        let Some(handle) = self.upload.as_mut().and_then(|open| open.sending.take()) else {
            return Ok(());
        };
        let sent = match block(handle)? {
            Ok(Ok(part)) => part,
            Ok(Err(e)) => return Err(self.bucket.err(&self.key, e)),
            Err(e) => {
                return Err(CoreError::ObjectStore {
                    location: self.bucket.url(&self.key),
                    reason: format!("sending a part failed: {e}"),
                });
            }
        };
        let Some(open) = self.upload.as_mut() else {
            return Ok(());
        };
        open.parts.push(sent);
        if open.parts.len() == 1 {
            crate::fail::point("object.part_sent");
        }
        Ok(())
    }

    /// Sends what is buffered as the next part, once the one before it is up.
    fn send_part(&mut self) -> Result<()> {
        self.settle()?;
        if self.upload.is_none() {
            self.upload = Some(self.start()?);
        }
        let rt = runtime()?;
        let Some(open) = self.upload.as_mut() else {
            return Ok(());
        };
        let part = PutPayload::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PART_BYTES),
        ));
        let store = Arc::clone(&self.bucket.store);
        let (key, id, index) = (self.key.clone(), open.id.clone(), open.parts.len());
        open.sending = Some(rt.spawn(async move { store.put_part(&key, &id, index, part).await }));
        Ok(())
    }

    /// Completes the object: from here on it exists, whole.
    pub fn finish(mut self) -> Result<()> {
        if self.upload.is_none() {
            return self.bucket.put(&self.key, std::mem::take(&mut self.buf));
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        self.settle()?;
        let Some(open) = self.upload.take() else {
            return Ok(());
        };
        let completing =
            self.bucket
                .store
                .complete_multipart(&self.key, &open.id, open.parts.clone());
        match block(completing)? {
            Ok(_) => {
                // A record left behind names an upload that is no longer open: aborting it
                // later is a no-op, so a failure to forget it is not the upload's failure.
                if let Some(journal) = &self.journal {
                    let _ = journal.closed(&open.id);
                }
                Ok(())
            }
            Err(e) => {
                self.upload = Some(open);
                Err(self.bucket.err(&self.key, e))
            }
        }
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART_BYTES {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    /// An upload that did not complete is aborted, and then forgotten. A part on its way is
    /// let finish first: S3 may keep a part that lands after the abort.
    fn drop(&mut self) {
        let Some(open) = self.upload.take() else {
            return;
        };
        if let Some(part) = open.sending {
            let _ = block(part);
        }
        if self.bucket.abort_upload(&self.key, &open.id).is_ok()
            && let Some(journal) = &self.journal
        {
            let _ = journal.closed(&open.id);
        }
    }
}
