//! Read-only DataFusion providers for the seven `system.*` tables and `system.cold_batches`
//! (the cold-tier manifest).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use kalamdb_sql::{KalamSql, SystemRecord};
use kalamdb_store::Row;

use crate::cold::arrow_rows::rows_to_batch;
use crate::live::LiveRegistry;

/// The names of the system tables, as queried under `system.`.
pub const SYSTEM_TABLES: [&str; 8] = [
    "users",
    "namespaces",
    "storage_locations",
    "live_queries",
    "jobs",
    "tables",
    "table_schemas",
    "cold_batches",
];

const TS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

fn columns(table: &str) -> Option<Vec<(&'static str, DataType)>> {
    use DataType::{Float64, Int64, Utf8};
    Some(match table {
        "users" => vec![
            ("user_id", Utf8),
            ("username", Utf8),
            ("email", Utf8),
            ("created_at", TS),
        ],
        "namespaces" => vec![
            ("namespace_id", Utf8),
            ("name", Utf8),
            ("created_at", TS),
            ("options", Utf8),
            ("table_count", Int64),
        ],
        "storage_locations" => vec![
            ("location_name", Utf8),
            ("location_type", Utf8),
            ("path", Utf8),
            ("credentials_ref", Utf8),
            ("usage_count", Int64),
            ("created_at", TS),
            ("updated_at", TS),
        ],
        "live_queries" => vec![
            ("live_id", Utf8),
            ("connection_id", Utf8),
            ("table_name", Utf8),
            ("query_id", Utf8),
            ("user_id", Utf8),
            ("query", Utf8),
            ("options", Utf8),
            ("created_at", TS),
            ("updated_at", TS),
            ("changes", Int64),
            ("node", Utf8),
        ],
        "jobs" => vec![
            ("job_id", Utf8),
            ("job_type", Utf8),
            ("table_name", Utf8),
            ("status", Utf8),
            ("start_time", TS),
            ("end_time", TS),
            ("parameters", Utf8),
            ("result", Utf8),
            ("trace", Utf8),
            ("memory_used_mb", Float64),
            ("cpu_used_percent", Float64),
            ("node_id", Utf8),
            ("error_message", Utf8),
            ("error_code", Utf8),
            ("owner", Utf8),
            ("heartbeat_at", TS),
            ("progress", Utf8),
            ("step", Utf8),
        ],
        "tables" => vec![
            ("table_id", Utf8),
            ("table_name", Utf8),
            ("namespace", Utf8),
            ("table_type", Utf8),
            ("created_at", TS),
            ("storage_location", Utf8),
            ("flush_policy", Utf8),
            ("schema_version", Int64),
            ("deleted_retention_hours", Int64),
            ("ttl_seconds", Int64),
            ("max_buffer", Int64),
        ],
        "table_schemas" => vec![
            ("schema_id", Utf8),
            ("table_id", Utf8),
            ("version", Int64),
            ("arrow_schema", Utf8),
            ("created_at", TS),
            ("changes", Utf8),
        ],
        "cold_batches" => vec![
            ("namespace", Utf8),
            ("table_name", Utf8),
            ("user_id", Utf8),
            ("file_name", Utf8),
            ("path", Utf8),
            ("size", Int64),
            ("row_count", Int64),
            ("min_key", Utf8),
            ("max_key", Utf8),
            ("schema_version", Int64),
            ("job_id", Utf8),
            ("sha256", Utf8),
            ("created_at", TS),
        ],
        _ => return None,
    })
}

/// One system table, read in full at scan time.
#[derive(Debug)]
pub struct SystemTableProvider {
    sql: KalamSql,
    table: &'static str,
    schema: SchemaRef,
    /// `system.live_queries`: the registry whose counts fill `changes` (the stored rows
    /// leave it at 0; the running server counts in memory).
    live: Option<Arc<LiveRegistry>>,
}

impl SystemTableProvider {
    pub fn new(sql: KalamSql, table: &str) -> Option<Self> {
        let table = SYSTEM_TABLES.into_iter().find(|t| *t == table)?;
        let fields: Vec<Field> = columns(table)?
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect();
        Some(SystemTableProvider {
            sql,
            table,
            schema: Arc::new(Schema::new(fields)),
            live: None,
        })
    }

    /// Shows `changes` of `system.live_queries` from the running server's counts.
    pub fn with_live(mut self, live: Arc<LiveRegistry>) -> Self {
        self.live = Some(live);
        self
    }

    fn rows(&self) -> kalamdb_sql::Result<Vec<Row>> {
        fn all<R: SystemRecord>(t: kalamdb_sql::SystemTable<R>) -> kalamdb_sql::Result<Vec<Row>> {
            Ok(t.scan_lenient()?.0.iter().filter_map(to_row).collect())
        }
        match self.table {
            "users" => all(self.sql.users()),
            "namespaces" => all(self.sql.namespaces()),
            "storage_locations" => all(self.sql.storage_locations()),
            "live_queries" => {
                let (mut records, _) = self.sql.live_queries().scan_lenient()?;
                if let Some(live) = &self.live {
                    live.fill_changes(&mut records);
                }
                Ok(records.iter().filter_map(to_row).collect())
            }
            "jobs" => all(self.sql.jobs()),
            "tables" => all(self.sql.tables()),
            "cold_batches" => all(self.sql.cold_batches()),
            _ => all(self.sql.table_schemas()),
        }
    }
}

/// A record as a row: nested values (lists, objects) become their JSON text.
fn to_row<R: serde::Serialize>(record: &R) -> Option<Row> {
    let serde_json::Value::Object(map) = serde_json::to_value(record).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    (k, serde_json::Value::from(v.to_string()))
                }
                other => (k, other),
            })
            .collect(),
    )
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let rows = self
            .rows()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let refs: Vec<&Row> = rows.iter().collect();
        let batch = rows_to_batch(&self.schema, &refs, &[])
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
