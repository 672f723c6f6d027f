use std::time::{SystemTime, UNIX_EPOCH};

/// A row as stored: one JSON object holding the row's columns (and, for user and shared
/// tables, the system columns `_updated` and `_deleted`).
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn decode_row(cf: &str, key: &[u8], value: &[u8]) -> crate::Result<Row> {
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(crate::StoreError::Corrupt {
            cf: cf.to_string(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "value is not a JSON object".into(),
        }),
        Err(e) => Err(crate::StoreError::Corrupt {
            cf: cf.to_string(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("value is not JSON: {e}"),
        }),
    }
}

pub(crate) fn encode_row(row: &Row) -> Vec<u8> {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_vec(row).unwrap_or_default()
}
