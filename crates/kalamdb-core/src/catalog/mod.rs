//! Namespaces and tables: the business rules over `kalamdb-sql`'s system tables.

mod locations;
pub mod names;
mod table_def;
pub mod types;

pub use locations::{LocationChange, NewLocation};
pub use table_def::{PRIMARY_KEY_OPTION, TableDef, is_system_column, schema_json};

use kalamdb_sql::{
    FlushPolicy, KalamSql, LocationType, NamespaceRecord, StorageLocationRecord, TableRecord,
    TableSchemaRecord, TableType,
};
use kalamdb_store::{Batch, TableKind, now_ms};

use crate::cold::paths::StorageTemplate;
use crate::data_dir::DataDir;
use crate::{CoreError, Result};
use types::ColumnDef;

/// The storage location every new database has; its path is relative to the data directory.
pub const DEFAULT_LOCATION: &str = "local";
pub const DEFAULT_LOCATION_PATH: &str = "storage";

/// The `local` storage location every database has, created at `now`.
pub fn default_location(now: i64) -> StorageLocationRecord {
    StorageLocationRecord {
        location_name: DEFAULT_LOCATION.into(),
        location_type: LocationType::Filesystem,
        path: DEFAULT_LOCATION_PATH.into(),
        credentials_ref: None,
        usage_count: 0,
        created_at: now,
        updated_at: now,
    }
}

/// The effective storage location of a table: a location name or a path template.
pub fn location_of(t: &TableRecord) -> &str {
    match t.storage_location.trim() {
        "" => DEFAULT_LOCATION,
        l => l,
    }
}

/// What `CREATE ... TABLE` asks for, already parsed.
#[derive(Debug, Clone)]
pub struct NewTable {
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Option<String>,
    pub storage: Option<String>,
    pub flush_policy: Option<FlushPolicy>,
    pub deleted_retention_hours: Option<u64>,
    pub ttl_seconds: Option<u64>,
    pub max_buffer: Option<u64>,
}

/// Business rules over the system tables.
#[derive(Debug, Clone)]
pub struct Catalog {
    sql: KalamSql,
    dir: DataDir,
}

impl Catalog {
    pub fn new(sql: KalamSql, dir: DataDir) -> Self {
        Catalog { sql, dir }
    }

    pub fn sql(&self) -> &KalamSql {
        &self.sql
    }

    /// Writes what a new database starts with: the default storage location.
    pub fn bootstrap(&self) -> Result<()> {
        let local = default_location(now_ms());
        if !self.sql.storage_locations().exists(DEFAULT_LOCATION)? {
            self.sql.storage_locations().insert(&local)?;
        }
        Ok(())
    }

    // ---- namespaces ----

    pub fn namespace(&self, name: &str) -> Result<NamespaceRecord> {
        self.sql
            .namespaces()
            .get(name)?
            .ok_or_else(|| missing_namespace(name))
    }

    pub fn namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        Ok(self.sql.namespaces().scan()?)
    }

    /// Returns whether it was created (false: it existed and `if_not_exists` was given).
    pub fn create_namespace(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        names::validate_namespace(name)?;
        if self.sql.namespaces().exists(name)? {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(CoreError::AlreadyExists(format!(
                    "namespace '{name}' already exists"
                )))
            };
        }
        self.sql.namespaces().insert(&NamespaceRecord {
            namespace_id: name.into(),
            name: name.into(),
            created_at: now_ms(),
            options: "{}".into(),
            table_count: 0,
        })?;
        Ok(true)
    }

    pub fn alter_namespace(&self, name: &str, options: Vec<(String, String)>) -> Result<()> {
        let mut ns = self.namespace(name)?;
        let mut map = ns.options_map();
        for (k, v) in options {
            map.insert(k, v.into());
        }
        ns.options = serde_json::Value::Object(map).to_string();
        self.sql.namespaces().update(&ns)?;
        Ok(())
    }

    /// Refused while the namespace has tables; the refusal names them.
    pub fn drop_namespace(&self, name: &str, if_exists: bool) -> Result<bool> {
        if !self.sql.namespaces().exists(name)? {
            return if if_exists {
                Ok(false)
            } else {
                Err(missing_namespace(name))
            };
        }
        let tables = self.tables(Some(name))?;
        if !tables.is_empty() {
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("{}.{}", t.namespace, t.table_name))
                .collect();
            return Err(CoreError::InvalidInput(format!(
                "namespace '{name}' still has {} table(s): {}; drop them first",
                list.len(),
                list.join(", ")
            )));
        }
        self.sql.namespaces().delete(name)?;
        Ok(true)
    }

    // ---- tables ----

    pub fn tables(&self, namespace: Option<&str>) -> Result<Vec<TableRecord>> {
        let prefix = namespace.map(|ns| format!("{ns}:")).unwrap_or_default();
        Ok(self.sql.tables().scan_prefix(&prefix)?)
    }

    pub fn find_table(&self, namespace: &str, table: &str) -> Result<Option<TableDef>> {
        let Some(record) = self
            .sql
            .tables()
            .get(&TableRecord::id_for(namespace, table))?
        else {
            return Ok(None);
        };
        let schema_id = TableSchemaRecord::id_for(&record.table_id, record.schema_version);
        let schema = self.sql.table_schemas().get(&schema_id)?.ok_or_else(|| {
            CoreError::Catalog(kalamdb_sql::SqlError::Malformed {
                table: "table_schemas",
                key: format!("schema:{schema_id}"),
                reason: "the table's current schema version is missing".into(),
            })
        })?;
        Ok(Some(TableDef::from_records(record, &schema)?))
    }

    pub fn table(&self, namespace: &str, table: &str) -> Result<TableDef> {
        self.find_table(namespace, table)?.ok_or_else(|| {
            if self.sql.namespaces().exists(namespace).unwrap_or(false) {
                CoreError::NotFound(format!(
                    "table '{namespace}.{table}' does not exist; see SHOW TABLES IN {namespace}"
                ))
            } else {
                missing_namespace(namespace)
            }
        })
    }

    /// Where a table's Parquet files live. A location on object storage comes with its
    /// client, built from the location's credentials profile; a profile the configuration
    /// does not define is an error naming the location and the fix.
    pub fn storage_template(
        &self,
        record: &TableRecord,
        kind: TableKind,
    ) -> Result<StorageTemplate> {
        let location = location_of(record);
        match self.sql.storage_locations().get(location)? {
            Some(loc) => StorageTemplate::for_location(
                &loc.path,
                kind,
                &record.namespace,
                &record.table_name,
            )
            .resolve(loc.credentials_ref.as_deref(), &loc.location_name),
            None => {
                StorageTemplate::for_path(location, kind, &record.namespace, &record.table_name)
            }
        }
    }

    /// Object-store locations whose client cannot be built (an undefined profile, no
    /// credentials in the environment), each with the reason.
    pub fn unresolved_location(&self, loc: &StorageLocationRecord) -> Option<String> {
        if !loc.is_object_store() {
            return None;
        }
        StorageTemplate::for_location(&loc.path, TableKind::Shared, "n", "t")
            .resolve(loc.credentials_ref.as_deref(), &loc.location_name)
            .err()
            .map(|e| e.to_string())
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Writes the catalog rows of a new table atomically: its `system.tables` row, schema
    /// version 1, the namespace's `table_count` and the location's `usage_count`.
    /// The caller creates the column family first.
    pub fn create_table(&self, t: &NewTable) -> Result<TableRecord> {
        let mut ns = self.namespace(&t.namespace)?;
        let storage = t
            .storage
            .clone()
            .unwrap_or_else(|| DEFAULT_LOCATION.to_string());
        let mut location = self.sql.storage_locations().get(&storage)?;
        // A table on object storage whose credentials are not configured could never be
        // flushed or read back: refused now, with the fix.
        if let Some(why) = location.as_ref().and_then(|l| self.unresolved_location(l)) {
            return Err(CoreError::Conflict(why));
        }
        if location.is_none() {
            // Not a location name: it must be a valid path template.
            StorageTemplate::for_path(&storage, t.kind, &t.namespace, &t.name)?;
        }
        let now = now_ms();
        let table_id = TableRecord::id_for(&t.namespace, &t.name);
        let record = TableRecord {
            table_id: table_id.clone(),
            table_name: t.name.clone(),
            namespace: t.namespace.clone(),
            table_type: TableType::from(t.kind),
            created_at: now,
            storage_location: storage,
            flush_policy: match t.flush_policy {
                Some(p) => CoreError::encode_json("a flush policy", &p)?,
                None => String::new(),
            },
            schema_version: 1,
            deleted_retention_hours: t.deleted_retention_hours,
            ttl_seconds: t.ttl_seconds,
            max_buffer: t.max_buffer,
        };
        let schema = schema_json(t.kind, &t.columns, t.primary_key.as_deref());
        let schema_record = TableSchemaRecord {
            schema_id: TableSchemaRecord::id_for(&table_id, 1),
            table_id,
            version: 1,
            arrow_schema: CoreError::encode_json("a table schema", &schema)?,
            created_at: now,
            changes: "[\"created\"]".into(),
        };
        let mut batch = Batch::new();
        self.sql.tables().put_in(&mut batch, &record)?;
        self.sql
            .table_schemas()
            .put_in(&mut batch, &schema_record)?;
        ns.table_count = self.tables(Some(&t.namespace))?.len() as u64 + 1;
        self.sql.namespaces().put_in(&mut batch, &ns)?;
        if let Some(loc) = location.as_mut() {
            loc.usage_count += 1;
            loc.updated_at = now;
            self.sql.storage_locations().put_in(&mut batch, loc)?;
        }
        self.sql.storage().write(batch)?;
        Ok(record)
    }
}

fn missing_namespace(name: &str) -> CoreError {
    CoreError::NotFound(format!(
        "namespace '{name}' does not exist; create it with CREATE NAMESPACE {name}"
    ))
}
