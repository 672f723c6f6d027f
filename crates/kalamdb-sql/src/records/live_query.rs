use serde::{Deserialize, Serialize};

use crate::SystemRecord;
use crate::tolerant;

/// `system.live_queries`: key `lq:{live_id}`. Connection state: stale once the daemon is down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveQueryRecord {
    /// `{user_id}-{connection_id}-{table}-{query_id}`; do not split it on `-`.
    pub live_id: String,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub connection_id: String,
    /// As written in the query: `ns.table` or a bare `table`.
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub table_name: String,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub query_id: String,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub user_id: String,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub query: String,
    /// JSON text; `""` when absent.
    #[serde(default, deserialize_with = "tolerant::json_text")]
    pub options: String,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub updated_at: i64,
    #[serde(default)]
    pub changes: i64,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub node: String,
}

impl SystemRecord for LiveQueryRecord {
    const TABLE: &'static str = "live_queries";
    const CF: &'static str = "system_live_queries";
    const KEY_PREFIX: &'static str = "lq:";
    fn id(&self) -> String {
        self.live_id.clone()
    }
}

impl LiveQueryRecord {
    /// Whether this subscription is on `namespace.table` (matching a bare table name too).
    pub fn targets(&self, namespace: &str, table: &str) -> bool {
        let name = self.table_name.trim();
        name == table || name == format!("{namespace}.{table}")
    }
}
