use kalamdb_sql::SqlError;
use kalamdb_store::StoreError;
use thiserror::Error;

/// What kind of failure an error is. The binaries map this, and only this, to exit codes
/// and HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed SQL, an invalid name, a wrong type, a duplicate, a path that is no database.
    BadInput,
    /// An unknown namespace, table or job.
    NotFound,
    /// The session's role may not do this.
    PermissionDenied,
    /// Refused because of the current state: live subscriptions, an unfinished deletion, a
    /// job that already ended.
    Conflict,
    /// A job stopped at a safe point because cancellation was asked for.
    Cancelled,
    /// Another process holds the data directory.
    Locked,
    /// The directory holds a format this build does not read (newer, or not yet migrated).
    IncompatibleFormat,
    /// Stored data is corrupt.
    Integrity,
    /// Anything else: the operation was aborted part-way.
    Internal,
}

impl ErrorKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::BadInput,
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Conflict,
        ErrorKind::Cancelled,
        ErrorKind::Locked,
        ErrorKind::IncompatibleFormat,
        ErrorKind::Integrity,
        ErrorKind::Internal,
    ];

    /// The stable code on the wire (kalamd's `error.code`, a job row's `error_code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "forbidden",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Locked => "locked",
            ErrorKind::IncompatibleFormat => "incompatible_format",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind a wire code names.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// kalamctl's and kalamd's exit code for a failure of this kind (`specs/cli.md`).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::BadInput
            | ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::Conflict => 2,
            ErrorKind::Integrity => 3,
            ErrorKind::Locked => 4,
            ErrorKind::Cancelled | ErrorKind::Internal => 5,
            ErrorKind::IncompatibleFormat => 6,
        }
    }

    /// kalamd's HTTP status for a failure of this kind (`specs/http.md`).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::Conflict | ErrorKind::Cancelled | ErrorKind::Locked => 409,
            ErrorKind::Integrity | ErrorKind::IncompatibleFormat | ErrorKind::Internal => 500,
        }
    }
}

/// Errors from the business logic.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("{0}")]
    InvalidInput(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    AlreadyExists(String),

    #[error("permission denied: {0}")]
    PermissionDenied(String),

    #[error("{0}")]
    Conflict(String),

    #[error("job {job_id} was cancelled at a safe point ({at})")]
    Cancelled { job_id: String, at: String },

    /// A signal stopped a job between two of its steps; it is paused and can be finished.
    #[error(
        "interrupted {at}: job {job_id} is paused; finish it with `kalamctl jobs resume {job_id}`"
    )]
    Interrupted { job_id: String, at: String },

    #[error("{path} is not a KalamDB data directory: {reason}")]
    NotADatabase { path: String, reason: String },

    #[error("{path} is already a KalamDB data directory; pick an empty or new directory")]
    AlreadyInitialized { path: String },

    #[error("{path} is locked by {holder}; stop it first (do not delete lock files)")]
    Locked { path: String, holder: String },

    #[error(
        "{path} was written by {written_by} (format {found}), newer than this build (format {supported}); upgrade kalamctl/kalamd"
    )]
    NewerFormat {
        path: String,
        written_by: String,
        found: u32,
        supported: u32,
    },

    #[error(
        "{path} holds an unmigrated {what}; run `kalamctl migrate apply --data-dir {path}` first"
    )]
    Unmigrated { path: String, what: String },

    #[error(
        "{path}: the format marker is unreadable ({reason}); run `kalamctl verify --data-dir {path}`"
    )]
    UnreadableFormat { path: String, reason: String },

    #[error("{path}: the on-disk generation cannot be recognised: {reason}")]
    UnrecognisedLayout { path: String, reason: String },

    #[error(
        "{path} mixes generations ({evidence}); a directory is written by one engine version, so restore it from a backup or separate the data"
    )]
    MixedGenerations { path: String, evidence: String },

    #[error(
        "{count} record(s) cannot be converted, e.g. {first}; fix them, or pass --skip-invalid to migrate without them (`kalamctl migrate plan` lists them all)"
    )]
    InvalidRecords { count: usize, first: String },

    #[error(
        "the directory changed since plan {expected}: it now plans {actual}; run `kalamctl migrate plan` again and review it"
    )]
    PlanChanged { expected: String, actual: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Catalog(SqlError),

    #[error("query failed: {0}")]
    Query(String),

    /// An engine error that came back through DataFusion (a table provider's scan): its
    /// message and kind, so a corrupt file read by a query is still an integrity error.
    #[error("{message}")]
    Relayed { kind: ErrorKind, message: String },

    /// A backup repository or a restored copy that does not match its manifest.
    #[error("{0}")]
    BackupDamaged(String),

    /// Object storage failed or could not be reached (after its retries).
    #[error("object storage {location}: {reason}")]
    ObjectStore { location: String, reason: String },

    #[error("parquet file {path}: {reason}")]
    Parquet { path: String, reason: String },

    /// A value to be stored could not be serialised; nothing was written.
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<SqlError> for CoreError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Store(s) => CoreError::Store(s),
            SqlError::AlreadyExists { .. } => CoreError::AlreadyExists(e.to_string()),
            SqlError::NotFound { .. } => CoreError::NotFound(e.to_string()),
            other => CoreError::Catalog(other),
        }
    }
}

impl From<datafusion::error::DataFusionError> for CoreError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e.find_root() {
            D::SQL(..) | D::Plan(..) | D::SchemaError(..) | D::NotImplemented(..) => {
                CoreError::InvalidInput(first_line(&e.strip_backtrace()))
            }
            D::External(inner) => match inner.downcast_ref::<CoreError>() {
                Some(core) => CoreError::Relayed {
                    kind: core.kind(),
                    message: core.to_string(),
                },
                None => CoreError::Query(first_line(&e.strip_backtrace())),
            },
            _ => CoreError::Query(first_line(&e.strip_backtrace())),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

impl CoreError {
    /// A directory whose marker names a format newer than this build's.
    pub fn newer_format(path: String, marker: kalamdb_sql::FormatMarker) -> Self {
        CoreError::NewerFormat {
            path,
            written_by: marker.written_by,
            found: marker.format_version,
            supported: kalamdb_sql::CURRENT_FORMAT_VERSION,
        }
    }

    /// `value` as JSON text for storage; an error (never empty text) if it cannot be.
    pub fn encode_json<T: serde::Serialize + ?Sized>(what: &str, value: &T) -> Result<String> {
        serde_json::to_string(value).map_err(|e| CoreError::Encode {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// `value` as JSON bytes for storage; an error (never empty bytes) if it cannot be.
    pub fn encode_json_bytes<T: serde::Serialize + ?Sized>(
        what: &str,
        value: &T,
    ) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| CoreError::Encode {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::InvalidInput(_)
            | CoreError::AlreadyExists(_)
            | CoreError::NotADatabase { .. }
            | CoreError::AlreadyInitialized { .. } => ErrorKind::BadInput,
            CoreError::NotFound(_) => ErrorKind::NotFound,
            CoreError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            CoreError::Conflict(_) => ErrorKind::Conflict,
            CoreError::Cancelled { .. } | CoreError::Interrupted { .. } => ErrorKind::Cancelled,
            CoreError::Locked { .. } => ErrorKind::Locked,
            CoreError::PlanChanged { .. } => ErrorKind::Conflict,
            CoreError::Relayed { kind, .. } => *kind,
            CoreError::NewerFormat { .. }
            | CoreError::UnrecognisedLayout { .. }
            | CoreError::Unmigrated { .. }
            | CoreError::UnreadableFormat { .. } => ErrorKind::IncompatibleFormat,
            CoreError::Store(StoreError::Locked { .. }) => ErrorKind::Locked,
            CoreError::Store(StoreError::NotADatabase { .. }) => ErrorKind::BadInput,
            CoreError::Store(StoreError::Corrupt { .. } | StoreError::Corruption(_))
            | CoreError::Catalog(SqlError::Malformed { .. })
            | CoreError::MixedGenerations { .. }
            | CoreError::InvalidRecords { .. }
            | CoreError::BackupDamaged(_)
            | CoreError::Parquet { .. } => ErrorKind::Integrity,
            CoreError::Store(_)
            | CoreError::Catalog(_)
            | CoreError::Query(_)
            | CoreError::Encode { .. }
            | CoreError::ObjectStore { .. }
            | CoreError::Io { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_has_its_own_wire_code_and_it_round_trips() {
        let mut codes: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert_eq!(ErrorKind::from_code("no_such_code"), None);
    }
}
