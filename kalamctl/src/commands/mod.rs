//! One module per command.

mod init;
mod sql;

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::exit::{CliError, ExitCode};

pub fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Init => init::run(cli, data_dir(cli)?),
        Command::Sql { user, sql } => sql::run(cli, data_dir(cli)?, user.as_deref(), sql),
    }
}

fn data_dir(cli: &Cli) -> Result<&Path, CliError> {
    cli.data_dir
        .as_deref()
        .ok_or_else(|| CliError::Usage("--data-dir is required (or set KALAMDB_DATA_DIR)".into()))
}

/// How this process names itself in the pidfile lock.
fn who(command: &str) -> String {
    format!("kalamctl {command}")
}
