//! Flush: moving a table's hot rows (RocksDB) into Parquet files.
//!
//! User tables get one file per user, under the storage path with `${user_id}` resolved;
//! shared tables one file. Each file is written durably (see [`crate::cold::parquet`]); then
//! one RocksDB write records it in the cold-tier manifest and removes the flushed keys, so
//! the rows move tiers atomically: a crash before that write leaves an unrecorded file that
//! no read sees (`verify` reports it, `--repair` removes it), never a recorded file that does
//! not exist. The next flush of those rows removes such a file first (its rows are all still
//! hot). Soft-deleted rows are flushed too, so nothing is silently lost. The table's
//! write lock is held throughout, so no write lands between reading a row and removing its
//! key. Every flush is a `flush` job.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{DataType, Field};
use kalamdb_sql::JobProgress;
use kalamdb_store::{Batch, Row, TableKind};
use serde::Serialize;
use serde_json::json;

use crate::catalog::TableDef;
use crate::catalog::types::{ROW_ID, arrow_schema};
use crate::cold::arrow_rows::rows_to_batch;
use crate::cold::manifest::{self, Content, Owner};
use crate::cold::parquet::write_batch_file;
use crate::jobs::{job_type, run_job};
use crate::leftovers;
use crate::{CoreError, Engine, Result};

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    pub job_id: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

impl Engine {
    /// Flushes one table's hot rows to Parquet.
    pub async fn flush_table(&self, namespace: &str, table: &str) -> Result<FlushReport> {
        let def = self.catalog().table(namespace, table)?;
        if def.kind == TableKind::Stream {
            return Err(CoreError::InvalidInput(format!(
                "{} is a stream table; stream tables live only in the hot tier and are never flushed",
                def.qualified()
            )));
        }
        // Refused before any job row: a location this build cannot write is not a failed flush.
        self.catalog().writable_template(&def.record, def.kind)?;
        let lock = self.table_lock(namespace, table);
        let _guard = lock.lock().await;
        let _cold = self.cold_gate().read().await;
        let params = vec![
            namespace.to_string(),
            table.to_string(),
            def.kind.to_string(),
        ];
        crate::blocking::run(|| {
            run_job(self, job_type::FLUSH, &def.qualified(), params, |job| {
                let job_id = job.id().to_string();
                let mut report = self.flush_locked(&def, &job_id, |done, total, rows| {
                    job.progress(JobProgress {
                        fraction: if total == 0 {
                            1.0
                        } else {
                            done as f64 / total as f64
                        },
                        items_done: rows,
                        items_total: 0,
                        bytes_done: 0,
                        ..JobProgress::default()
                    })
                })?;
                report.job_id = job.id().to_string();
                self.stats().flushed(report.rows);
                let result =
                    json!({"files": report.files, "rows": report.rows, "bytes": report.bytes});
                Ok((report, result))
            })
        })
    }

    fn flush_locked(
        &self,
        def: &TableDef,
        job_id: &str,
        mut progress: impl FnMut(usize, usize, u64) -> Result<()>,
    ) -> Result<FlushReport> {
        let (ns, t) = (def.namespace(), def.name());
        // Group hot rows by user ("" for shared tables).
        let mut groups: BTreeMap<String, Vec<(String, Row)>> = BTreeMap::new();
        match def.kind {
            TableKind::User => self.user_store().scan_all(ns, t, |user, id, row| {
                groups
                    .entry(user.to_string())
                    .or_default()
                    .push((id.to_string(), row));
                Ok(ControlFlow::Continue(()))
            })?,
            _ => self.shared_store().scan_all(ns, t, |id, row| {
                groups
                    .entry(String::new())
                    .or_default()
                    .push((id.to_string(), row));
                Ok(ControlFlow::Continue(()))
            })?,
        }
        let template = self.catalog().writable_template(&def.record, def.kind)?;
        let schema = arrow_schema(
            &def.columns,
            true,
            &[Field::new(ROW_ID, DataType::Utf8, false)],
        );
        let mut report = FlushReport::default();
        let total = groups.len();
        for (done, (user, rows)) in groups.into_iter().enumerate() {
            let user_id = (def.kind == TableKind::User).then_some(user.as_str());
            let refs: Vec<&Row> = rows.iter().map(|(_, r)| r).collect();
            let ids: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
            let batch = rows_to_batch(&schema, &refs, &[(ROW_ID, ids.clone())])?;
            let dir = template.dir(self.data_dir(), user_id);
            // What an earlier flush of these rows left unrecorded when it died goes first.
            for file in leftovers::reclaim(self, def.kind, (ns, t), &user, &dir)? {
                tracing::info!(file = %file.display(), "removed a batch file a killed flush left unrecorded");
            }
            let file = write_batch_file(&dir, &batch)?;
            // Between the two tiers: the rows are in an unrecorded file and still in RocksDB.
            crate::fail::point("flush.file_written");
            // The file is durable: record it and remove the keys in one write.
            let owner = Owner {
                namespace: ns,
                table: t,
                user_id: &user,
            };
            let content =
                Content::of_keys(ids.iter().map(String::as_str), def.record.schema_version);
            let record =
                manifest::record_for(owner, &template, self.data_dir(), &file, content, job_id)?;
            let mut write = Batch::new();
            self.sql().cold_batches().put_in(&mut write, &record)?;
            match def.kind {
                TableKind::User => self.user_store().remove_in(
                    &mut write,
                    ns,
                    t,
                    ids.into_iter().map(|id| (user.clone(), id)),
                ),
                _ => self.shared_store().remove_in(&mut write, ns, t, ids),
            }
            self.storage().write(write)?;
            report.files += 1;
            report.rows += rows.len() as u64;
            report.bytes += file.size;
            progress(done + 1, total, report.rows)?;
        }
        Ok(report)
    }
}
