//! `kalamctl backup create|list|verify|restore|prune|unlock`.

use std::path::Path;

use kalamdb_backup::{self as backup, CreateOptions, RepoLocation, RestoreOptions, VerifyOptions};
use serde_json::json;

use super::{data_dir, open_offline};
use crate::cli::{BackupCommand, Cli, Format};
use crate::exit::{CliError, ExitCode};
use crate::interrupt::interruptible;
use crate::output::{human_bytes, human_time, print_json, render_pairs, render_rows};
use crate::progress::bytes_bar;

mod online;

pub fn run(cli: &Cli, command: &BackupCommand) -> Result<ExitCode, CliError> {
    match command {
        BackupCommand::Create {
            to,
            credentials,
            server: Some(url),
            token,
            rehash,
        } => {
            // The repository is parsed here so that bad input is refused before a request.
            RepoLocation::parse(to, credentials.credentials.as_deref())?;
            online::create(
                cli,
                url,
                token.as_deref(),
                to,
                credentials.credentials.as_deref(),
                *rehash,
            )
        }
        BackupCommand::Create {
            to,
            credentials,
            server: None,
            rehash,
            ..
        } => create(cli, &location(to, credentials)?, *rehash),
        BackupCommand::List { repo, credentials } => list(cli, &location(repo, credentials)?),
        BackupCommand::Verify {
            repo,
            credentials,
            id,
            deep,
        } => verify(cli, &location(repo, credentials)?, *id, *deep),
        BackupCommand::Restore {
            repo,
            credentials,
            id,
            to,
            allow_verify_errors,
        } => restore(
            cli,
            &location(repo, credentials)?,
            *id,
            to,
            *allow_verify_errors,
        ),
        BackupCommand::Prune {
            repo,
            credentials,
            keep,
        } => prune(cli, &location(repo, credentials)?, *keep),
        BackupCommand::Unlock {
            repo,
            credentials,
            remove_all,
        } => unlock(cli, &location(repo, credentials)?, *remove_all),
    }
}

fn unlock(cli: &Cli, repo: &RepoLocation, all: bool) -> Result<ExitCode, CliError> {
    let r = backup::unlock(repo, all)?;
    let code = if r.still_locked() {
        ExitCode::Locked
    } else {
        ExitCode::Ok
    };
    if cli.format == Format::Json {
        print_json(&json!(r));
        return Ok(code);
    }
    if r.locks.is_empty() {
        if !cli.quiet {
            eprintln!("{}: no lock to remove", r.repository);
        }
        return Ok(code);
    }
    let rows = r.locks.iter().map(|l| {
        vec![
            l.lock.clone(),
            l.holder.clone(),
            if l.removed { "removed" } else { "kept" }.to_string(),
            l.reason.clone(),
        ]
    });
    println!(
        "{}",
        render_rows(&["LOCK", "HOLDER", "ACTION", "WHY"], rows)
    );
    if r.still_locked() && !cli.quiet {
        eprintln!(
            "{} is still locked: a lock's holder may still run; once it is gone, run again with --remove-all",
            r.repository
        );
    }
    Ok(code)
}

fn location(repo: &str, c: &crate::cli::Credentials) -> Result<RepoLocation, CliError> {
    Ok(RepoLocation::parse(repo, c.credentials.as_deref())?)
}

fn create(cli: &Cli, repo: &RepoLocation, rehash: bool) -> Result<ExitCode, CliError> {
    let dir = data_dir(cli)?;
    // Refusals about the repository come before the database is opened for writing.
    kalamdb_core::data_dir::DataDir::new(dir).check_is_database()?;
    backup::check_repository(dir, repo)?;
    let engine = open_offline(dir, "backup create").map_err(|e| match e {
        CliError::Core(kalamdb_core::CoreError::Locked { path, holder }) => CliError::Core(
            kalamdb_core::CoreError::Locked {
                path,
                holder: format!(
                    "{holder}; to back up a running kalamd use `kalamctl backup create --server URL --token T --to REPO`"
                ),
            },
        ),
        other => other,
    })?;
    let bar = bytes_bar(cli, "backing up");
    let started = backup::begin(
        &engine,
        CreateOptions {
            repo: repo.clone(),
            rehash,
            observer: bar.as_ref().map(|(_, o)| o.clone()),
            interrupt: Some(interruptible()),
        },
    )?;
    let report = started.run();
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    let r = report?;
    if cli.format == Format::Json {
        print_json(&json!(r));
        return Ok(ExitCode::Ok);
    }
    if !cli.quiet {
        eprintln!(
            "backup {} of {} complete in {}",
            r.backup_id,
            dir.display(),
            r.repository
        );
    }
    println!("{}", render_pairs(&create_pairs(&r)));
    Ok(ExitCode::Ok)
}

fn create_pairs(r: &backup::CreateReport) -> Vec<(&'static str, String)> {
    vec![
        ("backup", r.backup_id.to_string()),
        ("job", r.job_id.clone()),
        ("snapshot at", human_time(r.created_at)),
        (
            "files",
            format!("{} ({})", r.files, human_bytes(r.total_bytes)),
        ),
        (
            "new",
            format!("{} file(s), {}", r.new_files, human_bytes(r.new_bytes)),
        ),
        (
            "read",
            match r.parent {
                Some(p) => format!(
                    "{} file(s), {} (the rest unchanged since backup {p})",
                    r.files_read,
                    human_bytes(r.bytes_read)
                ),
                None => format!("{} file(s), {}", r.files_read, human_bytes(r.bytes_read)),
            },
        ),
        ("tables", format!("{} ({} row(s))", r.tables, r.rows)),
        ("took", format!("{} ms", r.duration_ms)),
    ]
}

fn list(cli: &Cli, repo: &RepoLocation) -> Result<ExitCode, CliError> {
    let backups = backup::list(repo)?;
    if cli.format == Format::Json {
        print_json(&json!({"repository": repo.to_string(), "backups": backups}));
        return Ok(ExitCode::Ok);
    }
    let rows = backups.iter().map(|b| {
        vec![
            b.id.to_string(),
            b.status.to_string(),
            b.created_at.map_or("-".into(), human_time),
            b.parent.map_or("-".into(), |p| p.to_string()),
            b.files.to_string(),
            human_bytes(b.total_bytes),
            human_bytes(b.new_bytes),
            b.tables.to_string(),
            b.rows.to_string(),
            b.problem.clone().unwrap_or_default(),
        ]
    });
    println!(
        "{}",
        render_rows(
            &[
                "id", "status", "created", "parent", "files", "size", "new", "tables", "rows",
                "problem"
            ],
            rows
        )
    );
    Ok(ExitCode::Ok)
}

fn verify(
    cli: &Cli,
    repo: &RepoLocation,
    id: Option<u64>,
    deep: bool,
) -> Result<ExitCode, CliError> {
    let bar = bytes_bar(cli, "verifying");
    let report = backup::verify(&VerifyOptions {
        repo: repo.clone(),
        id,
        deep,
        observer: bar.as_ref().map(|(_, o)| o.clone()),
        interrupt: Some(interruptible()),
    });
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    let code = if report.passed() {
        ExitCode::Ok
    } else {
        ExitCode::Integrity
    };
    if cli.format == Format::Json {
        print_json(&json!(report));
        return Ok(code);
    }
    for p in &report.problems {
        println!("{}: {}", p.problem, p.message);
    }
    let mut pairs = vec![
        (
            "backups",
            report
                .backups_checked
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "checked",
            format!(
                "{} file(s), {}",
                report.objects_checked,
                human_bytes(report.bytes_checked)
            ),
        ),
        ("problems", report.problems.len().to_string()),
    ];
    if let Some(d) = &report.deep {
        pairs.push((
            "deep",
            match &d.error {
                None => format!(
                    "backup {} restored to scratch: verify clean, {} table(s) and {} row(s) match the manifest",
                    d.backup_id, d.tables, d.rows
                ),
                Some(e) => format!("FAILED: {e}"),
            },
        ));
    }
    pairs.push(("took", format!("{} ms", report.duration_ms)));
    println!("{}", render_pairs(&pairs));
    Ok(code)
}

fn restore(
    cli: &Cli,
    repo: &RepoLocation,
    id: Option<u64>,
    to: &Path,
    allow_verify_errors: bool,
) -> Result<ExitCode, CliError> {
    let bar = bytes_bar(cli, "restoring");
    let report = backup::restore(&RestoreOptions {
        repo: repo.clone(),
        id,
        to: to.to_path_buf(),
        observer: bar.as_ref().map(|(_, o)| o.clone()),
        interrupt: Some(interruptible()),
        allow_verify_errors,
    });
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    let r = report?;
    // Restored as asked, but the database it holds has integrity errors: say so, exit 3.
    let code = if r.verify_errors > 0 {
        eprintln!(
            "kalamctl: error: restored to {}, but it holds {} verify error(s) its source had when backed up, first {}; run `kalamctl verify --data-dir {}` and `--repair`",
            r.restored_to,
            r.verify_errors,
            r.first_verify_error.as_deref().unwrap_or("?"),
            r.restored_to
        );
        ExitCode::Integrity
    } else {
        ExitCode::Ok
    };
    if cli.format == Format::Json {
        print_json(&json!(r));
        return Ok(code);
    }
    let mut pairs = vec![
        ("backup", r.backup_id.to_string()),
        ("restored to", r.restored_to.clone()),
        ("job", format!("{} (in the restored database)", r.job_id)),
        ("files", format!("{} ({})", r.files, human_bytes(r.bytes))),
        (
            "checked",
            format!(
                "verify: {} error(s), {} warning(s); {} table(s), {} row(s) match the manifest",
                r.verify_errors, r.verify_warnings, r.tables, r.rows
            ),
        ),
    ];
    for line in &r.relocated {
        pairs.push(("relocated", line.clone()));
    }
    pairs.push(("took", format!("{} ms", r.duration_ms)));
    println!("{}", render_pairs(&pairs));
    Ok(code)
}

fn prune(cli: &Cli, repo: &RepoLocation, keep: usize) -> Result<ExitCode, CliError> {
    let r = backup::prune(repo, keep)?;
    if cli.format == Format::Json {
        print_json(&json!(r));
        return Ok(ExitCode::Ok);
    }
    let ids = |v: &[u64]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    println!(
        "{}",
        render_pairs(&[
            ("kept", ids(&r.kept)),
            ("deleted", ids(&r.deleted)),
            (
                "freed",
                format!(
                    "{} file(s), {}",
                    r.objects_deleted,
                    human_bytes(r.bytes_freed)
                )
            ),
            ("incomplete removed", r.incomplete_removed.to_string()),
            ("open uploads aborted", r.uploads_aborted.to_string()),
        ])
    );
    Ok(ExitCode::Ok)
}
