//! Flush: moving a table's hot rows (RocksDB) into Parquet files.
//!
//! Hot rows stream out of RocksDB in key order and into batch files as they come: user tables
//! get one file per user (under the storage path with `${user_id}` resolved), shared tables
//! one file, each cut into several when it passes [`Engine::flush_file_rows`] rows or about
//! 32 MiB of row data, so a flush holds one file's rows at a time, whatever the table's size.
//! Each file is written durably (see [`crate::cold::parquet`]); then
//! one RocksDB write records it in the cold-tier manifest and removes the flushed keys, so
//! the rows move tiers atomically: a crash before that write leaves an unrecorded file that
//! no read sees (`verify` reports it, `--repair` removes it), never a recorded file that does
//! not exist. The next flush of those rows removes such a file first (its rows are all still
//! hot). Soft-deleted rows are flushed too, so nothing is silently lost. The table's
//! write lock is held throughout, so no write lands between reading a row and removing its
//! key. Every flush is a `flush` job.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use kalamdb_sql::JobProgress;
use kalamdb_store::keys::TableCf;
use kalamdb_store::{Batch, Row, TableKind};
use serde::Serialize;
use serde_json::json;

use crate::catalog::TableDef;
use crate::catalog::types::{ROW_ID, arrow_schema};
use crate::cold::arrow_rows::rows_to_batch;
use crate::cold::manifest::{self, Content, Owner};
use crate::cold::parquet::write_batch_file;
use crate::cold::paths::StorageTemplate;
use crate::cold::uploads::Uploads;
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
        // Refused before any job row: a location whose credentials are not configured is
        // not a failed flush.
        self.catalog()
            .storage_template(&def.record, def.kind)
            .map_err(|e| match e {
                CoreError::Conflict(why) => CoreError::Conflict(format!(
                    "{why}; the rows of {} stay in RocksDB",
                    def.qualified()
                )),
                other => other,
            })?;
        // The table's flush lock: no other flush, no drop. Writers go on; each file's commit
        // takes the table alone (see `write_chunk`).
        let lock = self.table_lock(namespace, table);
        let _flushing = lock.flushing().await;
        let _cold = self.cold_gate().read().await;
        let params = vec![
            namespace.to_string(),
            table.to_string(),
            def.kind.to_string(),
        ];
        crate::blocking::run(|| {
            run_job(self, job_type::FLUSH, &def.qualified(), params, |job| {
                let job_id = job.id().to_string();
                let mut report = self.flush_locked(&def, &job_id, |rows, total| {
                    job.progress(JobProgress {
                        fraction: if total == 0 {
                            0.0
                        } else {
                            (rows as f64 / total as f64).min(1.0)
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
        progress: impl FnMut(u64, u64) -> Result<()>,
    ) -> Result<FlushReport> {
        let (ns, t) = (def.namespace(), def.name());
        let mut flush = Stream {
            engine: self,
            def,
            template: self.catalog().storage_template(&def.record, def.kind)?,
            schema: arrow_schema(
                &def.columns,
                true,
                &[Field::new(ROW_ID, DataType::Utf8, false)],
            ),
            job_id,
            max_rows: self.flush_file_rows(),
            chunk: Chunk::default(),
            reclaimed: None,
            lock: self.table_lock(ns, t),
            released_before: 0,
            report: FlushReport::default(),
            // An estimate, for the progress bar only.
            total: self
                .storage()
                .estimate_keys(&TableCf::new(def.kind, ns, t).name())
                .unwrap_or(0),
            progress,
        };
        // Read before the scan below takes its snapshot.
        flush.released_before = flush.lock.released();
        // Hot rows arrive in key order: one user's rows are consecutive. A failure to write
        // a file stops the scan and is the flush's error.
        let mut failed = None;
        let mut step = |user: &str, id: &str, row: Row| match flush.add(user, id, row) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        };
        match def.kind {
            TableKind::User => self
                .user_store()
                .scan_all(ns, t, |user, id, row| Ok(step(user, id, row)))?,
            _ => self
                .shared_store()
                .scan_all(ns, t, |id, row| Ok(step("", id, row)))?,
        }
        if let Some(e) = failed {
            return Err(e);
        }
        flush.write_chunk()?;
        Ok(flush.report)
    }
}

/// Row data a flush holds before it writes a batch file: 32 MiB as JSON text, roughly
/// (held as JSON values, then as an Arrow batch, it takes about three times that).
const FILE_BYTES: usize = 32 << 20;

/// One user's rows (`""`: a shared table's) on their way into one batch file.
#[derive(Default)]
struct Chunk {
    user: String,
    ids: Vec<String>,
    rows: Vec<Row>,
    /// The rows' size as JSON text, roughly.
    bytes: usize,
}

impl Chunk {
    fn push(&mut self, id: &str, row: Row) {
        let size = row.iter().fold(id.len(), |n, (k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.len(),
                _ => 8,
            };
            n.saturating_add(k.len()).saturating_add(value)
        });
        self.bytes = self.bytes.saturating_add(size);
        self.ids.push(id.to_string());
        self.rows.push(row);
    }

    fn is_full(&self, max_rows: usize) -> bool {
        self.ids.len() >= max_rows || self.bytes >= FILE_BYTES
    }
}

/// A flush in progress: rows stream in, in key order; a batch file is written, recorded and
/// its rows' keys removed whenever a user's rows end or a chunk is full.
struct Stream<'a, P> {
    engine: &'a Engine,
    def: &'a TableDef,
    template: StorageTemplate,
    schema: SchemaRef,
    job_id: &'a str,
    max_rows: usize,
    chunk: Chunk,
    /// The user whose directory was last cleared of what a killed flush left.
    reclaimed: Option<String>,
    lock: std::sync::Arc<crate::table_lock::TableLock>,
    /// The table's count of released writer holds, read before the snapshot the rows come
    /// from (see [`crate::table_lock::TableLock::released`]).
    released_before: u64,
    report: FlushReport,
    total: u64,
    progress: P,
}

impl<P: FnMut(u64, u64) -> Result<()>> Stream<'_, P> {
    fn add(&mut self, user: &str, id: &str, row: Row) -> Result<()> {
        if !self.chunk.ids.is_empty()
            && (self.chunk.user != user || self.chunk.is_full(self.max_rows))
        {
            self.write_chunk()?;
        }
        if self.chunk.ids.is_empty() {
            self.chunk.user = user.to_string();
        }
        self.chunk.push(id, row);
        Ok(())
    }

    fn write_chunk(&mut self) -> Result<()> {
        let chunk = std::mem::take(&mut self.chunk);
        if chunk.ids.is_empty() {
            return Ok(());
        }
        let def = self.def;
        let (ns, t) = (def.namespace(), def.name());
        let user = chunk.user.as_str();
        let user_id = (def.kind == TableKind::User).then_some(user);
        let refs: Vec<&Row> = chunk.rows.iter().collect();
        let batch = rows_to_batch(&self.schema, &refs, &[(ROW_ID, chunk.ids.clone())])?;
        drop(refs);
        let data_dir = self.engine.data_dir();
        let dir = self.template.dir(data_dir, user_id)?;
        // What an earlier flush of these rows left unrecorded when it died goes first.
        if self.reclaimed.as_deref() != Some(user) {
            for file in leftovers::reclaim(self.engine, def.kind, (ns, t), user, &dir)? {
                tracing::info!(file = %file, "removed a batch file a killed flush left unrecorded");
            }
            self.reclaimed = Some(user.to_string());
        }
        let file = write_batch_file(
            &dir,
            &batch,
            &Uploads::new(data_dir.uploads()).of(&def.qualified()),
        )?;
        drop(batch);
        // Between the two tiers: the rows are in an unrecorded file and still in RocksDB.
        crate::fail::point("flush.file_written");
        // The file is durable: record it and remove the keys in one write, holding the table
        // alone. A row written since the scan read it (an UPDATE, a DELETE, an INSERT over a
        // deleted row) stays hot: the newer version, which reads take over the file's.
        let _alone = self.lock.exclusive_blocking()?;
        // No writer's hold ended since the snapshot: every row is as read, none to re-read.
        let unchanged: Vec<String> = if self.lock.released() == self.released_before {
            chunk.ids.clone()
        } else {
            let now = {
                let keys: Vec<&str> = chunk.ids.iter().map(String::as_str).collect();
                match def.kind {
                    TableKind::User => self.engine.user_store().get_many(ns, t, user, &keys)?,
                    _ => self.engine.shared_store().get_many(ns, t, &keys)?,
                }
            };
            chunk
                .ids
                .iter()
                .zip(&chunk.rows)
                .zip(now)
                .filter(|((_, read), now)| now.as_ref() == Some(*read))
                .map(|((id, _), _)| id.clone())
                .collect()
        };
        let owner = Owner {
            namespace: ns,
            table: t,
            user_id: user,
        };
        let content = Content::of_keys(
            chunk.ids.iter().map(String::as_str),
            def.record.schema_version,
        );
        let record =
            manifest::record_for(owner, &self.template, data_dir, &file, content, self.job_id)?;
        let mut write = Batch::new();
        self.engine
            .sql()
            .cold_batches()
            .put_in(&mut write, &record)?;
        let rows = chunk.ids.len() as u64;
        match def.kind {
            TableKind::User => self.engine.user_store().remove_in(
                &mut write,
                ns,
                t,
                unchanged.into_iter().map(|id| (user.to_string(), id)),
            ),
            _ => self
                .engine
                .shared_store()
                .remove_in(&mut write, ns, t, unchanged),
        }
        self.engine.storage().write(write)?;
        self.report.files += 1;
        self.report.rows += rows;
        self.report.bytes += file.size;
        (self.progress)(self.report.rows, self.total)
    }
}
