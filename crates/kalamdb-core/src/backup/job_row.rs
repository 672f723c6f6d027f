//! A backup's job row as its repository proves it: a backup whose manifest was committed is
//! complete, even when its process died before it could record that.

use kalamdb_sql::{JobRecord, JobStatus};
use serde_json::json;

use super::manifest::Manifest;
use super::repo::Repo;
use crate::jobs::job_type;

/// The manifest that `job`, a `backup` job (parameters: repository, backup id), committed,
/// if its repository holds it under the job's id.
pub(crate) fn committed(job: &JobRecord) -> Option<Manifest> {
    if job.job_type != job_type::BACKUP {
        return None;
    }
    let [repo, id] = job.parameters.as_slice() else {
        return None;
    };
    let id: u64 = id.parse().ok()?;
    let repo = Repo::open(std::path::Path::new(repo)).ok()?;
    let bytes = std::fs::read(repo.manifest_path(id)).ok()?;
    Manifest::parse(&bytes)
        .ok()
        .filter(|m| m.id == id && m.job_id == job.job_id)
}

/// Rewrites `job` as the completed job that committed `manifest`.
pub(crate) fn mark_completed(job: &mut JobRecord, manifest: &Manifest) {
    job.status = JobStatus::Completed;
    job.end_time = Some(manifest.completed_at);
    job.heartbeat_at = Some(manifest.completed_at);
    job.error_message = None;
    job.result = Some(
        json!({
            "backup_id": manifest.id,
            "files": manifest.files.len(),
            "total_bytes": manifest.total_bytes,
            "new_bytes": manifest.new_bytes,
            "rows": manifest.table_rows(),
        })
        .to_string(),
    );
    if let Some(p) = job.progress.as_mut() {
        p.fraction = 1.0;
    }
}
