//! Job types, as the job base layer sees them: through [`JobKind`], which each type
//! implements and registers. The base layer itself names no type: where a job can be
//! cancelled, how an orphan (its owner died) is settled, and how a paused job is finished
//! are each asked of the job's kind. A job whose type no kind was registered for has no safe
//! point, is settled the default way, and cannot be resumed.

use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::sync::atomic::AtomicBool;

use kalamdb_sql::JobRecord;

use super::Observer;
use crate::{Engine, Result};

/// What finishing a paused job did.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// The job type's own report, as JSON.
    pub report: serde_json::Value,
    /// The same in one line for people.
    pub summary: String,
}

/// A future a [`JobKind`] returns.
pub type KindFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One job type's answers to the job base layer.
pub trait JobKind: Send + Sync {
    /// Its `job_type` in `system.jobs`.
    fn job_type(&self) -> &'static str;

    /// Where a cancellation stops it; `None`: it has no safe point and runs to its end.
    fn cancel_point(&self) -> Option<&'static str> {
        None
    }

    /// Why this job can no longer be cancelled (it is past its point of no return).
    fn cancel_refused(&self, _job: &JobRecord) -> Option<String> {
        None
    }

    /// Settles an orphan when the default (paused if it records steps, failed otherwise)
    /// would not tell the truth, and says whether it did.
    fn settle_orphan(&self, _job: &mut JobRecord) -> bool {
        false
    }

    /// Finishes a paused job, if this type can.
    fn resume<'a>(
        &'a self,
        _engine: &'a Engine,
        _job: JobRecord,
        _observer: Option<Observer>,
        _interrupt: Option<&'static AtomicBool>,
    ) -> Option<KindFuture<'a, Resumed>> {
        None
    }
}

static KINDS: RwLock<Vec<&'static dyn JobKind>> = RwLock::new(Vec::new());

/// Registers a job type (once per process; registering it again changes nothing).
pub fn register(kind: &'static dyn JobKind) {
    let mut kinds = KINDS.write().unwrap_or_else(|e| e.into_inner());
    if !kinds.iter().any(|k| k.job_type() == kind.job_type()) {
        kinds.push(kind);
    }
}

/// The registered kind of `job_type`.
pub fn kind(job_type: &str) -> Option<&'static dyn JobKind> {
    KINDS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|k| k.job_type() == job_type)
        .copied()
}

/// Where a job of type `job_type` stops when it is cancelled, or `None` for a type that has
/// no safe point and always runs to its end.
pub fn cancel_point(job_type: &str) -> Option<&'static str> {
    kind(job_type).and_then(|k| k.cancel_point())
}
