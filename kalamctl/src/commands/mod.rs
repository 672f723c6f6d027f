//! One module per command.

mod backup;
mod init;
mod jobs;
mod live;
mod migrate;
mod sql;
mod table;
mod verify;

use kalamdb_verify::VerifyOptions;
use std::future::Future;
use std::path::Path;

use kalamdb_core::{Access, Engine};

use crate::cli::{Cli, Command};
use crate::exit::{CliError, ExitCode};

pub fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    if let Some(path) = &cli.config {
        kalamdb_core::cold::object::configure(kalamdb_core::cold::object::profiles_from_file(
            path,
        )?);
    }
    match &cli.command {
        Command::Init => init::run(cli, data_dir(cli)?),
        Command::Sql { user, sql } => sql::run(cli, data_dir(cli)?, user.as_deref(), sql),
        Command::Jobs(command) => jobs::run(cli, data_dir(cli)?, command),
        Command::Table(command) => table::run(cli, data_dir(cli)?, command),
        Command::Live(command) => live::run(cli, command),
        Command::Verify { repair, fast } => verify::run(
            cli,
            data_dir(cli)?,
            VerifyOptions {
                repair: *repair,
                fast: *fast,
            },
        ),
        Command::Migrate(command) => migrate::run(cli, data_dir(cli)?, command),
        Command::Backup(command) => backup::run(cli, command),
        Command::UpgradeCheck {
            scratch,
            keep_scratch,
            skip_invalid,
        } => migrate::upgrade_check(
            cli,
            data_dir(cli)?,
            scratch.as_deref(),
            *keep_scratch,
            *skip_invalid,
        ),
    }
}

pub(crate) fn data_dir(cli: &Cli) -> Result<&Path, CliError> {
    cli.data_dir
        .as_deref()
        .ok_or_else(|| CliError::Usage("--data-dir is required (or set KALAMDB_DATA_DIR)".into()))
}

/// How this process names itself in the pidfile lock.
fn who(command: &str) -> String {
    format!("kalamctl {command}")
}

/// Opens the directory read-write, as an offline tool: no server runs meanwhile. Every write
/// fsyncs the WAL, so what kalamctl reports done survives a power cut.
fn open_offline(dir: &Path, command: &str) -> Result<Engine, CliError> {
    let engine = Engine::open_with(dir, Access::ReadWrite, &who(command), true)?;
    engine.set_offline();
    Ok(engine)
}

/// Runs a future to completion on a single-threaded runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        // Building a current-thread runtime only fails when the OS refuses basic resources.
        Err(e) => {
            eprintln!("kalamctl: error: cannot start an async runtime: {e}");
            std::process::exit(crate::exit::ExitCode::Aborted as i32)
        }
    }
}
