//! The one table-deletion routine. `DROP TABLE` (SQL, through kalamd or `kalamctl sql`) and
//! `kalamctl table drop` use it.
//!
//! Steps, in order: refuse while live subscriptions exist (offline, clear the stale rows
//! instead); record a `table_deletion` job; remove the `system.tables` row so no new query sees
//! the table; drop the data column family (constant time in the row count); delete the
//! table's Parquet files for every user and their cold-tier manifest entries; delete every
//! schema version and fix the counts;
//! finish the job with what was freed.
//!
//! The job records each step as it completes, together with the table's row, so a crash at any
//! point leaves a `paused` job that [`Engine::resume_job`] (or kalamd at startup) finishes.
//! Each step is idempotent, and the steps that change counts are written in one batch with
//! their step record, so a resumed drop ends exactly where an uninterrupted one does.

use std::path::Path;
use std::time::Instant;

use kalamdb_sql::{
    JobProgress, JobRecord, JobStatus, SystemRecord as _, TableRecord, TableSchemaRecord,
};
use kalamdb_store::{Batch, TableCf, TableKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cold::ColdPath;
use crate::cold::paths::{StorageTemplate, batch_files};
use crate::jobs::{Job, Observer, finish_with, job_type};
use crate::{CoreError, Engine, Result};

/// What a drop removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropReport {
    pub job_id: String,
    pub table: String,
    pub files_deleted: u64,
    /// Bytes of the Parquet files the drop deleted: freed when it returns.
    pub bytes_freed: u64,
    /// Bytes of the dropped column family's SST files, which RocksDB deletes on a background
    /// thread after the drop returns (or at the next open): freed soon, not yet.
    pub hot_bytes_released: u64,
    /// Rows dropped: RocksDB's estimate of the hot rows plus the rows the deleted Parquet
    /// files' footers record.
    pub rows_estimate: u64,
    pub duration_ms: u64,
    /// Live-query rows of the table cleared because no server was running (offline drops).
    pub stale_subscriptions_cleared: Vec<String>,
    /// Live subscriptions `FORCE` closed before the drop (also in the job's result).
    pub subscriptions_closed: Vec<String>,
    /// What the drop could not delete: the table's objects on a storage location this build
    /// cannot reach (object storage), named so an operator can remove them there.
    pub left_behind: Option<String>,
}

/// How to drop.
#[derive(Clone, Default)]
pub struct DropOptions {
    /// When given, must match the table's kind.
    pub kind: Option<TableKind>,
    pub if_exists: bool,
    /// Close the live subscriptions that target the table first, instead of refusing.
    pub force: bool,
    /// Sees the job row at each step and progress report.
    pub observer: Option<Observer>,
    /// Set by a SIGINT/SIGTERM handler: see [`Job::interruptible`].
    pub interrupt: Option<&'static std::sync::atomic::AtomicBool>,
}

/// The steps, in order. A job's `step` is the last one completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Recorded,
    Uncataloged,
    HotDropped,
    ColdDeleted,
    MetadataDeleted,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::Recorded,
        Step::Uncataloged,
        Step::HotDropped,
        Step::ColdDeleted,
        Step::MetadataDeleted,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Step::Recorded => "recorded",
            Step::Uncataloged => "uncataloged",
            Step::HotDropped => "hot_dropped",
            Step::ColdDeleted => "cold_deleted",
            Step::MetadataDeleted => "metadata_deleted",
        }
    }
    fn parse(s: &str) -> Option<Step> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

/// What a deletion needs to finish after a crash: the table's row, which is gone from the
/// catalog after the first step, and what was freed so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    table: TableRecord,
    /// RocksDB's estimate of the hot rows, taken before the column family went.
    #[serde(default)]
    hot_rows: u64,
    /// Rows in the Parquet files deleted so far (from their footers).
    #[serde(default)]
    cold_rows: u64,
    /// Bytes of the column family's SST files, taken before it went (RocksDB deletes them).
    #[serde(default)]
    hot_bytes: u64,
    /// Live subscriptions `FORCE` closed before the drop.
    #[serde(default)]
    subscriptions_closed: Vec<String>,
    /// The table's objects on object storage, which this build cannot delete.
    #[serde(default)]
    left_behind: Option<String>,
}

/// Whether a deletion job can still be cancelled: only before the table leaves the catalog.
/// After that, the only way to leave nothing behind is to finish.
fn deletion_cancellable(job: &JobRecord) -> bool {
    job.step
        .as_deref()
        .and_then(Step::parse)
        .is_none_or(|s| s < Step::Uncataloged)
}

/// The table-deletion job type: cancellable until the table leaves the catalog, resumable
/// from its last step.
pub(crate) struct TableDeletion;

impl crate::jobs::JobKind for TableDeletion {
    fn job_type(&self) -> &'static str {
        job_type::TABLE_DELETION
    }

    fn cancel_point(&self) -> Option<&'static str> {
        Some("before the table leaves the catalog")
    }

    fn cancel_refused(&self, job: &JobRecord) -> Option<String> {
        (!deletion_cancellable(job)).then(|| {
            format!(
                "{} is already out of the catalog, and stopping now would leave its data behind; finish it with `kalamctl jobs resume {}`",
                job.table_name, job.job_id
            )
        })
    }

    fn resume<'a>(
        &'a self,
        engine: &'a Engine,
        job: JobRecord,
        observer: Option<Observer>,
        interrupt: Option<&'static std::sync::atomic::AtomicBool>,
    ) -> Option<crate::jobs::KindFuture<'a, crate::jobs::Resumed>> {
        Some(Box::pin(async move {
            let report = engine
                .resume_table_deletion(job, observer, interrupt)
                .await?;
            Ok(crate::jobs::Resumed {
                summary: format!(
                    "{} dropped ({} file(s), {} bytes freed)",
                    report.table, report.files_deleted, report.bytes_freed
                ),
                report: serde_json::to_value(&report).unwrap_or_default(),
            })
        }))
    }
}

impl Engine {
    /// Drops a table. Returns `None` when it did not exist and `if_exists` was given.
    pub async fn drop_table(
        &self,
        namespace: &str,
        table: &str,
        options: &DropOptions,
    ) -> Result<Option<DropReport>> {
        let qualified = format!("{namespace}.{table}");
        // Checked before waiting for the DDL lock too: a drop already running answers at
        // once, instead of waiting for it to end.
        self.refuse_if_being_dropped(&qualified)?;
        let _ddl = self.ddl_guard().await;
        self.refuse_if_being_dropped(&qualified)?;
        let Some(def) = self.catalog().find_table(namespace, table)? else {
            if options.if_exists {
                return Ok(None);
            }
            // Under the DDL lock the table cannot appear meanwhile: this yields NotFound.
            return self.catalog().table(namespace, table).map(|_| None);
        };
        if let Some(k) = options.kind.filter(|k| *k != def.kind) {
            return Err(CoreError::InvalidInput(format!(
                "{qualified} is a {} table, not a {k} table; use DROP {} TABLE",
                def.kind,
                def.kind.as_str().to_uppercase()
            )));
        }
        let (cleared, closed) = self.check_subscriptions(namespace, table, options.force)?;
        let lock = self.table_lock(namespace, table);
        // A flush in progress ends first (see `TableLock`).
        let _flushing = lock.flushing().await;
        let _guard = lock.exclusive().await;
        let _cold = self.cold_gate().read().await;
        let params = vec![
            namespace.to_string(),
            table.to_string(),
            def.kind.to_string(),
        ];
        // The files must be reachable to be deleted: a location whose credentials are not
        // configured refuses the drop before anything changes.
        self.catalog().storage_template(&def.record, def.kind)?;
        let mut job = Job::start(self, job_type::TABLE_DELETION, &qualified, params)?;
        job.observe(options.observer.clone());
        job.interruptible(options.interrupt);
        let state = ResumeState {
            table: def.record.clone(),
            hot_rows: 0,
            cold_rows: 0,
            hot_bytes: 0,
            subscriptions_closed: closed,
            left_behind: None,
        };
        job.step(self, Step::Recorded.as_str(), Some(encode(&state)?))?;
        let mut report = crate::blocking::run(|| {
            crate::fail::point("table_deletion.recorded");
            self.run_deletion(job, state, Step::Recorded)
        })?;
        report.stale_subscriptions_cleared = cleared;
        Ok(Some(report))
    }

    /// Finishes a paused deletion job from the step after its last completed one.
    async fn resume_table_deletion(
        &self,
        record: JobRecord,
        observer: Option<Observer>,
        interrupt: Option<&'static std::sync::atomic::AtomicBool>,
    ) -> Result<DropReport> {
        let _ddl = self.ddl_guard().await;
        let corrupt = |reason: &str| {
            CoreError::Conflict(format!("job {} cannot be resumed: {reason}", record.job_id))
        };
        let state: ResumeState = record
            .resume_state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| corrupt("it recorded no table to finish"))?;
        let step = record
            .step
            .as_deref()
            .and_then(Step::parse)
            .ok_or_else(|| corrupt("it recorded no known step"))?;
        let lock = self.table_lock(&state.table.namespace, &state.table.table_name);
        let _flushing = lock.flushing().await;
        let _guard = lock.exclusive().await;
        let _cold = self.cold_gate().read().await;
        let mut job = Job::adopt(self, record)?;
        job.observe(observer);
        job.interruptible(interrupt);
        crate::blocking::run(|| self.run_deletion(job, state, step))
    }

    /// The deletion job of `ns.t` that has not ended, if any.
    pub(crate) fn unfinished_deletion(&self, qualified: &str) -> Result<Option<JobRecord>> {
        let (jobs, _) = self.sql().jobs().scan_lenient()?;
        Ok(jobs.into_iter().find(|j| {
            j.job_type == job_type::TABLE_DELETION
                && j.table_name == qualified
                && !j.status.is_terminal()
                && j.status != JobStatus::Queued
        }))
    }

    fn refuse_if_being_dropped(&self, qualified: &str) -> Result<()> {
        match self.unfinished_deletion(qualified)? {
            Some(job) => Err(CoreError::Conflict(format!(
                "{qualified} is already being dropped by job {} ({}); finish it with `kalamctl jobs resume {}`",
                job.job_id, job.status, job.job_id
            ))),
            None => Ok(()),
        }
    }

    /// Refuses while live subscriptions target the table, unless `force`, which closes them.
    /// Offline (no server running), every live-query row is stale and is cleared. Returns the
    /// ids cleared as stale, and those closed by `force`.
    fn check_subscriptions(
        &self,
        namespace: &str,
        table: &str,
        force: bool,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let targeting: Vec<_> = self
            .sql()
            .live_queries()
            .scan_lenient()?
            .0
            .into_iter()
            .filter(|lq| lq.targets(namespace, table))
            .collect();
        if targeting.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let ids: Vec<String> = targeting.iter().map(|lq| lq.live_id.clone()).collect();
        let offline = self.is_offline();
        if !offline && !force {
            return Err(CoreError::Conflict(format!(
                "{namespace}.{table} has {} live subscription(s): {}; close them first with KILL LIVE QUERY '{}' (SHOW LIVE QUERIES lists them), or drop with DROP TABLE {namespace}.{table} FORCE",
                ids.len(),
                ids.join(", "),
                ids[0]
            )));
        }
        let mut batch = Batch::new();
        for id in &ids {
            self.sql().live_queries().delete_in(&mut batch, id);
        }
        self.storage().write(batch)?;
        self.live().close(
            &ids,
            "table_dropped",
            &format!("{namespace}.{table} was dropped with DROP TABLE ... FORCE"),
        );
        if offline {
            tracing::warn!(table = %format!("{namespace}.{table}"), cleared = ?ids, "cleared stale live-query rows");
            Ok((ids, Vec::new()))
        } else {
            tracing::warn!(table = %format!("{namespace}.{table}"), closed = ?ids, "DROP TABLE FORCE closed live subscriptions");
            Ok((Vec::new(), ids))
        }
    }

    fn run_deletion(&self, job: Job, mut state: ResumeState, done: Step) -> Result<DropReport> {
        let started = Instant::now();
        let start_time = job.record().start_time;
        finish_with(job, |job| {
            let t = state.table.clone();
            let kind = t.table_type.kind().ok_or_else(|| {
                CoreError::InvalidInput(format!("{} is a system table", t.table_id))
            })?;
            let template = self.catalog().storage_template(&t, kind)?;
            let prior = job.record().progress.clone().unwrap_or_default();
            let (mut files, mut bytes) = (prior.items_done, prior.bytes_done);

            if done < Step::Uncataloged {
                // The last safe point: after this, the only way to leave nothing is to finish.
                job.checkpoint("before removing the table from the catalog")?;
                let mut batch = Batch::new();
                self.sql().tables().delete_in(&mut batch, &t.table_id);
                job.step_in(&mut batch, Step::Uncataloged.as_str(), None)?;
                self.storage().write(batch)?;
                crate::fail::point("table_deletion.uncataloged");
                job.stop_point("after removing the table from the catalog")?;
            }
            if done < Step::HotDropped {
                let cf = TableCf::new(kind, &t.namespace, &t.table_name).name();
                if self.storage().has_cf(&cf) {
                    state.hot_rows = self.storage().estimate_keys(&cf)?;
                    state.hot_bytes = self.storage().sst_bytes(&cf)?;
                    self.storage().drop_cf(&cf)?;
                }
                job.step(self, Step::HotDropped.as_str(), Some(encode(&state)?))?;
                crate::fail::point("table_deletion.hot_dropped");
                job.stop_point("after dropping the hot rows")?;
            }
            if done < Step::ColdDeleted {
                let qualified = format!("{}.{}", t.namespace, t.table_name);
                crate::leftovers::abort_uploads(self, &qualified)?;
                let cold = ColdFiles::list(self, &template)?;
                let recorded = self.sql().table_batches(&t.namespace, &t.table_name)?;
                let recorded_rows: std::collections::HashMap<ColdPath, u64> = recorded
                    .iter()
                    .filter_map(|b| {
                        let path = template.locate(self.data_dir(), &b.path).ok()?;
                        Some((path, b.row_count))
                    })
                    .collect();
                let total = files + cold.files.len() as u64;
                // A few files at a time, removed side by side (unlinking a large file costs
                // the kernel time in proportion to its blocks; an object delete is a round
                // trip), with the counts and the safe point after each group.
                let width = cold.removal_width();
                for group in cold.files.chunks(width.saturating_mul(2)) {
                    let removed = crate::parallel::parallel(group, width, |file| {
                        // The manifest's count, else the footer's; a footer that cannot be
                        // read counts no rows: the file goes regardless.
                        let rows = recorded_rows
                            .get(file)
                            .copied()
                            .unwrap_or_else(|| crate::cold::parquet::row_count(file).unwrap_or(0));
                        Ok(file.remove()?.map(|size| (size, rows)))
                    })?;
                    for (size, rows) in removed.into_iter().flatten() {
                        files += 1;
                        bytes += size;
                        state.cold_rows += rows;
                    }
                    job.set_resume_state(encode(&state)?);
                    let progress = JobProgress {
                        fraction: files as f64 / total.max(1) as f64,
                        items_done: files,
                        items_total: total,
                        bytes_done: bytes,
                        ..JobProgress::default()
                    };
                    // Throttled: a crash may lose the last few counts (they are lower bounds),
                    // never a file, which the resumed step lists again.
                    job.progress(progress.clone())?;
                    for _ in group {
                        crate::fail::point("table_deletion.cold_file");
                    }
                    if job.stop_point("while deleting Parquet files").is_err() {
                        // The counts so far go with the job, so the resumed step adds to them.
                        job.progress_now(progress)?;
                        job.stop_point("while deleting Parquet files")?;
                    }
                }
                // The removals are durable before the step that says they happened.
                cold.sync_dirs()?;
                cold.remove_empty_dirs(self, &template)?;
                // The entries go with the step record: a resumed step finds none left.
                let mut batch = Batch::new();
                for b in &recorded {
                    self.sql().cold_batches().delete_in(&mut batch, &b.id());
                }
                job.step_in(&mut batch, Step::ColdDeleted.as_str(), None)?;
                self.storage().write(batch)?;
                crate::fail::point("table_deletion.cold_deleted");
                job.stop_point("after deleting the Parquet files")?;
            }
            if done < Step::MetadataDeleted {
                let mut batch = Batch::new();
                self.delete_metadata_in(&mut batch, &t)?;
                job.step_in(&mut batch, Step::MetadataDeleted.as_str(), None)?;
                self.storage().write(batch)?;
                crate::fail::point("table_deletion.metadata_deleted");
            }
            let report = DropReport {
                job_id: job.id().to_string(),
                table: format!("{}.{}", t.namespace, t.table_name),
                files_deleted: files,
                bytes_freed: bytes,
                hot_bytes_released: state.hot_bytes,
                rows_estimate: state.hot_rows + state.cold_rows,
                // From the job's start: a resumed drop counts its whole life.
                duration_ms: (kalamdb_store::now_ms() - start_time)
                    .max(started.elapsed().as_millis() as i64) as u64,
                stale_subscriptions_cleared: Vec::new(),
                subscriptions_closed: state.subscriptions_closed.clone(),
                left_behind: state.left_behind.clone(),
            };
            let result = json!({
                "files_deleted": report.files_deleted,
                "bytes_freed": report.bytes_freed,
                "hot_bytes_released": report.hot_bytes_released,
                "rows_estimate": report.rows_estimate,
                "duration_ms": report.duration_ms,
                "subscriptions_closed": report.subscriptions_closed,
                "left_behind": report.left_behind,
            });
            Ok((report, result))
        })
    }

    /// Every schema version, the table row (again: idempotent), and the counts. The location's
    /// `usage_count` is decremented, so this batch must be written once: with its step record.
    fn delete_metadata_in(&self, batch: &mut Batch, t: &TableRecord) -> Result<()> {
        let (ns, name) = (t.namespace.as_str(), t.table_name.as_str());
        for schema in self.sql().schemas_of(ns, name)? {
            self.sql()
                .table_schemas()
                .delete_in(batch, &schema.schema_id);
        }
        let current = TableSchemaRecord::id_for(&t.table_id, t.schema_version);
        self.sql().table_schemas().delete_in(batch, &current);
        self.sql().tables().delete_in(batch, &t.table_id);
        if let Some(mut nsr) = self.sql().namespaces().get(ns)? {
            nsr.table_count = self
                .catalog()
                .tables(Some(ns))?
                .iter()
                .filter(|r| r.table_id != t.table_id)
                .count() as u64;
            self.sql().namespaces().put_in(batch, &nsr)?;
        }
        let location = match t.storage_location.trim() {
            "" => crate::catalog::DEFAULT_LOCATION,
            l => l,
        };
        if let Some(mut loc) = self.sql().storage_locations().get(location)? {
            loc.usage_count = loc.usage_count.saturating_sub(1);
            loc.updated_at = kalamdb_store::now_ms();
            self.sql().storage_locations().put_in(batch, &loc)?;
        }
        Ok(())
    }
}

fn encode(state: &ResumeState) -> Result<String> {
    CoreError::encode_json("a table deletion's resume state", state)
}

/// The table's Parquet batch files (never anything else), for every user.
struct ColdFiles {
    dirs: Vec<ColdPath>,
    files: Vec<ColdPath>,
}

impl ColdFiles {
    fn list(engine: &Engine, template: &StorageTemplate) -> Result<ColdFiles> {
        let dirs: Vec<ColdPath> = template
            .existing_dirs(engine.data_dir())?
            .into_iter()
            .map(|(_, dir)| dir)
            .collect();
        let mut files = Vec::new();
        for dir in &dirs {
            files.extend(batch_files(dir)?);
        }
        Ok(ColdFiles { dirs, files })
    }

    /// How many files to remove at once: the cores for local files, more for objects,
    /// whose deletes wait on the network.
    fn removal_width(&self) -> usize {
        let objects = self.files.iter().any(|f| f.as_local().is_none());
        if objects {
            16
        } else {
            crate::parallel::threads()
        }
    }

    /// Fsyncs each directory that held files, so their removal survives a power loss.
    fn sync_dirs(&self) -> Result<()> {
        crate::parallel::parallel(&self.dirs, crate::parallel::threads(), ColdPath::sync_dir)?;
        Ok(())
    }

    /// Removes the directories the deleted files leave empty, up to the storage root (a
    /// bucket has no directories to remove).
    fn remove_empty_dirs(&self, engine: &Engine, template: &StorageTemplate) -> Result<()> {
        let dd = engine.data_dir();
        let Some(root) = template.table_root(dd)?.as_local().map(Path::to_path_buf) else {
            return Ok(());
        };
        for dir in self.dirs.iter().filter_map(ColdPath::as_local) {
            remove_empty_dirs_up_to(dir, &root);
        }
        remove_empty_dirs_up_to(&root, &dd.storage());
        Ok(())
    }
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
