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

/// A row as stored bytes. Never empty bytes in place of a row: a failure is an error.
pub(crate) fn encode_row(cf: &str, row: &Row) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(row).map_err(|e| crate::StoreError::Encode {
        cf: cf.to_string(),
        reason: e.to_string(),
    })
}
