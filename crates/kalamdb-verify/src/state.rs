//! State left behind: the format marker, jobs whose owner is gone, and live-query rows and
//! open multipart uploads while no daemon runs.

use kalamdb_sql::{FormatState, JobStatus};

use super::catalog::CatalogView;
use super::{Code, Scan};
use kalamdb_core::Result;
use kalamdb_core::cold::uploads::Uploads;
use kalamdb_core::jobs::{describe_owner, effective};
use kalamdb_core::process::this_process;

pub(crate) fn check_marker(scan: &mut Scan<'_>) -> Result<()> {
    match scan.engine.sql().format_state()? {
        FormatState::Unmarked => scan.report(
            Code::MarkerMissing,
            "kalamdb:format",
            "the directory has no format marker",
        ),
        FormatState::Unreadable(reason) => scan.report(
            Code::MarkerUnreadable,
            "kalamdb:format",
            format!("the format marker cannot be read: {reason}"),
        ),
        // Older and newer formats are refused before the scan starts.
        _ => {}
    }
    Ok(())
}

pub(crate) fn check_leftovers(scan: &mut Scan<'_>, catalog: &CatalogView) -> Result<()> {
    let holder = scan.engine.lock_holder()?;
    for job in &catalog.jobs {
        let seen = effective(job.clone(), holder.as_ref());
        if seen.status != job.status {
            let owner = describe_owner(job);
            let becomes = match seen.status {
                JobStatus::Paused => "paused (resumable)",
                JobStatus::Completed => "completed (its backup is in the repository)",
                _ => "failed",
            };
            scan.report(
                Code::AbandonedJob,
                job.job_id.as_str(),
                format!(
                    "{} job {} is recorded {} but {owner} is gone; it is {becomes}",
                    job.job_type, job.job_id, job.status
                ),
            );
        }
    }
    // Live queries belong to a running daemon's connections. With no other live process on
    // the directory, every row is stale.
    let me = this_process().pid;
    if holder.is_none_or(|h| h.pid == me) {
        for lq in &catalog.live_queries {
            scan.report(
                Code::StaleLiveQuery,
                lq.live_id.as_str(),
                format!(
                    "live query {} on {} (user {}) remains while no daemon runs",
                    lq.live_id, lq.table_name, lq.user_id
                ),
            );
        }
        // Uploads on record belong to a running process's flushes; with none, each was
        // left open by one that is gone.
        let uploads = Uploads::new(scan.engine.data_dir().uploads());
        for open in uploads.recorded()? {
            scan.report(
                Code::UploadOpen,
                open.object.as_str(),
                format!(
                    "a multipart upload of {} for {} was left open by a process that is gone",
                    open.object, open.table
                ),
            );
        }
    }
    Ok(())
}
