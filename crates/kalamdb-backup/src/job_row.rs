//! The `backup` job type: cancellable between files, and, when its process died, settled by
//! what its repository proves (a backup whose manifest was committed is complete).

use kalamdb_sql::{JobRecord, JobStatus};
use serde_json::json;

use super::location::RepoLocation;
use super::manifest::Manifest;
use super::repo::Repo;
use kalamdb_core::jobs::{JobKind, job_type};

/// The `backup` job type.
pub struct BackupJob;

impl JobKind for BackupJob {
    fn job_type(&self) -> &'static str {
        job_type::BACKUP
    }

    fn cancel_point(&self) -> Option<&'static str> {
        Some("between files, before the manifest is written")
    }

    fn settle_orphan(&self, job: &mut JobRecord) -> bool {
        match committed(job) {
            Some(manifest) => {
                mark_completed(job, &manifest);
                true
            }
            None => false,
        }
    }
}

/// Registers the backup job type (see [`kalamdb_core::jobs::JobKind`]).
pub(crate) fn register() {
    static BACKUP: BackupJob = BackupJob;
    kalamdb_core::jobs::register(&BACKUP);
}

/// The manifest that `job`, a `backup` job (parameters: repository, backup id), committed,
/// if its repository holds it under the job's id.
fn committed(job: &JobRecord) -> Option<Manifest> {
    if job.job_type != job_type::BACKUP {
        return None;
    }
    let (repo, id, credentials) = match job.parameters.as_slice() {
        [repo, id] => (repo, id, None),
        [repo, id, credentials] => (repo, id, Some(credentials.as_str())),
        _ => return None,
    };
    let id: u64 = id.parse().ok()?;
    let location = RepoLocation::parse(repo, credentials).ok()?;
    let repo = Repo::open(&location).ok()?;
    let bytes = repo.manifest_path(id).read().ok()??;
    Manifest::parse(&bytes)
        .ok()
        .filter(|m| m.id == id && m.job_id == job.job_id)
}

/// Rewrites `job` as the completed job that committed `manifest`.
pub(super) fn mark_completed(job: &mut JobRecord, manifest: &Manifest) {
    job.status = JobStatus::Completed;
    job.end_time = Some(manifest.completed_at);
    job.heartbeat_at = Some(manifest.completed_at);
    job.error_message = None;
    job.error_code = None;
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
