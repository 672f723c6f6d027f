//! Job rows in `system.jobs`: every long operation records one.
//!
//! A job row names its owner (host, pid, start time), carries a heartbeat and its progress,
//! and, for resumable jobs, the last step it completed and what it needs to finish. A job
//! whose owner is gone is never reported as running: a read-write open turns it into
//! `paused` (resumable) or `failed` (`abandoned`), and read-only views show it that way
//! already ([`reconcile`]).

mod admin;
mod cancel;
mod kinds;
mod reconcile;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kalamdb_sql::{JobProgress, JobRecord, JobStatus, KalamSql};
use kalamdb_store::{Batch, now_ms};
use serde_json::Value;

use crate::process::this_process;
use crate::{CoreError, Engine, Result};

pub use admin::{CancelOutcome, JobFilter, ResumeOutcome};
pub use cancel::CancelRequests;
pub use kinds::{JobKind, KindFuture, Resumed, cancel_point, kind, register};
pub use reconcile::{ABANDONED, describe_owner, effective, reconcile};

/// The names of the job types this build writes (each type's [`JobKind`] lives with it).
pub mod job_type {
    pub const FLUSH: &str = "flush";
    pub const TABLE_DELETION: &str = "table_deletion";
    pub const MIGRATION: &str = "migration";
    pub const EVICTION: &str = "stream_eviction";
    pub const RETENTION: &str = "job_retention";
    pub const BACKUP: &str = "backup";
    /// Recorded in the restored database.
    pub const RESTORE: &str = "restore";
}

/// Called with the job's row each time it reports progress (a progress bar, say).
pub type Observer = Arc<dyn Fn(&JobRecord) + Send + Sync>;

/// How often progress reaches `system.jobs` (the observer sees every report).
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// A new running job's row, owned by this process.
pub fn new_record(
    job_id: String,
    kind: &str,
    table_name: &str,
    parameters: Vec<String>,
    now: i64,
) -> JobRecord {
    let owner = this_process();
    JobRecord {
        job_id,
        job_type: kind.to_string(),
        table_name: table_name.to_string(),
        status: JobStatus::Running,
        start_time: now,
        end_time: None,
        parameters,
        result: None,
        trace: None,
        memory_used_mb: None,
        cpu_used_percent: None,
        node_id: owner.host.clone(),
        error_message: None,
        error_code: None,
        owner: Some(owner),
        heartbeat_at: Some(now),
        progress: Some(JobProgress::default()),
        step: None,
        resume_state: None,
    }
}

/// A running job owned by this process.
pub struct Job {
    sql: KalamSql,
    record: JobRecord,
    cancel: CancelRequests,
    observer: Option<Observer>,
    /// Set by the process's SIGINT/SIGTERM handler: the job stops at its next safe point
    /// (cancelled) or step boundary (paused).
    interrupt: Option<&'static AtomicBool>,
    last_write: Instant,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("record", &self.record).finish()
    }
}

impl Job {
    /// Records a new running job before any work starts.
    pub fn start(
        engine: &Engine,
        kind: &str,
        table_name: &str,
        parameters: Vec<String>,
    ) -> Result<Job> {
        let now = now_ms();
        let id = format!("{kind}-{}", uuid::Uuid::now_v7().simple());
        let record = new_record(id, kind, table_name, parameters, now);
        engine.sql().jobs().insert(&record)?;
        Ok(Self::wrap(engine, record))
    }

    /// Takes over a paused job: this process becomes its owner and it runs again.
    pub fn adopt(engine: &Engine, mut record: JobRecord) -> Result<Job> {
        let owner = this_process();
        record.status = JobStatus::Running;
        record.node_id = owner.host.clone();
        record.owner = Some(owner);
        record.heartbeat_at = Some(now_ms());
        record.error_message = None;
        record.error_code = None;
        record.end_time = None;
        engine.sql().jobs().put(&record)?;
        Ok(Self::wrap(engine, record))
    }

    fn wrap(engine: &Engine, record: JobRecord) -> Job {
        Job {
            sql: engine.sql().clone(),
            record,
            cancel: CancelRequests::new(engine.data_dir()),
            observer: None,
            interrupt: None,
            last_write: Instant::now(),
        }
    }

    pub fn id(&self) -> &str {
        &self.record.job_id
    }
    pub fn record(&self) -> &JobRecord {
        &self.record
    }

    /// Makes the job stop when `flag` is set (by a signal handler): at its safe point it is
    /// cancelled like `jobs cancel` would, later it stops at the next step boundary
    /// ([`Job::stop_point`]) and is left paused.
    pub fn interruptible(&mut self, flag: Option<&'static AtomicBool>) {
        self.interrupt = flag;
    }

    fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Stops here, with [`CoreError::Interrupted`], if the process was interrupted: for points
    /// between idempotent steps, where a resumed job carries on.
    pub fn stop_point(&self, at: &str) -> Result<()> {
        if self.interrupted() {
            return Err(CoreError::Interrupted {
                job_id: self.id().to_string(),
                at: at.to_string(),
            });
        }
        Ok(())
    }

    pub fn observe(&mut self, observer: Option<Observer>) {
        self.observer = observer;
        self.notify();
    }

    fn notify(&self) {
        if let Some(o) = &self.observer {
            o(&self.record);
        }
    }

    /// Records progress and a heartbeat (written at most every 250 ms).
    pub fn progress(&mut self, progress: JobProgress) -> Result<()> {
        self.report(progress, false)
    }

    /// Records progress and a heartbeat now: for counts a resumed job carries on from.
    pub fn progress_now(&mut self, progress: JobProgress) -> Result<()> {
        self.report(progress, true)
    }

    fn report(&mut self, progress: JobProgress, now: bool) -> Result<()> {
        self.record.progress = Some(progress);
        self.record.heartbeat_at = Some(now_ms());
        if now || self.last_write.elapsed() >= WRITE_EVERY {
            self.sql.jobs().put(&self.record)?;
            self.last_write = Instant::now();
        }
        self.notify();
        Ok(())
    }

    /// Records a completed step and what the job needs to finish, in `batch`: the step is
    /// durable exactly when the work written with it is.
    pub fn step_in(
        &mut self,
        batch: &mut Batch,
        step: &str,
        resume_state: Option<String>,
    ) -> Result<()> {
        self.record.step = Some(step.to_string());
        if resume_state.is_some() {
            self.record.resume_state = resume_state;
        }
        self.record.heartbeat_at = Some(now_ms());
        self.sql.jobs().put_in(batch, &self.record)?;
        self.notify();
        Ok(())
    }

    /// Replaces what the job needs to finish; written with the next progress or step.
    pub fn set_resume_state(&mut self, resume_state: String) {
        self.record.resume_state = Some(resume_state);
    }

    /// Records a completed step now.
    pub fn step(
        &mut self,
        engine: &Engine,
        step: &str,
        resume_state: Option<String>,
    ) -> Result<()> {
        let mut batch = Batch::new();
        self.step_in(&mut batch, step, resume_state)?;
        engine.storage().write(batch)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Whether cancellation was asked for. The first time it is, the job reports
    /// `cancelling` until it stops.
    pub fn cancel_requested(&mut self) -> Result<bool> {
        if !self.cancel.is_requested(self.id()) && !self.interrupted() {
            return Ok(false);
        }
        if self.record.status != JobStatus::Cancelling {
            self.record.status = JobStatus::Cancelling;
            self.record.heartbeat_at = Some(now_ms());
            self.sql.jobs().put(&self.record)?;
            self.notify();
        }
        Ok(true)
    }

    /// Stops here if cancellation was asked for: a safe point.
    pub fn checkpoint(&mut self, at: &str) -> Result<()> {
        if self.cancel_requested()? {
            return Err(CoreError::Cancelled {
                job_id: self.id().to_string(),
                at: at.to_string(),
            });
        }
        Ok(())
    }

    fn mark_completed(&mut self, result: Value) {
        let now = now_ms();
        self.record.status = JobStatus::Completed;
        self.record.end_time = Some(now);
        self.record.heartbeat_at = Some(now);
        self.record.result = Some(result.to_string());
        self.record.resume_state = None;
        if let Some(p) = self.record.progress.as_mut() {
            p.fraction = 1.0;
            p.items_done = p.items_done.max(p.items_total);
        }
    }

    /// Marks the job completed with a JSON result.
    pub fn complete(mut self, result: Value) -> Result<JobRecord> {
        self.mark_completed(result);
        self.finish()
    }

    /// Marks the job completed in `batch`: it completes exactly when the batch's other writes
    /// land.
    pub fn complete_in(mut self, batch: &mut Batch, result: Value) -> Result<JobRecord> {
        self.mark_completed(result);
        self.sql.jobs().put_in(batch, &self.record)?;
        self.notify();
        Ok(self.record)
    }

    /// Ends the job with an error: `cancelled` for [`CoreError::Cancelled`]; `paused` when it
    /// records steps (its work is idempotent, so it can still be finished); else `failed`.
    pub fn fail(mut self, error: &CoreError) -> Result<JobRecord> {
        let now = now_ms();
        self.record.heartbeat_at = Some(now);
        self.record.error_code = Some(error.kind().code().to_string());
        match (error, self.record.step.as_deref()) {
            (CoreError::Cancelled { .. }, _) => {
                self.record.status = JobStatus::Cancelled;
                self.record.end_time = Some(now);
                self.record.error_message = Some(error.to_string());
            }
            (CoreError::Interrupted { .. }, Some(_)) => {
                self.record.status = JobStatus::Paused;
                self.record.error_message = Some(error.to_string());
            }
            (_, Some(step)) => {
                self.record.status = JobStatus::Paused;
                self.record.error_message = Some(format!(
                    "stopped after step {step}: {error}; fix the cause, then run `kalamctl jobs resume {}`",
                    self.record.job_id
                ));
            }
            (_, None) => {
                self.record.status = JobStatus::Failed;
                self.record.end_time = Some(now);
                self.record.error_message = Some(error.to_string());
            }
        }
        self.finish()
    }

    fn finish(self) -> Result<JobRecord> {
        self.sql.jobs().put(&self.record)?;
        self.cancel.clear(self.id());
        self.notify();
        Ok(self.record)
    }
}

/// Runs `work` as a job: completed with its result, or failed (or cancelled) with its error.
pub fn run_job<T>(
    engine: &Engine,
    kind: &str,
    table_name: &str,
    parameters: Vec<String>,
    work: impl FnOnce(&mut Job) -> Result<(T, Value)>,
) -> Result<T> {
    finish_with(Job::start(engine, kind, table_name, parameters)?, work)
}

/// Runs `work` on a started or adopted job and ends it with the outcome.
pub(crate) fn finish_with<T>(
    mut job: Job,
    work: impl FnOnce(&mut Job) -> Result<(T, Value)>,
) -> Result<T> {
    match work(&mut job) {
        Ok((value, result)) => {
            job.complete(result)?;
            Ok(value)
        }
        Err(e) => {
            // The original error matters more than a failure to record it.
            let _ = job.fail(&e);
            Err(e)
        }
    }
}
