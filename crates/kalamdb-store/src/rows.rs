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

/// Rows given as values in one fixed column order, encoded without building a map: byte for
/// byte what [`encode_row`] makes of the same row as a map (columns in sorted order, a null
/// value left out). The order is worked out once, for every row of a statement.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    /// `"name":` as JSON, and the position of the column's value, in the map's key order.
    order: Vec<(Vec<u8>, usize)>,
}

impl RowEncoder {
    /// An encoder for rows whose values come in the order of `columns`; `None` when a
    /// column is named twice (a map would keep one of them).
    pub fn new(columns: &[&str]) -> Option<RowEncoder> {
        let mut sorted: Vec<(&str, usize)> = columns.iter().copied().zip(0..).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let order = sorted
            .into_iter()
            .map(|(name, at)| {
                let mut key = serde_json::to_vec(name).unwrap_or_default();
                key.push(b':');
                (key, at)
            })
            .collect();
        Some(RowEncoder { order })
    }

    /// The stored bytes of one row; `values` in the encoder's column order.
    pub fn encode(&self, cf: &str, values: &[serde_json::Value]) -> crate::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16 * self.order.len() + 2);
        out.push(b'{');
        let mut first = true;
        for (key, at) in &self.order {
            let value = values.get(*at).ok_or_else(|| crate::StoreError::Encode {
                cf: cf.to_string(),
                reason: format!("{} values for {} columns", values.len(), self.order.len()),
            })?;
            if value.is_null() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            serde_json::to_writer(&mut out, value).map_err(|e| crate::StoreError::Encode {
                cf: cf.to_string(),
                reason: e.to_string(),
            })?;
        }
        out.push(b'}');
        Ok(out)
    }
}

/// A row as stored bytes. Never empty bytes in place of a row: a failure is an error.
pub(crate) fn encode_row(cf: &str, row: &Row) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(row).map_err(|e| crate::StoreError::Encode {
        cf: cf.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    proptest! {
        /// Whatever the names (quotes, escapes, non-ASCII, prefixes of each other) and values
        /// (nulls, numbers, text), the encoder writes the bytes a map of the same row encodes to.
        #[test]
        fn the_encoder_writes_what_the_map_encodes_to(
            columns in prop::collection::btree_set(r#"[a-zA-Z_"\\é\n\t0-9]{0,6}"#, 0..8),
            seed in prop::collection::vec(value(), 8),
            shuffle in any::<u64>(),
        ) {
            let mut columns: Vec<String> = columns.into_iter().collect();
            // Values come in the statement's order, not the sorted one.
            let len = columns.len();
            if len > 0 {
                columns.rotate_left(usize::try_from(shuffle % len as u64).unwrap_or(0));
            }
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            let values: Vec<Value> = seed.into_iter().take(columns.len()).collect();
            let encoder = RowEncoder::new(&names).expect("distinct names");
            let mut row = Row::new();
            for (name, v) in columns.iter().zip(&values) {
                if !v.is_null() {
                    row.insert(name.clone(), v.clone());
                }
            }
            prop_assert_eq!(encoder.encode("cf", &values).expect("encodes"), encode_row("cf", &row).expect("encodes"));
        }
    }

    #[test]
    fn a_column_named_twice_has_no_encoder() {
        assert!(RowEncoder::new(&["a", "b", "a"]).is_none());
        assert!(RowEncoder::new(&["a", "b"]).is_some());
    }
}
