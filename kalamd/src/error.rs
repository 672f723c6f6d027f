//! The daemon's errors and the one mapping from them to exit codes.

use kalamdb_core::{CoreError, ErrorKind};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DaemonError {
    /// A bad configuration file, value or environment override.
    #[error("bad configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(String),
}

/// Exit codes, shared with kalamctl's contract (`specs/cli.md`).
pub fn exit_code(err: &DaemonError) -> i32 {
    match err {
        DaemonError::Config(_) => 2,
        DaemonError::Core(e) => i32::from(e.kind().exit_code()),
        DaemonError::Bind { .. } | DaemonError::Runtime(_) => {
            i32::from(ErrorKind::Internal.exit_code())
        }
    }
}
