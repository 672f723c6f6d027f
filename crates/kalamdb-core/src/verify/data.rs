//! Data checks: one pass over every column family with block checksums verified, which also
//! parses every key and value of the tables' column families and counts their rows.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use kalamdb_store::keys::{parse_stream_key, parse_user_key};
use kalamdb_store::{StoreError, TableKind};
use serde_json::Value;

use super::catalog::{CatalogView, KnownTable};
use super::{Code, Progress, Scan, TableCounts};
use crate::Result;
use crate::catalog::{TableDef, is_system_column};

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
    for (i, cf) in cfs.iter().enumerate() {
        let table = tables.get(cf).copied();
        let mut counter = RowChecker::new(table);
        let storage = scan.engine.storage().clone();
        let outcome = storage.scan_verified(cf, |k, v| {
            counter.keys += 1;
            counter.bytes += (k.len() + v.len()) as u64;
            counter.check(k, v);
            Ok(ControlFlow::Continue(()))
        });
        scan.summary.keys_scanned += counter.keys;
        scan.summary.bytes_scanned += counter.bytes;
        match outcome {
            Ok(()) => {}
            Err(StoreError::Corruption(msg)) => scan.report(
                Code::ChecksumMismatch,
                cf.as_str(),
                format!(
                    "column family {cf}: reading stopped after {} key(s): {msg}",
                    counter.keys
                ),
            ),
            Err(e) => return Err(e.into()),
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
            scan.summary
                .table_counts
                .insert(t.qualified(), std::mem::take(&mut counter.counts));
        }
        progress(i as u64 + 1, total, scan.summary.bytes_scanned);
    }
    Ok(())
}

/// Checks and counts the rows of one table's column family.
struct RowChecker<'a> {
    table: Option<&'a KnownTable>,
    keys: u64,
    bytes: u64,
    counts: TableCounts,
    problems: Vec<(Code, String, String)>,
    unreported: u64,
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
        }
    }

    fn check(&mut self, key: &[u8], value: &[u8]) {
        let Some(t) = self.table else { return };
        let cf = t.cf();
        let shown = String::from_utf8_lossy(key).into_owned();
        let object = format!("{cf}:{shown}");
        let user = match (t.kind, std::str::from_utf8(key)) {
            (_, Err(_)) => {
                return self.problem(Code::KeyInvalid, object, "the key is not UTF-8".into());
            }
            (TableKind::User, Ok(k)) => match parse_user_key(k) {
                Some((user, _)) => Some(user.to_string()),
                None => {
                    return self.problem(
                        Code::KeyInvalid,
                        object,
                        format!("user-table key '{shown}' is not {{user_id}}:{{row_id}}"),
                    );
                }
            },
            (TableKind::Stream, Ok(k)) if parse_stream_key(k).is_none() => {
                return self.problem(
                    Code::KeyInvalid,
                    object,
                    format!("stream-table key '{shown}' is not {{timestamp_ms}}:{{row_id}}"),
                );
            }
            (_, Ok("")) => {
                return self.problem(Code::KeyInvalid, object, "the key is empty".into());
            }
            _ => None,
        };
        let row = match serde_json::from_slice::<Value>(value) {
            Ok(Value::Object(row)) => row,
            Ok(_) => {
                return self.problem(
                    Code::ValueInvalid,
                    object,
                    "the value is not a JSON object".into(),
                );
            }
            Err(e) => {
                return self.problem(
                    Code::ValueInvalid,
                    object,
                    format!("the value is not JSON: {e}"),
                );
            }
        };
        if let Some(def) = &t.def
            && let Err(reason) = fits(def, &row)
        {
            return self.problem(Code::ValueInvalid, object, reason);
        }
        let deleted = row
            .get(kalamdb_store::DELETED)
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.counts.hot_rows += 1;
        self.counts.hot_deleted += u64::from(deleted);
        if let Some(user) = user {
            let u = self.counts.users.entry(user).or_default();
            u.rows += 1;
            u.deleted += u64::from(deleted);
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

/// Whether a row's columns fit the table's current schema: every column known, every value
/// of its column's type, no missing NOT NULL column.
fn fits(def: &TableDef, row: &serde_json::Map<String, Value>) -> std::result::Result<(), String> {
    for (name, value) in row {
        if is_system_column(name) {
            continue;
        }
        let Some(col) = def.column(name) else {
            return Err(format!("column '{name}' is not in the table's schema"));
        };
        col.ty
            .coerce(value)
            .map_err(|e| format!("column '{name}': {e}"))?;
    }
    if let Some(col) = def
        .columns
        .iter()
        .find(|c| !c.nullable && row.get(&c.name).is_none_or(Value::is_null))
    {
        return Err(format!("NOT NULL column '{}' has no value", col.name));
    }
    Ok(())
}
