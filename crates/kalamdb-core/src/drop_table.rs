//! The one table-deletion routine. `DROP TABLE` (SQL, through kalamd or `kalamctl sql`) uses it.
//!
//! Steps, in order: refuse while live subscriptions exist; record a `table_deletion` job;
//! remove the `system.tables` row so no new query sees the table; drop the data column family
//! (constant time in the row count); delete the table's Parquet files for every user; delete
//! every schema version; recount the namespace's `table_count` and decrement the location's
//! `usage_count`; finish the job with what was freed.

use std::path::Path;
use std::time::Instant;

use kalamdb_sql::TableSchemaRecord;
use kalamdb_store::{Batch, TableKind};
use serde::Serialize;
use serde_json::json;

use crate::catalog::TableDef;
use crate::cold::paths::{StorageTemplate, batch_files};
use crate::jobs::{job_type, run_job};
use crate::{CoreError, Engine, Result};

/// What a drop removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropReport {
    pub job_id: String,
    pub files_deleted: u64,
    pub bytes_freed: u64,
    /// RocksDB's estimate of the hot rows dropped.
    pub rows_estimate: u64,
    pub duration_ms: u64,
}

impl Engine {
    /// Drops a table. `kind`, when given, must match the table's. Returns `None` when the
    /// table did not exist and `if_exists` was given.
    pub async fn drop_table(
        &self,
        namespace: &str,
        table: &str,
        kind: Option<TableKind>,
        if_exists: bool,
    ) -> Result<Option<DropReport>> {
        let _ddl = self.ddl_guard().await;
        let def = match self.catalog().find_table(namespace, table)? {
            Some(def) => def,
            None if if_exists => return Ok(None),
            // Under the DDL lock the table cannot appear meanwhile: this yields the NotFound error.
            None => return self.catalog().table(namespace, table).map(|_| None),
        };
        if let Some(k) = kind.filter(|k| *k != def.kind) {
            return Err(CoreError::InvalidInput(format!(
                "{} is a {} table, not a {k} table; use DROP {} TABLE",
                def.qualified(),
                def.kind,
                def.kind.as_str().to_uppercase()
            )));
        }
        let subscribers: Vec<String> = self
            .sql()
            .live_queries()
            .scan_lenient()?
            .0
            .into_iter()
            .filter(|lq| lq.targets(namespace, table))
            .map(|lq| lq.live_id)
            .collect();
        if !subscribers.is_empty() {
            return Err(CoreError::InvalidInput(format!(
                "{} has {} live subscription(s): {}; close them first",
                def.qualified(),
                subscribers.len(),
                subscribers.join(", ")
            )));
        }
        let lock = self.table_lock(namespace, table);
        let _guard = lock.lock().await;
        let started = Instant::now();
        let params = vec![
            namespace.to_string(),
            table.to_string(),
            def.kind.to_string(),
        ];
        let report = run_job(
            self.sql(),
            job_type::TABLE_DELETION,
            &def.qualified(),
            params,
            |job| {
                let mut report = self.delete_table_everywhere(&def)?;
                report.job_id = job.id().to_string();
                report.duration_ms = started.elapsed().as_millis() as u64;
                let result = json!({
                    "files_deleted": report.files_deleted,
                    "bytes_freed": report.bytes_freed,
                    "rows_estimate": report.rows_estimate,
                    "duration_ms": report.duration_ms,
                });
                Ok((report, result))
            },
        )?;
        Ok(Some(report))
    }

    fn delete_table_everywhere(&self, def: &TableDef) -> Result<DropReport> {
        let (ns, t) = (def.namespace(), def.name());
        let mut report = DropReport::default();
        let template = self.catalog().storage_template(&def.record, def.kind)?;

        // 1. Out of the catalog: no new query sees the table.
        self.sql().tables().delete(&def.record.table_id)?;

        // 2. The hot tier, in constant time.
        let cf = def.cf().name();
        if self.storage().has_cf(&cf) {
            report.rows_estimate = self.storage().estimate_keys(&cf)?;
            self.storage().drop_cf(&cf)?;
        }

        // 3. The cold tier, for every user.
        let (files, bytes) = delete_parquet(self, &template)?;
        report.files_deleted = files;
        report.bytes_freed = bytes;

        // 4. Every schema version, and the counts.
        let mut batch = Batch::new();
        for schema in self.sql().schemas_of(ns, t)? {
            self.sql()
                .table_schemas()
                .delete_in(&mut batch, &schema.schema_id);
        }
        let stale_current =
            TableSchemaRecord::id_for(&def.record.table_id, def.record.schema_version);
        self.sql()
            .table_schemas()
            .delete_in(&mut batch, &stale_current);
        if let Some(mut nsr) = self.sql().namespaces().get(ns)? {
            nsr.table_count = self.catalog().tables(Some(ns))?.len() as u64;
            self.sql().namespaces().put_in(&mut batch, &nsr);
        }
        if let Some(mut loc) = self
            .sql()
            .storage_locations()
            .get(&def.record.storage_location)?
        {
            loc.usage_count = loc.usage_count.saturating_sub(1);
            loc.updated_at = kalamdb_store::now_ms();
            self.sql().storage_locations().put_in(&mut batch, &loc);
        }
        self.storage().write(batch)?;
        Ok(report)
    }
}

/// Deletes the table's batch files (never anything else), then the directories they leave
/// empty. Returns files and bytes deleted.
fn delete_parquet(engine: &Engine, template: &StorageTemplate) -> Result<(u64, u64)> {
    let dd = engine.data_dir();
    let (mut files, mut bytes) = (0, 0);
    for (_, dir) in template.existing_dirs(dd)? {
        for file in batch_files(&dir)? {
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&file).map_err(|e| CoreError::io(&file, e))?;
            files += 1;
            bytes += size;
        }
        remove_empty_dirs_up_to(&dir, &template.table_root(dd));
    }
    remove_empty_dirs_up_to(&template.table_root(dd), &dd.storage());
    Ok((files, bytes))
}

/// Removes `dir`, then its parents below `stop`, while they are empty.
fn remove_empty_dirs_up_to(dir: &Path, stop: &Path) {
    let mut d = dir.to_path_buf();
    // remove_dir fails on a non-empty or missing directory: either way, stop there.
    while d != stop && std::fs::remove_dir(&d).is_ok() {
        match d.parent() {
            Some(p) if p.starts_with(stop) => d = p.to_path_buf(),
            _ => break,
        }
    }
}
