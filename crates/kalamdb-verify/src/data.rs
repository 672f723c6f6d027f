//! Data checks: one pass over every column family with block checksums verified, which also
//! parses every key and value of the tables' column families and counts their rows.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use kalamdb_store::keys::{parse_stream_key, parse_user_key};
use kalamdb_store::{Storage, StoreError, TableKind};
use serde_json::Value;

use super::catalog::{CatalogView, KnownTable};
use super::json_shape::{self, Kind};
use super::{Code, Progress, Scan, TableCounts};
use kalamdb_core::Result;
use kalamdb_core::catalog::types::ColumnType;
use kalamdb_core::catalog::{TableDef, is_system_column};

/// Invalid rows reported per table before the rest are only counted.
const REPORT_PER_TABLE: u64 = 20;

pub(crate) fn check(
    scan: &mut Scan<'_>,
    catalog: &CatalogView,
    progress: Progress<'_>,
) -> Result<()> {
    let cfs = scan.engine.storage().column_families()?;
    let tables: BTreeMap<String, &KnownTable> =
        catalog.tables.iter().map(|t| (t.cf(), t)).collect();
    let total = cfs.len() as u64;
    scan.summary.column_families = total;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (i, cf) in cfs.iter().enumerate() {
        let table = tables.get(cf).copied();
        let (mut counter, corruption) = scan_cf(scan.engine.storage(), cf, table, threads)?;
        scan.summary.keys_scanned += counter.keys;
        scan.summary.bytes_scanned += counter.bytes;
        if let Some(msg) = corruption {
            scan.report(
                Code::ChecksumMismatch,
                cf.as_str(),
                format!("column family {cf}: reading stopped part-way: {msg}"),
            );
        }
        if let Some(t) = table {
            for (code, object, message) in counter.problems.drain(..) {
                scan.report(code, object, message);
            }
            if counter.unreported > 0 {
                scan.report(
                    Code::ValueInvalid,
                    t.qualified(),
                    format!(
                        "{} more invalid row(s) in {} not listed",
                        counter.unreported,
                        t.qualified()
                    ),
                );
            }
            counter.counts.keys = counter.keys;
            scan.summary
                .table_counts
                .insert(t.qualified(), std::mem::take(&mut counter.counts));
        }
        progress(i as u64 + 1, total, scan.summary.bytes_scanned);
    }
    Ok(())
}

/// Reads one column family with checksums verified, checking and counting its rows. A
/// large family is split by its SST files' key ranges and read on `threads` threads.
/// Returns the merged counts and RocksDB's corruption report, if any.
fn scan_cf<'a>(
    storage: &Storage,
    cf: &str,
    table: Option<&'a KnownTable>,
    threads: usize,
) -> Result<(RowChecker<'a>, Option<String>)> {
    // More parts than threads, taken in turn, so that uneven parts still balance.
    let splits = if threads > 1 {
        storage.split_keys(cf, threads * 4)?
    } else {
        Vec::new()
    };
    let mut bounds: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut from = Vec::new();
    for key in splits {
        bounds.push((std::mem::replace(&mut from, key.clone()), Some(key)));
    }
    bounds.push((from, None));
    let next = AtomicUsize::new(0);
    let scan_part = |(from, to): &(Vec<u8>, Option<Vec<u8>>)| {
        let mut counter = RowChecker::new(table);
        let outcome = storage.scan_verified_range(cf, from, to.as_deref(), |k, v| {
            counter.keys += 1;
            counter.bytes += (k.len() + v.len()) as u64;
            counter.check(k, v);
            Ok(ControlFlow::Continue(()))
        });
        (counter, outcome)
    };
    let mut parts: Vec<(usize, RowChecker<'a>, kalamdb_store::Result<()>)> =
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.min(bounds.len()))
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(part) = bounds.get(i) else { break };
                            let (counter, outcome) = scan_part(part);
                            done.push((i, counter, outcome));
                        }
                        done
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| {
                    w.join().unwrap_or_else(|_| {
                        vec![(
                            usize::MAX,
                            RowChecker::new(table),
                            Err(StoreError::Rocks("a verify thread panicked".into())),
                        )]
                    })
                })
                .collect()
        });
    // Key order, so that the listed problems are the first ones.
    parts.sort_by_key(|(i, _, _)| *i);
    let mut merged = RowChecker::new(table);
    let mut corruption = None;
    for (_, part, outcome) in parts {
        merged.absorb(part);
        match outcome {
            Ok(()) => {}
            Err(StoreError::Corruption(msg)) => corruption = corruption.or(Some(msg)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((merged, corruption))
}

/// Checks and counts the rows of one table's column family.
struct RowChecker<'a> {
    table: Option<&'a KnownTable>,
    keys: u64,
    bytes: u64,
    counts: TableCounts,
    problems: Vec<(Code, String, String)>,
    unreported: u64,
    /// Per column of the table: whether the row being checked gave it a value (reused).
    given: Vec<bool>,
}

impl<'a> RowChecker<'a> {
    fn new(table: Option<&'a KnownTable>) -> Self {
        RowChecker {
            table,
            keys: 0,
            bytes: 0,
            counts: TableCounts::default(),
            problems: Vec::new(),
            unreported: 0,
            given: Vec::new(),
        }
    }

    fn check(&mut self, key: &[u8], value: &[u8]) {
        let Some(t) = self.table else { return };
        // Everything below allocates only for a problem (or a user's first row).
        let object = || format!("{}:{}", t.cf(), String::from_utf8_lossy(key));
        let Ok(k) = std::str::from_utf8(key) else {
            return self.problem(Code::KeyInvalid, object(), "the key is not UTF-8".into());
        };
        let user = match t.kind {
            TableKind::User => match parse_user_key(k) {
                Some((user, _)) => Some(user),
                None => {
                    return self.problem(
                        Code::KeyInvalid,
                        object(),
                        format!("user-table key '{k}' is not {{user_id}}:{{row_id}}"),
                    );
                }
            },
            TableKind::Stream if parse_stream_key(k).is_none() => {
                return self.problem(
                    Code::KeyInvalid,
                    object(),
                    format!("stream-table key '{k}' is not {{timestamp_ms}}:{{row_id}}"),
                );
            }
            _ if k.is_empty() => {
                return self.problem(Code::KeyInvalid, object(), "the key is empty".into());
            }
            _ => None,
        };
        // Each member is checked as it is read: no list of members per row.
        let mut fit = Fit::new(t.def.as_ref(), &mut self.given);
        let mut deleted = false;
        let parsed = json_shape::each_member(value, |name, kind| {
            deleted |= name == kalamdb_store::DELETED && kind == Kind::Bool(true);
            fit.member(&name, &kind);
        });
        match parsed {
            Ok(true) => {}
            Ok(false) => {
                return self.problem(
                    Code::ValueInvalid,
                    object(),
                    "the value is not a JSON object".into(),
                );
            }
            Err(e) => {
                return self.problem(
                    Code::ValueInvalid,
                    object(),
                    format!("the value is not JSON: {e}"),
                );
            }
        }
        if let Err(reason) = fit.finish() {
            return self.problem(Code::ValueInvalid, object(), reason);
        }
        self.counts.hot_rows += 1;
        self.counts.hot_deleted += u64::from(deleted);
        if let Some(user) = user {
            let counts = match self.counts.users.get_mut(user) {
                Some(c) => c,
                None => self.counts.users.entry(user.to_string()).or_default(),
            };
            counts.rows += 1;
            counts.deleted += u64::from(deleted);
        }
    }

    /// Adds another part's counts and problems (parts are absorbed in key order).
    fn absorb(&mut self, other: RowChecker<'_>) {
        self.keys += other.keys;
        self.bytes += other.bytes;
        self.counts.hot_rows += other.counts.hot_rows;
        self.counts.hot_deleted += other.counts.hot_deleted;
        for (user, c) in other.counts.users {
            let mine = self.counts.users.entry(user).or_default();
            mine.rows += c.rows;
            mine.deleted += c.deleted;
        }
        self.unreported += other.unreported;
        for (code, object, message) in other.problems {
            self.problem(code, object, message);
        }
    }

    fn problem(&mut self, code: Code, object: String, message: String) {
        if (self.problems.len() as u64) < REPORT_PER_TABLE {
            self.problems.push((code, object, message));
        } else {
            self.unreported += 1;
        }
    }
}

/// Whether a row's columns fit the table's current schema (every column known, every value
/// of its column's type, no missing NOT NULL column), told one member at a time.
struct Fit<'a> {
    def: Option<&'a TableDef>,
    given: &'a mut Vec<bool>,
    /// The first member that does not fit.
    error: Option<String>,
}

impl<'a> Fit<'a> {
    fn new(def: Option<&'a TableDef>, given: &'a mut Vec<bool>) -> Self {
        given.clear();
        given.resize(def.map_or(0, |d| d.columns.len()), false);
        Fit {
            def,
            given,
            error: None,
        }
    }

    fn member(&mut self, name: &str, kind: &Kind<'_>) {
        let Some(def) = self.def else { return };
        if self.error.is_some() || is_system_column(name) {
            return;
        }
        let Some((i, col)) = def.columns.iter().enumerate().find(|(_, c)| c.name == name) else {
            self.error = Some(format!("column '{name}' is not in the table's schema"));
            return;
        };
        if !kind_fits(col.ty, kind) {
            self.error = Some(format!(
                "column '{name}': expected {}, got {}",
                col.ty.sql_name(),
                describe(kind)
            ));
        } else if *kind != Kind::Null
            && let Some(given) = self.given.get_mut(i)
        {
            *given = true;
        }
    }

    fn finish(self) -> std::result::Result<(), String> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let Some(def) = self.def else { return Ok(()) };
        let missing = def
            .columns
            .iter()
            .zip(self.given.iter())
            .find(|(c, given)| !c.nullable && !**given);
        match missing {
            Some((col, _)) => Err(format!("NOT NULL column '{}' has no value", col.name)),
            None => Ok(()),
        }
    }
}

/// The types the engine's writers store, read as tolerantly as its readers do.
fn kind_fits(ty: ColumnType, kind: &Kind<'_>) -> bool {
    match (ty, kind) {
        (_, Kind::Null) => true,
        (ColumnType::Boolean, Kind::Bool(_)) => true,
        (ColumnType::Int, Kind::Int(n)) => i32::try_from(*n).is_ok(),
        (ColumnType::BigInt, Kind::Int(_)) => true,
        (ColumnType::Double, Kind::Int(_) | Kind::BigUint | Kind::Float) => true,
        (ColumnType::Text, Kind::Str(_)) => true,
        (ColumnType::Timestamp, Kind::Int(_)) => true,
        (ColumnType::Timestamp, Kind::Str(s)) => ColumnType::Timestamp
            .coerce(&Value::String(s.to_string()))
            .is_ok(),
        _ => false,
    }
}

fn describe(kind: &Kind<'_>) -> String {
    match kind {
        Kind::Null => "null".into(),
        Kind::Bool(b) => format!("boolean {b}"),
        Kind::Int(n) => format!("number {n}"),
        Kind::BigUint => "an integer above the BIGINT range".into(),
        Kind::Float => "a fractional number".into(),
        Kind::Str(s) => format!("text '{s}'"),
        Kind::Nested => "an array or object".into(),
    }
}
