use serde::{Deserialize, Serialize};

use crate::tolerant;
use crate::{SystemRecord, lowercase_enum};

lowercase_enum!(
    /// A job's state. `cancelling` means cancellation was asked for and the job has not yet
    /// reached a safe point. `paused` means its owner died part-way through a job that can be
    /// finished (`kalamctl jobs resume`, or kalamd at startup).
    JobStatus {
        Queued => "queued",
        Running => "running",
        Cancelling => "cancelling",
        Paused => "paused",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    /// Whether the job has ended and will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A process, as the lock file and job rows name it: host, pid and start time. The one type
/// for "who is this process": the data directory's lock holder and a job's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub host: String,
    pub pid: u32,
    /// When the owning process started, epoch milliseconds: with `pid`, names the process.
    #[serde(deserialize_with = "tolerant::millis")]
    pub started_at: i64,
}

/// How far a job has come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// 0.0 to 1.0.
    pub fraction: f64,
    #[serde(default)]
    pub items_done: u64,
    #[serde(default)]
    pub items_total: u64,
    #[serde(default)]
    pub bytes_done: u64,
    /// Added after format 1 was published; absent (0) when a job does not know it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `system.jobs`: key `job:{job_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub job_type: String,
    /// `""` when the job concerns no table.
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub table_name: String,
    pub status: JobStatus,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub start_time: i64,
    #[serde(default, deserialize_with = "tolerant::opt_millis")]
    pub end_time: Option<i64>,
    #[serde(default, deserialize_with = "tolerant::string_list")]
    pub parameters: Vec<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub trace: Option<String>,
    #[serde(default)]
    pub memory_used_mb: Option<f64>,
    #[serde(default)]
    pub cpu_used_percent: Option<f64>,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub node_id: String,
    #[serde(default)]
    pub error_message: Option<String>,
    /// The failure's kind as its stable wire code (`locked`, `integrity`, ...; see
    /// `specs/http.md`), so a client tells why a job failed without reading the message.
    /// Added in format 2's jobs; absent in older rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Added by format 1; absent in legacy rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProcessIdentity>,
    #[serde(
        default,
        deserialize_with = "tolerant::opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
    /// Resumable jobs: the last step completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Resumable jobs: what the job needs to finish after a crash (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_state: Option<String>,
}

impl SystemRecord for JobRecord {
    const TABLE: &'static str = "jobs";
    const CF: &'static str = "system_jobs";
    const KEY_PREFIX: &'static str = "job:";
    fn id(&self) -> String {
        self.job_id.clone()
    }
}
