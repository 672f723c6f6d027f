//! Job rows in `system.jobs`: every long operation records one.

use std::sync::OnceLock;

use kalamdb_sql::{JobOwner, JobProgress, JobRecord, JobStatus, KalamSql};
use kalamdb_store::now_ms;
use serde_json::Value;

use crate::Result;

/// Job types this build writes.
pub mod job_type {
    pub const FLUSH: &str = "flush";
    pub const TABLE_DELETION: &str = "table_deletion";
}

/// The reason written into jobs whose owner died before finishing them.
pub const ABANDONED: &str = "abandoned";

/// This process, as a job owner.
pub fn this_process() -> JobOwner {
    static STARTED: OnceLock<i64> = OnceLock::new();
    JobOwner {
        host: hostname(),
        pid: std::process::id(),
        started_at: *STARTED.get_or_init(now_ms),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A running job owned by this process.
#[derive(Debug)]
pub struct Job {
    sql: KalamSql,
    record: JobRecord,
}

impl Job {
    /// Records a new running job before any work starts.
    pub fn start(
        sql: &KalamSql,
        kind: &str,
        table_name: &str,
        parameters: Vec<String>,
    ) -> Result<Job> {
        let now = now_ms();
        let owner = this_process();
        let record = JobRecord {
            job_id: format!("{kind}-{}", uuid::Uuid::now_v7().simple()),
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
            owner: Some(owner),
            heartbeat_at: Some(now),
            progress: Some(JobProgress::default()),
        };
        sql.jobs().insert(&record)?;
        Ok(Job {
            sql: sql.clone(),
            record,
        })
    }

    pub fn id(&self) -> &str {
        &self.record.job_id
    }

    /// Records progress and a heartbeat.
    pub fn progress(&mut self, progress: JobProgress) -> Result<()> {
        self.record.progress = Some(progress);
        self.record.heartbeat_at = Some(now_ms());
        self.sql.jobs().put(&self.record)?;
        Ok(())
    }

    /// Marks the job completed with a JSON result.
    pub fn complete(mut self, result: Value) -> Result<JobRecord> {
        let now = now_ms();
        self.record.status = JobStatus::Completed;
        self.record.end_time = Some(now);
        self.record.heartbeat_at = Some(now);
        self.record.result = Some(result.to_string());
        if let Some(p) = self.record.progress.as_mut() {
            p.fraction = 1.0;
        }
        self.sql.jobs().put(&self.record)?;
        Ok(self.record)
    }

    /// Marks the job failed with the error's message.
    pub fn fail(mut self, error: &dyn std::fmt::Display) -> Result<JobRecord> {
        let now = now_ms();
        self.record.status = JobStatus::Failed;
        self.record.end_time = Some(now);
        self.record.heartbeat_at = Some(now);
        self.record.error_message = Some(error.to_string());
        self.sql.jobs().put(&self.record)?;
        Ok(self.record)
    }
}

/// Runs `work` as a job: completed with its result, or failed with its error.
pub fn run_job<T>(
    sql: &KalamSql,
    kind: &str,
    table_name: &str,
    parameters: Vec<String>,
    work: impl FnOnce(&mut Job) -> Result<(T, Value)>,
) -> Result<T> {
    let mut job = Job::start(sql, kind, table_name, parameters)?;
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

/// Marks every job left `running` or `cancelling` as failed (`abandoned`). Only call this
/// while holding the data directory's lock: then no live process can own such a job.
pub fn fail_abandoned(sql: &KalamSql) -> Result<Vec<String>> {
    let mut failed = Vec::new();
    let (jobs, _) = sql.jobs().scan_lenient()?;
    for mut job in jobs
        .into_iter()
        .filter(|j| !j.status.is_terminal() && j.status != JobStatus::Queued)
    {
        job.status = JobStatus::Failed;
        job.end_time = Some(now_ms());
        job.error_message = Some(ABANDONED.to_string());
        sql.jobs().put(&job)?;
        failed.push(job.job_id);
    }
    Ok(failed)
}
