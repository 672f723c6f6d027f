//! What operators do with jobs: list, show, cancel, resume (`kalamctl jobs ...`).

use kalamdb_sql::{JobRecord, JobStatus};
use kalamdb_store::now_ms;

use super::{CancelRequests, Observer, Resumed, describe_owner, effective};
use crate::{CoreError, Engine, Result};

/// Which jobs to list. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub job_type: Option<String>,
    /// Jobs started at or after this time (epoch ms).
    pub since_ms: Option<i64>,
}

impl JobFilter {
    fn matches(&self, job: &JobRecord) -> bool {
        self.status.is_none_or(|s| s == job.status)
            && self.job_type.as_deref().is_none_or(|t| t == job.job_type)
            && self.since_ms.is_none_or(|since| job.start_time >= since)
    }
}

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job had not started its work, or was paused before any irreversible step: it is
    /// now `cancelled`.
    Cancelled(JobRecord),
    /// The job is running in a live process, which will stop it at its next safe point;
    /// meanwhile it reports `cancelling`.
    Requested(JobRecord),
}

/// What `resume` did.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeOutcome {
    Finished {
        job: JobRecord,
        resumed: Resumed,
    },
    /// It had completed already: nothing to do.
    AlreadyCompleted(JobRecord),
}

impl Engine {
    /// Jobs, newest first, as they truly stand: a job whose owner is gone is never shown as
    /// running, even before a read-write open rewrites it.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let holder = self.lock_holder()?;
        let (jobs, _) = self.sql().jobs().scan_lenient()?;
        let mut jobs: Vec<JobRecord> = jobs
            .into_iter()
            .map(|j| effective(j, holder.as_ref()))
            .filter(|j| filter.matches(j))
            .collect();
        jobs.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| b.job_id.cmp(&a.job_id))
        });
        Ok(jobs)
    }

    /// One job, as it truly stands.
    pub fn job(&self, id: &str) -> Result<JobRecord> {
        let job = self.sql().jobs().get(id)?.ok_or_else(|| {
            CoreError::NotFound(format!(
                "no job '{id}'; list them with `kalamctl jobs list`"
            ))
        })?;
        Ok(effective(job, self.lock_holder()?.as_ref()))
    }

    /// Cancels a job cooperatively. A job running in a live process (kalamd) is asked to stop
    /// at its next safe point; a job nobody runs is cancelled here, if it can be.
    pub fn cancel_job(&self, id: &str) -> Result<CancelOutcome> {
        let job = self.job(id)?;
        if job.status.is_terminal() {
            return Err(CoreError::Conflict(format!(
                "job {id} has already ended ({}); there is nothing to cancel",
                job.status
            )));
        }
        let kind = super::kind(&job.job_type);
        let Some(safe_point) = kind.and_then(|k| k.cancel_point()) else {
            return Err(CoreError::Conflict(format!(
                "job {id} is a {} job, which has no safe point to stop at: it runs to its end on its own; nothing was changed",
                job.job_type
            )));
        };
        tracing::debug!(job = id, safe_point, "cancel requested");
        if let Some(why) = kind.and_then(|k| k.cancel_refused(&job)) {
            return Err(CoreError::Conflict(format!(
                "job {id} can no longer be cancelled: {why}"
            )));
        }
        match job.status {
            JobStatus::Running | JobStatus::Cancelling => {
                CancelRequests::new(self.data_dir()).request(id)?;
                Ok(CancelOutcome::Requested(job))
            }
            _ if !self.holds_lock() => Err(CoreError::Conflict(format!(
                "job {id} is {} and the data directory is held by another process; cancel it while that process is stopped",
                job.status
            ))),
            _ => {
                let mut job = job;
                job.status = JobStatus::Cancelled;
                job.end_time = Some(now_ms());
                job.error_message = Some("cancelled before any irreversible step".into());
                job.error_code = Some(crate::ErrorKind::Cancelled.code().to_string());
                job.resume_state = None;
                self.sql().jobs().put(&job)?;
                CancelRequests::new(self.data_dir()).clear(id);
                Ok(CancelOutcome::Cancelled(job))
            }
        }
    }

    /// Finishes a paused job in this process.
    /// `interrupt`: see [`super::Job::interruptible`].
    pub async fn resume_job(
        &self,
        id: &str,
        observer: Option<Observer>,
        interrupt: Option<&'static std::sync::atomic::AtomicBool>,
    ) -> Result<ResumeOutcome> {
        let job = self.job(id)?;
        match job.status {
            JobStatus::Completed => return Ok(ResumeOutcome::AlreadyCompleted(job)),
            JobStatus::Paused => {}
            JobStatus::Running | JobStatus::Cancelling => {
                return Err(CoreError::Conflict(format!(
                    "job {id} is {} in {}; it needs no resuming",
                    job.status,
                    describe_owner(&job)
                )));
            }
            status => {
                return Err(CoreError::Conflict(format!(
                    "job {id} is {status} and cannot be resumed{}",
                    job.error_message
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )));
            }
        }
        let job_type = job.job_type.clone();
        let Some(resuming) =
            super::kind(&job_type).and_then(|k| k.resume(self, job, observer, interrupt))
        else {
            return Err(CoreError::Conflict(format!(
                "job {id} is a {job_type} job, which this build cannot resume"
            )));
        };
        let resumed = resuming.await?;
        let job = self.job(id)?;
        Ok(ResumeOutcome::Finished { job, resumed })
    }

    /// Finishes every paused job (kalamd does this at startup). Returns each job's id with
    /// its outcome; one job's failure does not stop the others.
    pub async fn resume_paused_jobs(&self) -> Result<Vec<(String, Result<ResumeOutcome>)>> {
        let paused = self.list_jobs(&JobFilter {
            status: Some(JobStatus::Paused),
            ..JobFilter::default()
        })?;
        let mut outcomes = Vec::new();
        for job in paused.into_iter().rev() {
            let outcome = self.resume_job(&job.job_id, None, None).await;
            outcomes.push((job.job_id, outcome));
        }
        Ok(outcomes)
    }
}
