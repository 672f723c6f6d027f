//! `kalamctl jobs list|show|cancel|resume|prune`.

use std::path::Path;

use kalamdb_core::jobs::{CancelOutcome, JobFilter, ResumeOutcome};
use kalamdb_core::{Access, Engine, JobRecord, JobStatus};
use serde_json::json;

use super::{block_on, open_offline, who};
use crate::cli::{Cli, Format, JobsCommand};
use crate::exit::{CliError, ExitCode};
use crate::output::{human_time, print_json, render_pairs, render_rows};
use crate::progress::job_bar;

pub fn run(cli: &Cli, dir: &Path, command: &JobsCommand) -> Result<ExitCode, CliError> {
    match command {
        JobsCommand::List {
            status,
            job_type,
            since,
        } => list(cli, dir, *status, job_type.clone(), since.as_deref()),
        JobsCommand::Show { id } => show(cli, dir, id),
        JobsCommand::Cancel { id } => cancel(cli, dir, id),
        JobsCommand::Resume { id } => resume(cli, dir, id),
        JobsCommand::Prune { older_than } => prune(cli, dir, older_than),
    }
}

fn list(
    cli: &Cli,
    dir: &Path,
    status: Option<JobStatus>,
    job_type: Option<String>,
    since: Option<&str>,
) -> Result<ExitCode, CliError> {
    // Validate every argument before touching the directory.
    let filter = JobFilter {
        status,
        job_type,
        since_ms: since.map(parse_since).transpose()?,
    };
    let engine = Engine::open(dir, Access::ReadOnly, &who("jobs list"))?;
    let jobs = engine.list_jobs(&filter)?;
    match cli.format {
        Format::Json => print_json(&json!({ "jobs": jobs })),
        Format::Table => {
            let rows = jobs.iter().map(|j| {
                vec![
                    j.job_id.clone(),
                    j.job_type.clone(),
                    j.table_name.clone(),
                    j.status.to_string(),
                    progress_cell(j),
                    human_time(j.start_time),
                    j.end_time.map(human_time).unwrap_or_default(),
                ]
            });
            println!(
                "{}",
                render_rows(
                    &[
                        "JOB ID", "TYPE", "TABLE", "STATUS", "PROGRESS", "STARTED", "ENDED"
                    ],
                    rows
                )
            );
        }
    }
    Ok(ExitCode::Ok)
}

fn show(cli: &Cli, dir: &Path, id: &str) -> Result<ExitCode, CliError> {
    let engine = Engine::open(dir, Access::ReadOnly, &who("jobs show"))?;
    let job = engine.job(id)?;
    print_job(cli, &job);
    Ok(ExitCode::Ok)
}

fn print_job(cli: &Cli, job: &JobRecord) {
    match cli.format {
        Format::Json => print_json(&json!({ "job": job })),
        Format::Table => {
            let owner = job
                .owner
                .as_ref()
                .map(|o| {
                    format!(
                        "pid {} on {} (started {})",
                        o.pid,
                        o.host,
                        human_time(o.started_at)
                    )
                })
                .unwrap_or_default();
            let pairs = vec![
                ("job_id", job.job_id.clone()),
                ("type", job.job_type.clone()),
                ("table", job.table_name.clone()),
                ("status", job.status.to_string()),
                ("step", job.step.clone().unwrap_or_default()),
                ("progress", progress_cell(job)),
                ("parameters", job.parameters.join(", ")),
                ("started", human_time(job.start_time)),
                ("ended", job.end_time.map(human_time).unwrap_or_default()),
                (
                    "heartbeat",
                    job.heartbeat_at.map(human_time).unwrap_or_default(),
                ),
                ("owner", owner),
                ("result", job.result.clone().unwrap_or_default()),
                ("error", job.error_message.clone().unwrap_or_default()),
            ];
            println!("{}", render_pairs(&pairs));
        }
    }
}

fn cancel(cli: &Cli, dir: &Path, id: &str) -> Result<ExitCode, CliError> {
    // Cancelling a job nobody runs needs the lock; a job that kalamd runs is asked to stop
    // through a request file, which needs only a read-only look.
    let engine = match open_offline(dir, "jobs cancel") {
        Ok(engine) => engine,
        Err(CliError::Core(e)) if e.kind() == kalamdb_core::ErrorKind::Locked => {
            Engine::open(dir, Access::ReadOnly, &who("jobs cancel"))?
        }
        Err(e) => return Err(e),
    };
    let (outcome, job, message) = match engine.cancel_job(id)? {
        CancelOutcome::Cancelled(job) => ("cancelled", job, format!("job {id} cancelled")),
        CancelOutcome::Requested(job) => (
            "cancel_requested",
            job,
            format!(
                "cancellation of job {id} requested; it reports `cancelling` until it stops at a safe point (watch with `kalamctl jobs show {id}`)"
            ),
        ),
    };
    match cli.format {
        Format::Json => {
            print_json(&json!({"job_id": id, "outcome": outcome, "status": job.status}))
        }
        Format::Table if !cli.quiet => println!("{message}"),
        Format::Table => {}
    }
    Ok(ExitCode::Ok)
}

fn resume(cli: &Cli, dir: &Path, id: &str) -> Result<ExitCode, CliError> {
    let engine = open_offline(dir, "jobs resume")?;
    let bar = job_bar(cli, &format!("resuming {id}"));
    let observer = bar.as_ref().map(|(_, o)| o.clone());
    let interrupt = Some(crate::interrupt::interruptible());
    let outcome = block_on(engine.resume_job(id, observer, interrupt));
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    match outcome? {
        ResumeOutcome::AlreadyCompleted(job) => match cli.format {
            Format::Json => {
                print_json(&json!({"job_id": id, "outcome": "already_completed", "job": job}))
            }
            Format::Table if !cli.quiet => {
                println!("job {id} had already completed; nothing to do")
            }
            Format::Table => {}
        },
        ResumeOutcome::Finished { job, resumed } => match cli.format {
            Format::Json => print_json(
                &json!({"job_id": id, "outcome": "finished", "job": job, "report": resumed.report}),
            ),
            Format::Table if !cli.quiet => println!("job {id} finished: {}", resumed.summary),
            Format::Table => {}
        },
    }
    Ok(ExitCode::Ok)
}

fn prune(cli: &Cli, dir: &Path, older_than: &str) -> Result<ExitCode, CliError> {
    let keep = kalamdb_core::limits::parse_duration("--older-than", older_than)?;
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let engine = open_offline(dir, "jobs prune")?;
    let pruned = engine.prune_jobs(keep_ms, keep_ms)?;
    match cli.format {
        Format::Json => print_json(&json!({"pruned": pruned, "older_than_ms": keep_ms})),
        Format::Table if !cli.quiet => {
            println!("pruned {pruned} ended job(s) older than {older_than}")
        }
        Format::Table => {}
    }
    Ok(ExitCode::Ok)
}

/// `--since`: a duration back from now, an RFC 3339 time, or a date (midnight UTC).
fn parse_since(s: &str) -> Result<i64, CliError> {
    if let Ok(d) = kalamdb_core::limits::parse_duration("--since", s) {
        let back = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(chrono::Utc::now().timestamp_millis().saturating_sub(back));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(CliError::Usage(format!(
        "--since {s:?} is neither a duration nor a time; write 24h, 7d, 2026-11-01 or 2026-11-01T12:00:00Z"
    )))
}

fn progress_cell(job: &JobRecord) -> String {
    match &job.progress {
        Some(p) if p.items_total > 0 => format!(
            "{:.0}% ({}/{})",
            p.fraction * 100.0,
            p.items_done,
            p.items_total
        ),
        Some(p) => format!("{:.0}%", p.fraction * 100.0),
        None => String::new(),
    }
}
