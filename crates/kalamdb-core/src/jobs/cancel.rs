//! Cancellation requests: one empty file per job id under `D/jobs/cancel/`.
//!
//! A file, not a row, because the process asking (`kalamctl jobs cancel`) cannot write to
//! RocksDB while the process running the job (kalamd) holds it. The running job looks for
//! its file at each safe point, reports `cancelling`, and removes the file when it ends.

use std::path::PathBuf;

use crate::data_dir::DataDir;
use crate::{CoreError, Result};

#[derive(Debug, Clone)]
pub struct CancelRequests {
    dir: PathBuf,
}

impl CancelRequests {
    pub fn new(data_dir: &DataDir) -> Self {
        CancelRequests {
            dir: data_dir.cancel_requests(),
        }
    }

    fn file(&self, job_id: &str) -> PathBuf {
        // Job ids are generated (`{type}-{uuid}`); a legacy id may hold other characters.
        let safe: String = job_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(safe)
    }

    pub fn request(&self, job_id: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| CoreError::io(&self.dir, e))?;
        let file = self.file(job_id);
        std::fs::write(&file, b"").map_err(|e| CoreError::io(&file, e))
    }

    pub fn is_requested(&self, job_id: &str) -> bool {
        self.file(job_id).exists()
    }

    /// Forgets a request (the job ended). Removes the directories once empty.
    pub fn clear(&self, job_id: &str) {
        let _ = std::fs::remove_file(self.file(job_id));
        if std::fs::remove_dir(&self.dir).is_ok()
            && let Some(parent) = self.dir.parent()
        {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
