//! The cold tier: Parquet batch files and where they live. It knows nothing of the engine:
//! the engine reads and writes through it.

use serde_json::Value;

pub mod arrow_rows;
pub mod manifest;
pub mod object;
pub mod parquet;
pub mod path;
pub mod paths;
pub mod uploads;

pub use path::ColdPath;

/// The Parquet column that holds each row's key.
pub const ROW_ID: &str = "_row_id";

/// The row key of a primary-key value.
pub fn key_of_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
