//! `kalamctl table drop`: the one deletion routine, offline.

use std::path::Path;

use kalamdb_core::{DropOptions, TableKind};
use serde_json::json;

use super::{block_on, open_offline};
use crate::cli::{Cli, Format, TableCommand};
use crate::exit::{CliError, ExitCode};
use crate::output::{human_bytes, print_json};
use crate::progress::job_bar;

pub fn run(cli: &Cli, dir: &Path, command: &TableCommand) -> Result<ExitCode, CliError> {
    match command {
        TableCommand::Drop {
            table,
            if_exists,
            kind,
        } => drop(cli, dir, table, *if_exists, *kind),
    }
}

fn drop(
    cli: &Cli,
    dir: &Path,
    table: &str,
    if_exists: bool,
    kind: Option<TableKind>,
) -> Result<ExitCode, CliError> {
    let (ns, name) = table
        .split_once('.')
        .filter(|(ns, t)| !ns.is_empty() && !t.is_empty() && !t.contains('.'))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{table:?} is not a table name; write it as namespace.table, e.g. app.messages"
            ))
        })?;
    let engine = open_offline(dir, "table drop")?;
    let bar = job_bar(cli, &format!("dropping {table}"));
    // Offline, live-query rows are stale and cleared anyway: no FORCE needed.
    let options = DropOptions {
        kind,
        if_exists,
        force: false,
        observer: bar.as_ref().map(|(_, o)| o.clone()),
        interrupt: Some(crate::interrupt::interruptible()),
    };
    let outcome = block_on(engine.drop_table(ns, name, &options));
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    match outcome? {
        None => match cli.format {
            Format::Json => print_json(&json!({"table": table, "dropped": false})),
            Format::Table if !cli.quiet => println!("table {table} does not exist; nothing to do"),
            Format::Table => {}
        },
        Some(report) => match cli.format {
            Format::Json => {
                let mut value = json!(report);
                value["dropped"] = json!(true);
                print_json(&value);
            }
            Format::Table if !cli.quiet => {
                for id in &report.stale_subscriptions_cleared {
                    eprintln!("kalamctl: warning: cleared stale live-query row {id}");
                }
                if let Some(left) = &report.left_behind {
                    eprintln!("kalamctl: warning: left behind: {left}");
                }
                println!(
                    "dropped {table} (job {}): {} file(s), {} freed, {} of RocksDB files released to background deletion, ~{} row(s), {} ms",
                    report.job_id,
                    report.files_deleted,
                    human_bytes(report.bytes_freed),
                    human_bytes(report.hot_bytes_released),
                    report.rows_estimate,
                    report.duration_ms
                );
            }
            Format::Table => {}
        },
    }
    Ok(ExitCode::Ok)
}
