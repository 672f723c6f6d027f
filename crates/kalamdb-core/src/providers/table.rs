//! The DataFusion provider for user, shared and stream tables.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::Session as DfSession;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::Engine;
use crate::catalog::TableDef;
use crate::catalog::types::{DELETED, arrow_schema};
use crate::cold::arrow_rows::rows_to_batch;
use crate::table_data::ReadOptions;

/// The hidden column DML uses to find the rows it changes.
pub const KEY_COLUMN: &str = "__key";

/// A table as one session sees it.
#[derive(Debug)]
pub struct DataTableProvider {
    engine: Engine,
    def: TableDef,
    user_id: String,
    schema: SchemaRef,
    with_key: bool,
}

impl DataTableProvider {
    /// `with_key` adds the hidden [`KEY_COLUMN`], for UPDATE and DELETE.
    pub fn new(engine: Engine, def: TableDef, user_id: String, with_key: bool) -> Self {
        let extra = if with_key {
            vec![Field::new(KEY_COLUMN, DataType::Utf8, false)]
        } else {
            Vec::new()
        };
        let schema = arrow_schema(&def.columns, def.has_system_columns(), &extra);
        DataTableProvider {
            engine,
            def,
            user_id,
            schema,
            with_key,
        }
    }

    /// `pk = literal` or `literal = pk`: the key to look up.
    fn key_filter(&self, expr: &Expr) -> Option<String> {
        let pk = self.def.primary_key.as_ref()?;
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = expr
        else {
            return None;
        };
        let (col, lit) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => return None,
        };
        if &col.name != pk {
            return None;
        }
        match lit {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            ScalarValue::Int64(Some(n)) => Some(n.to_string()),
            ScalarValue::Int32(Some(n)) => Some(n.to_string()),
            ScalarValue::Int16(Some(n)) => Some(n.to_string()),
            ScalarValue::Int8(Some(n)) => Some(n.to_string()),
            ScalarValue::UInt64(Some(n)) => Some(n.to_string()),
            ScalarValue::UInt32(Some(n)) => Some(n.to_string()),
            ScalarValue::Boolean(Some(b)) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn mentions_deleted(expr: &Expr) -> bool {
    expr.column_refs().iter().any(|c| c.name == DELETED)
}

#[async_trait]
impl TableProvider for DataTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.key_filter(f).is_some() || mentions_deleted(f) {
                    // Used to narrow the read; DataFusion still applies the filter itself.
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let opts = ReadOptions {
            // Soft-deleted rows show only to a query that filters on `_deleted`.
            include_deleted: filters.iter().any(mentions_deleted),
            key: filters.iter().find_map(|f| self.key_filter(f)),
        };
        // Reading both tiers is synchronous I/O: off the runtime's queue, so a long scan does
        // not stall kalamd's other requests.
        let rows = crate::blocking::run(|| self.engine.read_rows(&self.def, &self.user_id, &opts))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let refs: Vec<&kalamdb_store::Row> = rows.iter().map(|(_, r)| r).collect();
        let keys: Vec<(&str, Vec<String>)> = if self.with_key {
            vec![(KEY_COLUMN, rows.iter().map(|(k, _)| k.clone()).collect())]
        } else {
            Vec::new()
        };
        let batch = rows_to_batch(&self.schema, &refs, &keys)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
