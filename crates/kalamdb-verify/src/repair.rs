//! `verify --repair`: fixes the safe classes of finding, and nothing else. Each change is
//! one line of the returned list.

use kalamdb_store::{Batch, now_ms};

use super::catalog::{count_where, location_of};
use super::{Code, Finding};
use kalamdb_core::jobs::{CancelRequests, reconcile};
use kalamdb_core::{CoreError, Engine, Result};

pub struct Repair<'a> {
    engine: &'a Engine,
}

impl<'a> Repair<'a> {
    pub fn new(engine: &'a Engine) -> Self {
        Repair { engine }
    }

    pub fn apply(&self, findings: &[Finding]) -> Result<Vec<String>> {
        if !self.engine.holds_lock() {
            return Err(CoreError::InvalidInput(
                "repair needs the data directory opened read-write".into(),
            ));
        }
        let mut done = Vec::new();
        let sql = self.engine.sql();
        let tables = self.engine.catalog().tables(None)?;
        let tables: Vec<&kalamdb_sql::TableRecord> = tables.iter().collect();
        let mut batch = Batch::new();
        for f in findings.iter().filter(|f| f.code.repairable()) {
            match f.code {
                Code::TableCountMismatch => {
                    if let Some(mut ns) = sql.namespaces().get(&f.object)? {
                        let real = count_where(&tables, |t| &t.namespace, &f.object);
                        done.push(format!(
                            "namespace {}: table_count {} -> {real}",
                            f.object, ns.table_count
                        ));
                        ns.table_count = real;
                        sql.namespaces().put_in(&mut batch, &ns)?;
                    }
                }
                Code::UsageCountMismatch => {
                    if let Some(mut loc) = sql.storage_locations().get(&f.object)? {
                        let real = count_where(&tables, location_of, &f.object);
                        done.push(format!(
                            "storage location {}: usage_count {} -> {real}",
                            f.object, loc.usage_count
                        ));
                        loc.usage_count = real;
                        loc.updated_at = now_ms();
                        sql.storage_locations().put_in(&mut batch, &loc)?;
                    }
                }
                Code::StaleLiveQuery => {
                    sql.live_queries().delete_in(&mut batch, &f.object);
                    done.push(format!("live query {}: deleted", f.object));
                }
                Code::BatchUnrecorded => {
                    if let Some(file) = super::unrecorded::removable(self.engine, &f.object)? {
                        file.remove_durable()?;
                        done.push(format!(
                            "batch file {}: removed (never recorded; its rows are in the hot tier)",
                            f.object
                        ));
                    }
                }
                // Checked again under the lock: only an empty family is dropped.
                Code::EmptyDataWithoutTable if self.engine.storage().is_cf_empty(&f.object)? => {
                    self.engine.storage().drop_cf(&f.object)?;
                    done.push(format!("column family {}: dropped (empty)", f.object));
                }
                _ => {}
            }
        }
        self.engine.storage().write(batch)?;
        if findings.iter().any(|f| f.code == Code::AbandonedJob) {
            let cancel = CancelRequests::new(self.engine.data_dir());
            for id in reconcile(sql, &cancel)? {
                let status = sql
                    .jobs()
                    .get(&id)?
                    .map(|j| j.status.to_string())
                    .unwrap_or_default();
                done.push(format!("job {id}: marked {status}"));
            }
        }
        Ok(done)
    }
}
