use serde::{Deserialize, Serialize};

use crate::SystemRecord;
use crate::tolerant;

/// `system.namespaces`: key `ns:{namespace_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub namespace_id: String,
    pub name: String,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
    /// JSON text of an object of string options; `""` or `{}` when there are none.
    #[serde(default, deserialize_with = "tolerant::json_text")]
    pub options: String,
    #[serde(default, deserialize_with = "tolerant::count")]
    pub table_count: u64,
}

impl SystemRecord for NamespaceRecord {
    const TABLE: &'static str = "namespaces";
    const CF: &'static str = "system_namespaces";
    const KEY_PREFIX: &'static str = "ns:";
    fn id(&self) -> String {
        self.namespace_id.clone()
    }
}

impl NamespaceRecord {
    /// The options as a map (empty when the text is empty or not an object).
    pub fn options_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(&self.options) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }
}
