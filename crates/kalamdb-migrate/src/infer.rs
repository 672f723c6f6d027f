//! Columns inferred from a table's rows, for legacy tables that never had a schema written.
//!
//! Row objects are JSON with their keys sorted. A column is typed by the JSON values it
//! holds; one that is null in every row, or holds values of different kinds, cannot be
//! typed, and the migration reports it rather than inventing a type. A column absent from
//! every row (a declared auto-id, say) cannot be seen at all.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use kalamdb_store::{Storage, TableKind, keys};
use serde_json::Value;

use kalamdb_core::Result;
use kalamdb_core::catalog::is_system_column;
use kalamdb_core::catalog::types::ColumnType;

const BOOL: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 4;
const TEXT: u8 = 8;
const OTHER: u8 = 16;

/// What the rows of one data column family say about its columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inferred {
    /// Per column: the kinds of non-null values seen (a bit set).
    pub kinds: BTreeMap<String, u8>,
    pub rows: u64,
    /// Rows whose value is not a JSON object.
    pub bad_rows: u64,
    /// The earliest time a row id (`{epoch_ms}_{n}`) or stream key records.
    pub first_ms: Option<i64>,
}

/// A column's inferred type: `Ok(None)` when it is null in every row, `Err` naming the
/// kinds when they conflict.
pub fn column_type(kinds: u8) -> std::result::Result<Option<ColumnType>, String> {
    Ok(Some(match kinds {
        0 => return Ok(None),
        BOOL => ColumnType::Boolean,
        INT => ColumnType::BigInt,
        k if k & !(INT | FLOAT) == 0 => ColumnType::Double,
        TEXT => ColumnType::Text,
        k => {
            let names: Vec<&str> = [
                (BOOL, "boolean"),
                (INT, "integer"),
                (FLOAT, "float"),
                (TEXT, "string"),
                (OTHER, "object/array"),
            ]
            .iter()
            .filter(|(bit, _)| k & bit != 0)
            .map(|(_, n)| *n)
            .collect();
            return Err(names.join(", "));
        }
    }))
}

/// Reads every row of `cf` and records the kinds of its columns' values.
pub fn infer_rows(storage: &Storage, cf: &str, kind: TableKind) -> Result<Inferred> {
    let mut out = Inferred::default();
    storage.scan_prefix(cf, b"", |k, v| {
        out.rows += 1;
        let key = String::from_utf8_lossy(k);
        let stamp = match kind {
            TableKind::Stream => keys::parse_stream_key(&key).map(|(ts, _)| ts),
            TableKind::User => keys::parse_user_key(&key).and_then(|(_, row)| row_id_ms(row)),
            TableKind::Shared => row_id_ms(&key),
        };
        if let Some(ms) = stamp {
            out.first_ms = Some(out.first_ms.map_or(ms, |f| f.min(ms)));
        }
        let Ok(Value::Object(row)) = serde_json::from_slice::<Value>(v) else {
            out.bad_rows += 1;
            return Ok(ControlFlow::Continue(()));
        };
        for (name, value) in row {
            if kind != TableKind::Stream && is_system_column(&name) {
                continue;
            }
            let bit = match value {
                Value::Null => 0,
                Value::Bool(_) => BOOL,
                Value::Number(n) if n.is_i64() || n.is_u64() => INT,
                Value::Number(_) => FLOAT,
                Value::String(_) => TEXT,
                _ => OTHER,
            };
            *out.kinds.entry(name).or_default() |= bit;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// The epoch ms of a generated row id, `{epoch_ms}_{n}`.
fn row_id_ms(row_id: &str) -> Option<i64> {
    let (ms, n) = row_id.split_once('_')?;
    n.parse::<u64>().ok()?;
    ms.parse::<i64>().ok().filter(|ms| *ms > 100_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_to_types_or_conflicts() {
        assert_eq!(column_type(0), Ok(None));
        assert_eq!(column_type(INT), Ok(Some(ColumnType::BigInt)));
        assert_eq!(column_type(INT | FLOAT), Ok(Some(ColumnType::Double)));
        assert_eq!(column_type(TEXT), Ok(Some(ColumnType::Text)));
        assert_eq!(column_type(BOOL), Ok(Some(ColumnType::Boolean)));
        assert_eq!(column_type(INT | TEXT), Err("integer, string".to_string()));
        assert_eq!(row_id_ms("1700000000123_4"), Some(1_700_000_000_123));
        assert_eq!(row_id_ms("42"), None);
    }
}
