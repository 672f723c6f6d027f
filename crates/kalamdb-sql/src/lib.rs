//! KalamDB's metadata layer: the system-table records. It runs no SQL; the name is the one the
//! architecture KalamDB follows gives this layer (upstream's `kalamdb-sql` crate, whose key
//! layout, "G3", legacy directories carry), so the two read alike.
//!
//! The seven system tables (`users`, `namespaces`, `storage_locations`, `live_queries`,
//! `jobs`, `tables`, `table_schemas`) as typed records with get, insert, update, delete and
//! scan, stored in the column families and under the key prefixes of the kalamdb-sql ("G3")
//! layout, plus the cold-tier manifest (`system_cold_batches`, added in format 2: one record
//! per Parquet batch file). The format marker records which on-disk format a directory holds.
//!
//! Readers are tolerant (missing optional fields, seconds or milliseconds, either spelling of
//! an enum, JSON given as text or as an object); writers are consistent (milliseconds,
//! lowercase enums). `specs/format.md` is the contract.
//!
//! This crate shares the process's one RocksDB handle with `kalamdb-store`: it reaches
//! RocksDB only through [`kalamdb_store::Storage`].

mod error;
mod format;
pub mod records;
mod system_table;
pub mod tolerant;

pub use error::{Result, SqlError};
pub use format::{
    CURRENT_FORMAT_VERSION, FORMAT_MARKER_KEY, FormatMarker, FormatState, tool_version,
};
pub use records::*;
pub use system_table::{InvalidRecord, SystemRecord, SystemTable};

use kalamdb_store::Storage;

/// The column families of the seven system tables and the cold-tier manifest.
pub const SYSTEM_COLUMN_FAMILIES: [&str; 8] = [
    UserRecord::CF,
    NamespaceRecord::CF,
    StorageLocationRecord::CF,
    LiveQueryRecord::CF,
    JobRecord::CF,
    TableRecord::CF,
    TableSchemaRecord::CF,
    ColdBatchRecord::CF,
];

/// Entry point to the system tables over a shared [`Storage`] handle.
#[derive(Debug, Clone)]
pub struct KalamSql {
    storage: Storage,
}

impl KalamSql {
    pub fn new(storage: Storage) -> Self {
        KalamSql { storage }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates any missing system column family.
    pub fn ensure_system_tables(&self) -> Result<()> {
        for cf in SYSTEM_COLUMN_FAMILIES {
            self.storage.create_cf(cf)?;
        }
        Ok(())
    }

    pub fn users(&self) -> SystemTable<UserRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn namespaces(&self) -> SystemTable<NamespaceRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn storage_locations(&self) -> SystemTable<StorageLocationRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn live_queries(&self) -> SystemTable<LiveQueryRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn jobs(&self) -> SystemTable<JobRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn tables(&self) -> SystemTable<TableRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn table_schemas(&self) -> SystemTable<TableSchemaRecord> {
        SystemTable::new(self.storage.clone())
    }
    pub fn cold_batches(&self) -> SystemTable<ColdBatchRecord> {
        SystemTable::new(self.storage.clone())
    }

    /// The manifest entries of one user's batches (`""` for a shared table), in write order.
    pub fn batches_of(
        &self,
        namespace: &str,
        table: &str,
        user_id: &str,
    ) -> Result<Vec<ColdBatchRecord>> {
        let mut all = self
            .cold_batches()
            .scan_prefix(&ColdBatchRecord::user_prefix(namespace, table, user_id))?;
        all.sort_by_key(ColdBatchRecord::write_order);
        Ok(all)
    }

    /// Every manifest entry of a table, all users.
    pub fn table_batches(&self, namespace: &str, table: &str) -> Result<Vec<ColdBatchRecord>> {
        self.cold_batches()
            .scan_prefix(&ColdBatchRecord::table_prefix(namespace, table))
    }

    /// Every schema version of one table, oldest first.
    pub fn schemas_of(&self, namespace: &str, table: &str) -> Result<Vec<TableSchemaRecord>> {
        let mut all = self
            .table_schemas()
            .scan_prefix(&format!("{namespace}:{table}:"))?;
        all.sort_by_key(|s| s.version);
        Ok(all)
    }

    /// Reads the format marker and says what the directory holds.
    pub fn format_state(&self) -> Result<FormatState> {
        FormatMarker::state(&self.storage)
    }

    /// Writes the format marker for the current format.
    pub fn write_format_marker(&self) -> Result<()> {
        FormatMarker::write_current(&self.storage)
    }
}
