use kalamdb_store::StoreError;
use thiserror::Error;

/// Errors from the metadata layer.
#[derive(Debug, Error)]
pub enum SqlError {
    #[error(transparent)]
    Store(#[from] StoreError),

    /// A record already exists under that key.
    #[error("system.{table}: '{id}' already exists")]
    AlreadyExists { table: &'static str, id: String },

    /// No record exists under that key.
    #[error("system.{table}: '{id}' does not exist")]
    NotFound { table: &'static str, id: String },

    /// A record could not be serialised; nothing was written.
    #[error("system.{table}: cannot encode '{id}': {reason}")]
    Encode {
        table: &'static str,
        id: String,
        reason: String,
    },

    /// A stored record cannot be read even by the tolerant reader.
    #[error("system.{table}: record at key '{key}' is malformed: {reason}")]
    Malformed {
        table: &'static str,
        key: String,
        reason: String,
    },
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;
