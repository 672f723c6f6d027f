//! Jobs whose owner is gone. Such a job is never reported as running: a job that records
//! its steps becomes `paused` (it can be finished), a backup whose repository holds its
//! committed manifest becomes `completed`, any other becomes `failed`.

use kalamdb_sql::{JobRecord, JobStatus, KalamSql};
use kalamdb_store::now_ms;

use super::CancelRequests;
use crate::Result;
use crate::data_dir::Holder;

/// The error written into non-resumable jobs whose owner died before finishing them.
pub const ABANDONED: &str = "abandoned";

fn owned_by(job: &JobRecord, holder: Option<Holder>) -> bool {
    match (&job.owner, holder) {
        (Some(owner), Some(h)) => {
            owner.pid == h.pid
                && owner.started_at == h.started_at
                && owner.host == super::hostname()
        }
        _ => false,
    }
}

/// The job as it truly stands, given the live holder of the directory's lock: a running or
/// cancelling job whose owner is not that holder is shown as [`reconcile`] would write it.
pub fn effective(mut job: JobRecord, holder: Option<Holder>) -> JobRecord {
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
    // A backup whose manifest landed is complete, whenever its process died.
    if let Some(manifest) = crate::backup::committed(job) {
        crate::backup::mark_completed(job, &manifest);
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
    }
}

/// Rewrites every running or cancelling job not owned by this process. Only call this while
/// holding the data directory's lock: then no other live process can own a job. A job that
/// was cancelling and can resume is left paused; a cancel request file left behind by an
/// ended job is removed. Returns the ids rewritten.
pub fn reconcile(sql: &KalamSql, cancel: &CancelRequests) -> Result<Vec<String>> {
    let me = super::this_process();
    let holder = Some(Holder {
        pid: me.pid,
        started_at: me.started_at,
    });
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
