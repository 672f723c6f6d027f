//! Reading a table's rows across both tiers: Parquet files (cold) and RocksDB (hot).
//!
//! Each row is returned once, keyed by its row key. Versions are applied oldest first: batch
//! files in creation order, then the hot tier, so the newest version wins across any number of
//! flushes. Soft-deleted rows are dropped unless asked for; expired stream rows never show.
//!
//! The batch files read are those the cold-tier manifest records (never a directory listing);
//! a primary-key lookup skips every file whose recorded key range cannot hold the key, and in
//! the files it opens reads only the row groups whose bloom filter may hold it.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use kalamdb_store::{Row, TableKind, now_ms};
use serde_json::Value;

use crate::catalog::TableDef;
use crate::catalog::types::{DELETED, ROW_ID};
use crate::cold::parquet;
use crate::cold::paths::StorageTemplate;
use crate::{CoreError, Engine, Result};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Include rows with `_deleted = true`.
    pub include_deleted: bool,
    /// Read only the row with this key (a primary-key lookup).
    pub key: Option<String>,
}

pub use crate::cold::key_of_value;

impl Engine {
    /// The rows of `def` visible to `user_id` (which matters for user tables only).
    pub fn read_rows(
        &self,
        def: &TableDef,
        user_id: &str,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Row)>> {
        let (ns, t) = (def.namespace(), def.name());
        let mut merged: BTreeMap<String, Row> = BTreeMap::new();
        match def.kind {
            TableKind::User | TableKind::Shared => {
                let user = (def.kind == TableKind::User).then_some(user_id);
                // The hot tier is read first, the manifest after it. A flush moves rows in one
                // write (manifest entry in, hot keys out): read in this order, a row it moves
                // meanwhile is seen in one tier or both, never in neither.
                let mut hot: BTreeMap<String, Row> = BTreeMap::new();
                match (&opts.key, def.kind) {
                    (Some(key), TableKind::User) => {
                        if let Some(row) = self.user_store().get(ns, t, user_id, key)? {
                            hot.insert(key.clone(), row);
                        }
                    }
                    (Some(key), _) => {
                        if let Some(row) = self.shared_store().get(ns, t, key)? {
                            hot.insert(key.clone(), row);
                        }
                    }
                    (None, TableKind::User) => {
                        self.user_store().scan_user(ns, t, user_id, |id, row| {
                            hot.insert(id.to_string(), row);
                            Ok(ControlFlow::Continue(()))
                        })?
                    }
                    (None, _) => self.shared_store().scan_all(ns, t, |id, row| {
                        hot.insert(id.to_string(), row);
                        Ok(ControlFlow::Continue(()))
                    })?,
                }
                crate::fail::point("read.between_tiers");
                self.read_cold(def, user.unwrap_or(""), opts, &mut merged)?;
                // Hot versions are newer than any flushed one of the same key.
                merged.extend(hot);
            }
            TableKind::Stream => {
                let cutoff = def
                    .record
                    .ttl_seconds
                    .map(|ttl| crate::limits::cutoff(now_ms(), crate::limits::seconds_to_ms(ttl)));
                self.stream_store().scan_all(ns, t, |ts, id, row| {
                    if cutoff.is_none_or(|c| ts >= c) {
                        merged.insert(kalamdb_store::keys::stream_key(ts, id), row);
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
                if let (Some(key), Some(pk)) = (&opts.key, &def.primary_key) {
                    merged.retain(|_, row| {
                        row.get(pk).and_then(key_of_value).as_deref() == Some(key)
                    });
                }
            }
        }
        let visible =
            |row: &Row| opts.include_deleted || row.get(DELETED) != Some(&Value::Bool(true));
        Ok(merged.into_iter().filter(|(_, row)| visible(row)).collect())
    }

    /// The batch files the manifest records for one user (`""`: a shared table), in write
    /// order, with their position in that order; for a key lookup, only those whose recorded
    /// key range may hold one of the keys.
    fn cold_files(
        &self,
        def: &TableDef,
        user_id: &str,
        keys: Option<&HashSet<String>>,
    ) -> Result<Vec<ColdFile>> {
        let batches = self
            .sql()
            .batches_of(def.namespace(), def.name(), user_id)?;
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let template: StorageTemplate = self.catalog().storage_template(&def.record, def.kind)?;
        let mut files = Vec::with_capacity(batches.len());
        for (no, b) in batches.iter().enumerate() {
            if keys.is_some_and(|keys| !keys.iter().any(|k| b.may_hold(k))) {
                continue;
            }
            files.push(ColdFile {
                no,
                path: template.locate(self.data_dir(), &b.path)?,
                rows: b.row_count,
            });
        }
        Ok(files)
    }

    fn read_cold(
        &self,
        def: &TableDef,
        user_id: &str,
        opts: &ReadOptions,
        merged: &mut BTreeMap<String, Row>,
    ) -> Result<()> {
        let keys = opts
            .key
            .as_ref()
            .map(|k| Arc::new(HashSet::from([k.clone()])));
        let files = self.cold_files(def, user_id, keys.as_deref())?;
        let mut read = || -> Result<()> {
            for file in &files {
                merged.extend(file.keyed_rows(def, keys.as_ref(), None)?);
            }
            Ok(())
        };
        // Objects are network round trips: off the runtime's queue (a no-op for a caller
        // already off it). Local files are read where the caller runs: a key lookup reads a
        // few pages, less than handing a runtime worker's queue to another thread costs.
        if files.iter().any(|f| f.path.as_local().is_none()) {
            crate::blocking::run(read)
        } else {
            read()
        }
    }

    /// Which of `keys` a live (not soft-deleted) row holds in the table's Parquet files (for
    /// this user): for duplicate checks. Each file that may hold one is opened once.
    pub(crate) fn cold_live_keys(
        &self,
        def: &TableDef,
        user_id: Option<&str>,
        keys: HashSet<String>,
    ) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let keys = Arc::new(keys);
        let mut live = HashSet::new();
        // Files in write order: a later version of a key replaces an earlier one.
        for file in self.cold_files(def, user_id.unwrap_or(""), Some(&keys))? {
            for (key, row) in file.keyed_rows(def, Some(&keys), Some(&[ROW_ID, DELETED]))? {
                if row.get(DELETED) == Some(&Value::Bool(true)) {
                    live.remove(&key);
                } else {
                    live.insert(key);
                }
            }
        }
        Ok(live)
    }
}

/// A batch file the manifest records, as a read plans it.
struct ColdFile {
    /// Its position in the user's write order.
    no: usize,
    path: crate::cold::ColdPath,
    /// Rows the manifest records in it.
    rows: u64,
}

impl ColdFile {
    /// Its rows with their keys, optionally only some columns; given `keys`, only the rows
    /// holding one of them (read through the file's bloom filters where it has them).
    fn keyed_rows(
        &self,
        def: &TableDef,
        keys: Option<&Arc<HashSet<String>>>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<(String, Row)>> {
        let keyed = match keys {
            Some(keys) => {
                parquet::read_keyed(&self.path, keys, columns).map_err(|e| self.missing(def, e))?
            }
            None => None,
        };
        let rows = match keyed {
            Some(rows) => rows,
            // No key column: every column, so that keys come from the primary key.
            None if keys.is_some() => self.read(def, None)?,
            None => self.read(def, columns)?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for (row_no, mut row) in rows.into_iter().enumerate() {
            let key = match row.remove(ROW_ID) {
                Some(Value::String(id)) => id,
                _ => match def
                    .primary_key
                    .as_ref()
                    .and_then(|pk| row.get(pk))
                    .and_then(key_of_value)
                {
                    Some(k) => k,
                    // A file from a writer that kept no key: every row is its own.
                    None => format!("cold-{}-{row_no}", self.no),
                },
            };
            if keys.is_none_or(|keys| keys.contains(&key)) {
                out.push((key, row));
            }
        }
        Ok(out)
    }

    /// Its rows (optionally only some columns). A missing file is an integrity error naming
    /// it, never fewer rows.
    fn read(&self, def: &TableDef, columns: Option<&[&str]>) -> Result<Vec<Row>> {
        parquet::read_rows(&self.path, columns).map_err(|e| self.missing(def, e))
    }

    fn missing(&self, def: &TableDef, e: CoreError) -> CoreError {
        match e {
            CoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                CoreError::Parquet {
                    path: self.path.to_string(),
                    reason: format!(
                        "the cold-tier manifest records this batch of {} ({} rows) but the file is missing; run `kalamctl verify` and restore it from a backup",
                        def.qualified(),
                        self.rows
                    ),
                }
            }
            other => other,
        }
    }
}
