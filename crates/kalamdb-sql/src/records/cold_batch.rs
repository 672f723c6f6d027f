use serde::{Deserialize, Serialize};

use crate::SystemRecord;
use crate::tolerant;

/// The cold-tier manifest: one record per Parquet batch file, key
/// `batch:{namespace}:{table}:{user_id}:{file_name}` (`user_id` empty for shared tables).
///
/// Added in format 2. A batch is visible to queries exactly when its record exists: flush
/// writes the file durably first, then commits the record together with the removal of the
/// flushed rows from the hot tier. Readers of older formats never open this column family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdBatchRecord {
    pub namespace: String,
    pub table_name: String,
    /// The user whose rows the file holds (user tables); empty for shared tables.
    #[serde(default)]
    pub user_id: String,
    /// The file's name, `batch-{epoch_ms}[-{n}].parquet`.
    pub file_name: String,
    /// The file's path relative to its storage location's base, the user id resolved
    /// (for the default location: `{namespace}/{table}/{user_id}/{file_name}`).
    pub path: String,
    /// Size in bytes.
    #[serde(deserialize_with = "tolerant::count")]
    pub size: u64,
    /// Rows in the file, as its footer records them.
    #[serde(deserialize_with = "tolerant::count")]
    pub row_count: u64,
    /// The smallest and largest row key (`_row_id`, or the primary key of a file that has
    /// none) in the file, compared as text; absent when the file's rows have no key.
    #[serde(default)]
    pub min_key: Option<String>,
    #[serde(default)]
    pub max_key: Option<String>,
    /// The table's schema version the file was written with, when known.
    #[serde(default)]
    pub schema_version: Option<u32>,
    /// The flush job (or migration) that recorded the file.
    #[serde(default)]
    pub job_id: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
}

impl SystemRecord for ColdBatchRecord {
    const TABLE: &'static str = "cold_batches";
    const CF: &'static str = "system_cold_batches";
    const KEY_PREFIX: &'static str = "batch:";
    fn id(&self) -> String {
        Self::id_for(
            &self.namespace,
            &self.table_name,
            &self.user_id,
            &self.file_name,
        )
    }
}

impl ColdBatchRecord {
    pub fn id_for(namespace: &str, table: &str, user_id: &str, file_name: &str) -> String {
        format!("{namespace}:{table}:{user_id}:{file_name}")
    }

    /// The id prefix of every batch of one table.
    pub fn table_prefix(namespace: &str, table: &str) -> String {
        format!("{namespace}:{table}:")
    }

    /// The id prefix of one user's batches (the table's, for shared tables).
    pub fn user_prefix(namespace: &str, table: &str, user_id: &str) -> String {
        format!("{namespace}:{table}:{user_id}:")
    }

    /// Whether the file may hold row `key`, by its recorded key range.
    pub fn may_hold(&self, key: &str) -> bool {
        match (&self.min_key, &self.max_key) {
            (Some(min), Some(max)) => min.as_str() <= key && key <= max.as_str(),
            _ => true,
        }
    }

    /// `batch-{ms}.parquet` and `batch-{ms}-{n}.parquet` order by `(ms, n)`: the order the
    /// files were written in.
    pub fn write_order(&self) -> (i64, u64) {
        batch_order(&self.file_name)
    }
}

/// The write order of a batch file name: `(epoch_ms, n)`.
pub fn batch_order(file_name: &str) -> (i64, u64) {
    let stem = file_name.strip_suffix(".parquet").unwrap_or(file_name);
    let rest = stem.strip_prefix("batch-").unwrap_or(stem);
    let mut parts = rest.splitn(2, '-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let n = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, n)
}
