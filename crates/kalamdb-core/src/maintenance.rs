//! Background work kalamd schedules: policy-driven flush, stream eviction and job retention.
//! Each run that changes something is recorded in `system.jobs`.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;

use kalamdb_sql::{JobStatus, TableType};
use kalamdb_store::now_ms;
use serde_json::json;

use crate::jobs::{job_type, run_job};
use crate::limits;
use crate::{Engine, FlushReport, Result};

/// Decides which tables are due for a policy-driven flush.
#[derive(Debug, Default)]
pub struct FlushScheduler {
    /// When each table (by id) was last flushed or first seen, epoch ms.
    last: HashMap<String, i64>,
}

impl FlushScheduler {
    /// Flushes every table whose policy says it is due: `rows:N` once RocksDB estimates at
    /// least N hot rows, `interval:S` once S seconds passed since its last flush (or since
    /// this scheduler first saw it) and it has hot rows.
    pub async fn tick(&mut self, engine: &Engine) -> Result<Vec<FlushReport>> {
        let now = now_ms();
        let mut reports = Vec::new();
        // Locations whose credentials are not configured: a table on one is never due (its
        // flush could only fail; `/ready` names them). Read once per tick, not per table.
        let unwritable: std::collections::HashSet<String> = engine
            .catalog()
            .unreachable_locations()?
            .into_iter()
            .map(|(l, _, _)| l.location_name)
            .collect();
        for table in engine.catalog().tables(None)? {
            if matches!(table.table_type, TableType::Stream | TableType::System) {
                continue;
            }
            let Ok(Some(policy)) = table.flush_policy() else {
                continue;
            };
            let Some(kind) = table.table_type.kind() else {
                continue;
            };
            if unwritable.contains(crate::catalog::location_of(&table)) {
                continue;
            }
            let cf = kalamdb_store::TableCf::new(kind, &table.namespace, &table.table_name).name();
            let hot = engine.storage().estimate_keys(&cf).unwrap_or(0);
            if hot == 0 {
                continue;
            }
            let last = *self.last.entry(table.table_id.clone()).or_insert(now);
            let by_rows = policy.row_limit().is_some_and(|n| hot >= n);
            let by_time = policy
                .interval_seconds()
                .is_some_and(|s| limits::elapsed_at_least(now, last, limits::seconds_to_ms(s)));
            if by_rows || by_time {
                reports.push(
                    engine
                        .flush_table(&table.namespace, &table.table_name)
                        .await?,
                );
                self.last.insert(table.table_id, now_ms());
            }
        }
        Ok(reports)
    }
}

impl Engine {
    /// Deletes every `system.live_queries` row: at daemon start no connection exists yet.
    pub fn purge_live_queries(&self) -> Result<usize> {
        let (rows, _) = self.sql().live_queries().scan_lenient()?;
        for lq in &rows {
            self.sql().live_queries().delete(&lq.live_id)?;
        }
        Ok(rows.len())
    }

    /// Evicts stream rows past their table's TTL, then the oldest rows beyond MAX_BUFFER.
    /// A run that evicts something is a `stream_eviction` job. Returns the rows evicted.
    pub async fn evict_streams(&self) -> Result<u64> {
        let mut total: u64 = 0;
        for table in self.catalog().tables(None)? {
            if table.table_type != TableType::Stream
                || (table.ttl_seconds.is_none() && table.max_buffer.is_none())
            {
                continue;
            }
            let (ns, t) = (table.namespace.clone(), table.table_name.clone());
            let lock = self.table_lock(&ns, &t);
            let _guard = lock.exclusive().await;
            // Read the rows only when a live query asked to see evictions.
            let qualified = format!("{ns}.{t}");
            let mut rows = self.live().wants_evictions(&qualified).then(Vec::new);
            let by_ttl = match table.ttl_seconds {
                Some(ttl) => self.stream_store().evict_older_than_keeping(
                    &ns,
                    &t,
                    limits::cutoff(now_ms(), limits::seconds_to_ms(ttl)),
                    rows.as_mut(),
                )?,
                None => 0,
            };
            let by_buffer = match table.max_buffer {
                Some(max) => {
                    self.stream_store()
                        .evict_beyond_keeping(&ns, &t, max, rows.as_mut())?
                }
                None => 0,
            };
            if let Some(rows) = rows.filter(|r| !r.is_empty()) {
                let def = self.catalog().table(&ns, &t)?;
                self.publish_evictions(&def, rows);
            }
            let evicted = by_ttl.saturating_add(by_buffer);
            if evicted == 0 {
                continue;
            }
            // Recorded once done: eviction is a single short step with nothing to resume.
            let params = vec![ns.clone(), t.clone()];
            run_job(
                self,
                job_type::EVICTION,
                &format!("{ns}.{t}"),
                params,
                |_| {
                    Ok((
                        (),
                        json!({"rows_evicted": evicted, "by_ttl": by_ttl, "by_max_buffer": by_buffer}),
                    ))
                },
            )?;
            self.stats().evicted(evicted);
            total = total.saturating_add(evicted);
        }
        Ok(total)
    }

    /// Deletes completed jobs older than `completed_ms` and failed or cancelled jobs older
    /// than `failed_ms` (by end time). Running jobs are never pruned. Returns how many.
    pub fn prune_jobs(&self, completed_ms: i64, failed_ms: i64) -> Result<usize> {
        let now = now_ms();
        let (jobs, _) = self.sql().jobs().scan_lenient()?;
        let due: Vec<String> = jobs
            .into_iter()
            .filter(|j| {
                let ended = j.end_time.unwrap_or(j.start_time);
                match j.status {
                    JobStatus::Completed => ended < limits::cutoff(now, completed_ms),
                    JobStatus::Failed | JobStatus::Cancelled => {
                        ended < limits::cutoff(now, failed_ms)
                    }
                    _ => false,
                }
            })
            .map(|j| j.job_id)
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let n = due.len();
        run_job(self, job_type::RETENTION, "", Vec::new(), |_| {
            for id in &due {
                self.sql().jobs().delete(id)?;
            }
            Ok(((), json!({"jobs_pruned": n})))
        })?;
        Ok(n)
    }
}
