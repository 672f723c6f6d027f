//! Jobs whose owner is gone. Such a job is never reported as running: its kind may settle it
//! ([`super::JobKind::settle_orphan`]: a backup whose manifest landed is `completed`);
//! otherwise a job that records its steps becomes `paused` (it can be finished), any other
//! becomes `failed`.

use kalamdb_sql::{JobRecord, JobStatus, KalamSql};
use kalamdb_store::now_ms;

use super::CancelRequests;
use crate::Result;
use crate::process::{ProcessIdentity, this_process};

/// The error written into non-resumable jobs whose owner died before finishing them.
pub const ABANDONED: &str = "abandoned";

fn owned_by(job: &JobRecord, holder: Option<&ProcessIdentity>) -> bool {
    matches!((&job.owner, holder), (Some(owner), Some(h)) if owner == h)
}

/// The job as it truly stands, given the live holder of the directory's lock: a running or
/// cancelling job whose owner is not that holder is shown as [`reconcile`] would write it.
pub fn effective(mut job: JobRecord, holder: Option<&ProcessIdentity>) -> JobRecord {
    if matches!(job.status, JobStatus::Running | JobStatus::Cancelling) && !owned_by(&job, holder) {
        orphan(&mut job);
    }
    job
}

/// The process that owns a job, for messages: `pid N on HOST`.
pub fn describe_owner(job: &JobRecord) -> String {
    job.owner
        .as_ref()
        .map(|o| format!("pid {} on {}", o.pid, o.host))
        .unwrap_or_else(|| "its owner".to_string())
}

fn orphan(job: &mut JobRecord) {
    if super::kind(&job.job_type).is_some_and(|k| k.settle_orphan(job)) {
        return;
    }
    let who = describe_owner(job);
    if job.step.is_some() && job.status == JobStatus::Running {
        job.status = JobStatus::Paused;
        job.error_message = Some(format!(
            "interrupted: {who} is gone after step {}; kalamd finishes it at startup, or run `kalamctl jobs resume {}`",
            job.step.as_deref().unwrap_or("?"),
            job.job_id
        ));
    } else {
        job.status = JobStatus::Failed;
        job.end_time = Some(now_ms());
        job.error_message = Some(format!("{ABANDONED}: {who} is gone"));
        job.error_code = Some(crate::ErrorKind::Internal.code().to_string());
    }
}

/// Rewrites every running or cancelling job not owned by this process. Only call this while
/// holding the data directory's lock: then no other live process can own a job. A job that
/// was cancelling and can resume is left paused; a cancel request file left behind by an
/// ended job is removed. Returns the ids rewritten.
pub fn reconcile(sql: &KalamSql, cancel: &CancelRequests) -> Result<Vec<String>> {
    let me = this_process();
    let holder = Some(&me);
    let mut changed = Vec::new();
    let (jobs, _) = sql.jobs().scan_lenient()?;
    for job in jobs {
        if job.status.is_terminal() {
            cancel.clear(&job.job_id);
            continue;
        }
        let mut fixed = job.clone();
        if fixed.status == JobStatus::Cancelling && fixed.step.is_some() {
            fixed.status = JobStatus::Running;
        }
        let fixed = effective(fixed, holder);
        if fixed.status != job.status {
            sql.jobs().put(&fixed)?;
            changed.push(fixed.job_id);
        }
    }
    Ok(changed)
}
