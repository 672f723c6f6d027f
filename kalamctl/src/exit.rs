//! The one mapping from errors to exit codes (the contract in `specs/cli.md`).

use kalamdb_core::CoreError;
use thiserror::Error;

/// Exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Ok = 0,
    /// Warnings only (verify).
    Warnings = 1,
    Usage = 2,
    Integrity = 3,
    Locked = 4,
    Aborted = 5,
    IncompatibleFormat = 6,
}

impl ExitCode {
    /// The exit code a failure's kind or kalamd's wire code names (`ErrorKind::exit_code`,
    /// `WireCode::exit_code`); anything unknown is `Aborted`.
    pub fn from_code(code: u8) -> ExitCode {
        match code {
            1 => ExitCode::Warnings,
            2 => ExitCode::Usage,
            3 => ExitCode::Integrity,
            4 => ExitCode::Locked,
            6 => ExitCode::IncompatibleFormat,
            _ => ExitCode::Aborted,
        }
    }
}

/// Errors a command can end with.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An error kalamd reported, with the exit code its kind maps to.
    #[error("{message}")]
    Remote { exit: ExitCode, message: String },
    #[error("cannot read {what}: {source}")]
    Input {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn code_for(err: &CliError) -> ExitCode {
    match err {
        CliError::Usage(_) | CliError::Input { .. } => ExitCode::Usage,
        CliError::Remote { exit, .. } => *exit,
        CliError::Core(e) => ExitCode::from_code(e.kind().exit_code()),
    }
}
