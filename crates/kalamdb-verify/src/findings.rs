//! The finding codes: stable names, their severity and the fix each suggests.
//! `specs/verify.md` lists them; keep the two in step.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $name:literal, $severity:ident, $repairable:literal, $fix:literal;)*) => {
        /// A kind of inconsistency.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$variant),*];

            /// The stable code, as printed and documented.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name),* }
            }
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity),* }
            }
            /// Whether `verify --repair` fixes it.
            pub fn repairable(self) -> bool {
                match self { $(Code::$variant => $repairable),* }
            }
            /// What an operator should do about it.
            pub fn fix(self) -> &'static str {
                match self { $(Code::$variant => $fix),* }
            }
        }
    };
}

codes! {
    MarkerMissing = "format.marker_missing", Error, false,
        "a directory without a format marker was written by the original engine: run `kalamctl migrate apply`";
    MarkerUnreadable = "format.marker_unreadable", Error, false,
        "restore the directory from a backup; the marker in the default column family is not valid JSON";
    RecordInvalid = "catalog.record_invalid", Error, false,
        "the system-table record cannot be read: restore it from a backup, or delete it and recreate the object";
    TableWithoutData = "catalog.table_without_data", Error, false,
        "the table's data column family is gone: restore from a backup, or DROP TABLE to remove the catalog entry";
    DataWithoutTable = "catalog.data_without_table", Error, false,
        "a data column family holds rows of a table the catalog does not know: restore the table's catalog rows from a backup, or copy the data out and drop the column family";
    EmptyDataWithoutTable = "catalog.empty_data_without_table", Warning, true,
        "an empty data column family of no table: `kalamctl verify --repair` drops it";
    NamespaceMissing = "catalog.namespace_missing", Error, false,
        "the table's namespace does not exist: CREATE NAMESPACE it again, or drop the table";
    TableCountMismatch = "catalog.table_count_mismatch", Warning, true,
        "the namespace's table_count is wrong: `kalamctl verify --repair` recounts it";
    SchemaMissing = "schema.version_missing", Error, false,
        "a schema version is missing (versions must run 1..N and include the current one): restore system.table_schemas from a backup";
    SchemaUnparseable = "schema.unparseable", Error, false,
        "the stored Arrow schema cannot be parsed: restore system.table_schemas from a backup";
    SchemaSystemColumns = "schema.system_columns", Error, false,
        "user and shared schemas must carry _updated and _deleted, stream schemas neither: restore the schema from a backup";
    LocationMissing = "location.missing", Error, false,
        "the table names a storage location that does not exist: recreate the location in system.storage_locations";
    LocationUnreachable = "location.unreachable", Warning, false,
        "the table is on object storage that cannot be reached (its credentials profile is not configured, or the server did not answer): its objects were not checked; pass the config that defines the profile (--config or KALAMDB_CONFIG) and verify again";
    UsageCountMismatch = "location.usage_count_mismatch", Warning, true,
        "the storage location's usage_count is wrong: `kalamctl verify --repair` recounts it";
    KeyInvalid = "data.key_invalid", Error, false,
        "a key does not parse for its table type: the row is unreachable; delete it, or restore the table from a backup";
    ValueInvalid = "data.value_invalid", Error, false,
        "a value is not a JSON object, or its columns do not fit the table's schema: fix or delete the row, or restore from a backup";
    ParquetUnreadable = "cold.parquet_unreadable", Error, false,
        "a Parquet file cannot be opened or its footer read: restore it from a backup; its rows are not visible to queries";
    ParquetSchemaMismatch = "cold.parquet_schema_mismatch", Error, false,
        "a Parquet file's schema matches none of the table's schema versions: restore it from a backup";
    ParquetSystemColumns = "cold.parquet_system_columns", Error, false,
        "a Parquet file lacks _updated or _deleted, so versions and deletes cannot be resolved: restore it from a backup";
    ParquetOrphan = "cold.parquet_orphan", Warning, false,
        "a Parquet file belongs to no known table: move it away (or delete it) once you are sure nothing needs it";
    BatchMissing = "cold.batch_missing", Error, false,
        "the cold-tier manifest records a batch file that is gone: its rows are missing from every query; restore the file from a backup (`kalamctl backup restore`), then verify again";
    BatchSizeMismatch = "cold.batch_size_mismatch", Error, false,
        "a batch file's size differs from the manifest's: it was truncated or replaced; restore it from a backup";
    BatchRowsMismatch = "cold.batch_rows_mismatch", Error, false,
        "a batch file's footer counts other rows than the manifest records: it was replaced; restore it from a backup";
    BatchChecksumMismatch = "cold.batch_checksum_mismatch", Error, false,
        "a batch file's bytes differ from the SHA-256 the manifest records: it is corrupt; restore it from a backup";
    BatchUnrecorded = "cold.batch_unrecorded", Warning, true,
        "a batch file no manifest entry records is never read (a flush died before recording it, or it was copied in by hand): `kalamctl verify --repair` removes it when every row in it is still in the hot tier; otherwise move it away";
    StreamParquet = "cold.stream_parquet", Error, false,
        "stream tables are never flushed, yet this one has Parquet files: move them away";
    ChecksumMismatch = "rocksdb.checksum_mismatch", Error, false,
        "an SST block failed its checksum: the file is corrupt; restore the directory from a backup";
    AbandonedJob = "state.abandoned_job", Warning, true,
        "a job is recorded as running but its process is gone: `kalamctl verify --repair` marks it paused (resumable), completed (a backup its repository holds) or failed";
    StaleLiveQuery = "state.stale_live_query", Warning, true,
        "a live-query row remains while no daemon runs: `kalamctl verify --repair` deletes it";
    UploadOpen = "state.upload_open", Warning, false,
        "a multipart upload a killed process left open: the bucket keeps (and bills) its parts with no object; the table's next flush aborts it, as does dropping the table";
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// What it concerns: `ns.table`, `cf:key`, a file path, a job id, ...
    pub object: String,
    pub message: String,
    pub fix: &'static str,
}

impl Finding {
    pub fn new(code: Code, object: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity(),
            object: object.into(),
            message: message.into(),
            fix: code.fix(),
        }
    }
}
