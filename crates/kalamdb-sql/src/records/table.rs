use kalamdb_store::TableKind;
use serde::{Deserialize, Serialize};

use crate::tolerant;
use crate::{SystemRecord, lowercase_enum};

lowercase_enum!(
    /// A table's type as `system.tables` records it: one of the three data kinds
    /// ([`TableKind`], the store's), or `system`. The two convert here and nowhere else.
    TableType { User => "user", Shared => "shared", Stream => "stream", System => "system" }
);

impl TableType {
    /// The kind of the table's data; `None` for `system`.
    pub fn kind(self) -> Option<TableKind> {
        match self {
            TableType::User => Some(TableKind::User),
            TableType::Shared => Some(TableKind::Shared),
            TableType::Stream => Some(TableKind::Stream),
            TableType::System => None,
        }
    }
}

impl From<TableKind> for TableType {
    fn from(kind: TableKind) -> TableType {
        match kind {
            TableKind::User => TableType::User,
            TableKind::Shared => TableType::Shared,
            TableKind::Stream => TableType::Stream,
        }
    }
}

/// When a table's hot rows are written to Parquet. Stored as the JSON text of this tagged form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FlushPolicy {
    RowLimit {
        row_limit: u64,
    },
    TimeInterval {
        interval_seconds: u64,
    },
    Combined {
        row_limit: u64,
        interval_seconds: u64,
    },
}

impl FlushPolicy {
    pub fn row_limit(&self) -> Option<u64> {
        match *self {
            FlushPolicy::RowLimit { row_limit } | FlushPolicy::Combined { row_limit, .. } => {
                Some(row_limit)
            }
            FlushPolicy::TimeInterval { .. } => None,
        }
    }
    pub fn interval_seconds(&self) -> Option<u64> {
        match *self {
            FlushPolicy::TimeInterval { interval_seconds }
            | FlushPolicy::Combined {
                interval_seconds, ..
            } => Some(interval_seconds),
            FlushPolicy::RowLimit { .. } => None,
        }
    }
}

/// `system.tables`: key `table:{namespace}:{table}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    /// `{namespace}:{table}`.
    pub table_id: String,
    pub table_name: String,
    pub namespace: String,
    pub table_type: TableType,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
    /// A storage location's name, or a path template.
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub storage_location: String,
    /// JSON text of a [`FlushPolicy`]; `""` when the table is flushed only on demand.
    #[serde(default, deserialize_with = "tolerant::json_text")]
    pub flush_policy: String,
    #[serde(default = "one")]
    pub schema_version: u32,
    #[serde(default)]
    pub deleted_retention_hours: Option<u64>,
    /// Stream tables only; added by format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Stream tables only; added by format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffer: Option<u64>,
}

fn one() -> u32 {
    1
}

impl SystemRecord for TableRecord {
    const TABLE: &'static str = "tables";
    const CF: &'static str = "system_tables";
    const KEY_PREFIX: &'static str = "table:";
    fn id(&self) -> String {
        self.table_id.clone()
    }
}

impl TableRecord {
    pub fn id_for(namespace: &str, table: &str) -> String {
        format!("{namespace}:{table}")
    }

    /// The parsed flush policy; `Ok(None)` when there is none.
    pub fn flush_policy(&self) -> Result<Option<FlushPolicy>, serde_json::Error> {
        let text = self.flush_policy.trim();
        if text.is_empty() || text == "null" {
            return Ok(None);
        }
        serde_json::from_str(text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_rows_read_and_rewrite_consistently() {
        // A G2 adapter row: capitalised type, seconds, flush policy as JSON text.
        let legacy = r#"{"table_id":"app:notes","table_name":"notes","namespace":"app","table_type":"User",
            "created_at":1700000000,"storage_location":"/data/${user_id}/notes",
            "flush_policy":"{\"type\":\"combined\",\"row_limit\":100,\"interval_seconds\":60}",
            "schema_version":2,"deleted_retention_hours":168}"#;
        let t: TableRecord = serde_json::from_str(legacy).expect("tolerant read");
        assert_eq!(t.table_type, TableType::User);
        assert_eq!(t.created_at, 1_700_000_000_000);
        assert_eq!(
            t.flush_policy().expect("policy"),
            Some(FlushPolicy::Combined {
                row_limit: 100,
                interval_seconds: 60
            })
        );
        let written = serde_json::to_value(&t).expect("write");
        assert_eq!(written["table_type"], "user");
        assert_eq!(written["created_at"], 1_700_000_000_000_i64);
        assert!(written.get("ttl_seconds").is_none());
    }
}
