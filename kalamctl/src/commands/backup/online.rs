//! `kalamctl backup create --server`: kalamd takes the backup (`BACKUP DATABASE TO ...
//! DETACHED`), and this follows its job row in `system.jobs` until it ends.

use std::time::Duration;

use kalamdb_backup::{CreateReport, Phase, Transfer};
use kalamdb_core::api::WireCode;
use serde_json::{Value, json};

use super::create_pairs;
use crate::cli::{Cli, Format};
use crate::exit::{CliError, ExitCode};
use crate::output::{print_json, render_pairs};
use crate::progress::bytes_bar;
use crate::remote::{Client, remote};

const POLL: Duration = Duration::from_millis(200);

pub fn create(
    cli: &Cli,
    url: &str,
    token: Option<&str>,
    repo: &str,
    credentials: Option<&str>,
    rehash: bool,
) -> Result<ExitCode, CliError> {
    if rehash {
        return Err(CliError::Usage(
            "--rehash applies to offline backups (--data-dir); kalamd's backups skip unchanged files by name, size and time".into(),
        ));
    }
    let token = token.ok_or_else(|| {
        CliError::Usage("--server needs --token (or KALAMDB_TOKEN) with an admin token".into())
    })?;
    if !repo.starts_with('/') && !repo.starts_with("s3://") {
        return Err(CliError::Usage(format!(
            "with --server, --to is a path on the server's machine and must be absolute, e.g. /var/backups/kalamdb, or an s3://bucket/prefix URL (got {repo})"
        )));
    }
    let quote = |s: &str| s.replace('\'', "''");
    let with = credentials
        .map(|c| format!(" CREDENTIALS '{}'", quote(c)))
        .unwrap_or_default();
    let client = Client::new(url, token);
    let started = client.sql(&format!(
        "BACKUP DATABASE TO '{}'{with} DETACHED",
        quote(repo)
    ))?;
    let job_id = started["job_id"].as_str().unwrap_or_default().to_string();
    let backup_id = started["backup_id"].as_u64().unwrap_or_default();
    if !cli.quiet && cli.format != Format::Json {
        eprintln!(
            "backup {backup_id} runs in kalamd as job {job_id}; Ctrl-C stops watching, not the backup"
        );
    }
    let bar = bytes_bar(cli, "backing up");
    let outcome = follow(&client, &job_id, bar.as_ref().map(|(_, o)| o));
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    let report = outcome?;
    if cli.format == Format::Json {
        print_json(&json!(report));
    } else {
        println!("{}", render_pairs(&create_pairs(&report)));
    }
    Ok(ExitCode::Ok)
}

/// Polls the job row until the job ends; its result is the backup's report.
fn follow(
    client: &Client,
    job_id: &str,
    observer: Option<&kalamdb_backup::Observer>,
) -> Result<CreateReport, CliError> {
    let query = format!(
        "SELECT status, progress, result, error_message, error_code FROM system.jobs WHERE job_id = '{}'",
        job_id.replace('\'', "''")
    );
    loop {
        let row = client.sql(&query)?;
        let progress: Value = row["progress"]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        if let Some(o) = observer {
            o(Transfer {
                phase: Phase::Copying,
                files_done: progress["items_done"].as_u64().unwrap_or(0),
                files_total: progress["items_total"].as_u64().unwrap_or(0),
                bytes_done: progress["bytes_done"].as_u64().unwrap_or(0),
                bytes_total: progress["bytes_total"].as_u64().unwrap_or(0),
            });
        }
        match row["status"].as_str() {
            Some("completed") => {
                return row["result"]
                    .as_str()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .ok_or_else(|| {
                        remote(
                            ExitCode::Aborted,
                            "the backup job completed without a readable result",
                        )
                    });
            }
            Some(s @ ("failed" | "cancelled")) => {
                let why = row["error_message"]
                    .as_str()
                    .unwrap_or("no reason recorded");
                // The job's recorded kind, as kalamd would have answered it.
                let code = row["error_code"]
                    .as_str()
                    .and_then(WireCode::parse)
                    .map_or(ExitCode::Aborted, |c| ExitCode::from_code(c.exit_code()));
                return Err(remote(code, &format!("backup job {job_id} {s}: {why}")));
            }
            Some(_) => std::thread::sleep(POLL),
            None => {
                return Err(remote(
                    ExitCode::Aborted,
                    &format!("job {job_id} is not in system.jobs"),
                ));
            }
        }
    }
}
