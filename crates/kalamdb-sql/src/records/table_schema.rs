use serde::{Deserialize, Serialize};

use crate::SystemRecord;
use crate::tolerant;

/// `system.table_schemas`: key `schema:{table_id}:{version}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchemaRecord {
    /// `{table_id}:{version}`.
    pub schema_id: String,
    pub table_id: String,
    pub version: u32,
    /// JSON text of a [`SchemaJson`].
    #[serde(deserialize_with = "tolerant::json_text")]
    pub arrow_schema: String,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
    /// JSON text of an array describing what changed in this version.
    #[serde(default, deserialize_with = "tolerant::json_text")]
    pub changes: String,
}

impl SystemRecord for TableSchemaRecord {
    const TABLE: &'static str = "table_schemas";
    const CF: &'static str = "system_table_schemas";
    const KEY_PREFIX: &'static str = "schema:";
    fn id(&self) -> String {
        self.schema_id.clone()
    }
}

impl TableSchemaRecord {
    pub fn id_for(table_id: &str, version: u32) -> String {
        format!("{table_id}:{version}")
    }

    pub fn schema(&self) -> Result<SchemaJson, serde_json::Error> {
        serde_json::from_str(&self.arrow_schema)
    }
}

/// A table schema as JSON, shaped like G1's `schema_v{N}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaJson {
    pub fields: Vec<SchemaField>,
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// One column: `data_type` is the Arrow type's debug spelling (`Int64`, `Utf8`,
/// `Timestamp(Millisecond, None)`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaField {
    pub name: String,
    pub data_type: String,
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}
