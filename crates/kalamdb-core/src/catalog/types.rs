//! Column types and how values of each are checked, stored (JSON) and typed (Arrow).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

/// The column types a table may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Int,
    BigInt,
    Double,
    Text,
    /// Epoch milliseconds.
    Timestamp,
}

impl ColumnType {
    /// From a SQL type name (`INT`, `BIGINT`, `TEXT`, ...).
    pub fn from_sql(name: &str) -> Option<ColumnType> {
        let upper = name.trim().to_ascii_uppercase();
        let base = upper.split('(').next().unwrap_or_default().trim();
        Some(match base {
            "BOOLEAN" | "BOOL" => ColumnType::Boolean,
            "INT" | "INTEGER" | "INT4" | "SMALLINT" => ColumnType::Int,
            "BIGINT" | "INT8" | "LONG" => ColumnType::BigInt,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" | "REAL" => ColumnType::Double,
            "TEXT" | "VARCHAR" | "STRING" | "CHAR" => ColumnType::Text,
            "TIMESTAMP" => ColumnType::Timestamp,
            _ => return None,
        })
    }

    /// The name `DESCRIBE TABLE` shows.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Int => "INT",
            ColumnType::BigInt => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Text => "TEXT",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }

    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    /// The Arrow type's debug spelling, as stored in schema JSON (`Int64`, `Utf8`, ...).
    pub fn arrow_spelling(self) -> &'static str {
        match self {
            ColumnType::Boolean => "Boolean",
            ColumnType::Int => "Int32",
            ColumnType::BigInt => "Int64",
            ColumnType::Double => "Float64",
            ColumnType::Text => "Utf8",
            ColumnType::Timestamp => "Timestamp(Millisecond, None)",
        }
    }

    /// Reads a stored Arrow spelling, including those older writers used.
    pub fn from_arrow_spelling(s: &str) -> Option<ColumnType> {
        let s = s.trim();
        if s.starts_with("Timestamp(") {
            return Some(ColumnType::Timestamp);
        }
        Some(match s {
            "Boolean" => ColumnType::Boolean,
            "Int8" | "Int16" | "Int32" | "UInt8" | "UInt16" => ColumnType::Int,
            "Int64" | "UInt32" | "UInt64" => ColumnType::BigInt,
            "Float16" | "Float32" | "Float64" => ColumnType::Double,
            "Utf8" | "LargeUtf8" | "Utf8View" => ColumnType::Text,
            "Date64" => ColumnType::Timestamp,
            _ => return None,
        })
    }

    /// Checks a value for this type and returns it in stored form; `Null` passes through.
    pub fn coerce(self, value: &Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let bad = || format!("expected {}, got {}", self.sql_name(), describe(value));
        match self {
            ColumnType::Boolean => value.as_bool().map(Value::Bool).ok_or_else(bad),
            ColumnType::Int => value
                .as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .map(Value::from)
                .ok_or_else(|| match value.as_i64() {
                    Some(n) => format!("{n} is out of range for INT; use BIGINT"),
                    None => bad(),
                }),
            ColumnType::BigInt => value.as_i64().map(Value::from).ok_or_else(bad),
            ColumnType::Double => value.as_f64().map(Value::from).ok_or_else(bad),
            ColumnType::Text => value
                .as_str()
                .map(|s| Value::from(s.to_string()))
                .ok_or_else(bad),
            ColumnType::Timestamp => match value {
                Value::Number(n) if n.is_i64() => Ok(value.clone()),
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
                    .map(|dt| Value::from(dt.timestamp_millis()))
                    .or_else(|_| {
                        chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
                            .map(|dt| Value::from(dt.and_utc().timestamp_millis()))
                    })
                    .map_err(|_| {
                        format!("'{s}' is not a timestamp; use RFC 3339 or epoch milliseconds")
                    }),
                _ => Err(bad()),
            },
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("text '{s}'"),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        other => other.to_string(),
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// The system columns of user and shared tables.
pub const UPDATED: &str = kalamdb_store::UPDATED;
pub const DELETED: &str = kalamdb_store::DELETED;
/// The row key kept in every Parquet file this engine writes.
pub use crate::cold::ROW_ID;

/// The Arrow schema of a table as queries see it.
pub fn arrow_schema(columns: &[ColumnDef], system_columns: bool, extra: &[Field]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.ty.arrow(), true))
        .collect();
    if system_columns {
        fields.push(Field::new(UPDATED, ColumnType::Timestamp.arrow(), true));
        fields.push(Field::new(DELETED, DataType::Boolean, true));
    }
    fields.extend(extra.iter().cloned());
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercion_accepts_the_right_types_only() {
        assert_eq!(ColumnType::Int.coerce(&json!(5)), Ok(json!(5)));
        assert!(ColumnType::Int.coerce(&json!(5_000_000_000_i64)).is_err());
        assert!(ColumnType::Int.coerce(&json!("5")).is_err());
        assert_eq!(ColumnType::Double.coerce(&json!(5)), Ok(json!(5.0)));
        assert!(ColumnType::Text.coerce(&json!(5)).is_err());
        assert_eq!(
            ColumnType::Timestamp.coerce(&json!("2023-11-14T22:13:20Z")),
            Ok(json!(1_700_000_000_000_i64))
        );
        assert!(ColumnType::Boolean.coerce(&json!("true")).is_err());
        assert_eq!(ColumnType::Text.coerce(&json!(null)), Ok(json!(null)));
    }

    #[test]
    fn arrow_spellings_round_trip() {
        for t in [
            ColumnType::Boolean,
            ColumnType::Int,
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Text,
            ColumnType::Timestamp,
        ] {
            assert_eq!(ColumnType::from_arrow_spelling(t.arrow_spelling()), Some(t));
        }
        assert_eq!(
            ColumnType::from_arrow_spelling("Timestamp(Microsecond, None)"),
            Some(ColumnType::Timestamp)
        );
    }
}
