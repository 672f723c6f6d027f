//! Queries through DataFusion, over providers registered for exactly the tables they name.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::common::config::Dialect;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::providers::{DataTableProvider, SYSTEM_TABLES, SystemTableProvider};
use crate::result::batches_to_json;
use crate::{CoreError, Engine, QueryResult, Result, Session};

impl Engine {
    /// Runs a query and returns its batches. `with_key` exposes the hidden key column, for DML.
    pub(crate) async fn query_batches(
        &self,
        session: &Session,
        sql: &str,
        with_key: bool,
    ) -> Result<Vec<RecordBatch>> {
        Ok(self.planned_query(session, sql, with_key).await?.1)
    }

    /// Plans and runs a query's text through DataFusion: the result's columns and its batches.
    async fn planned_query(
        &self,
        session: &Session,
        sql: &str,
        with_key: bool,
    ) -> Result<(Vec<String>, Vec<RecordBatch>)> {
        let ctx = query_context();
        let statement = ctx.state().sql_to_statement(sql, &Dialect::Generic)?;
        self.planned_statement(&ctx, session, statement, with_key)
            .await
    }

    /// Plans and runs a parsed statement through DataFusion.
    async fn planned_statement(
        &self,
        ctx: &SessionContext,
        session: &Session,
        statement: DfStatement,
        with_key: bool,
    ) -> Result<(Vec<String>, Vec<RecordBatch>)> {
        let state = ctx.state();
        for reference in state.resolve_table_references(&statement)? {
            self.register(ctx, session, &reference, with_key)?;
        }
        let plan = ctx.state().statement_to_plan(statement).await?;
        if matches!(
            plan,
            LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
        ) {
            return Err(CoreError::InvalidInput(
                "only queries run through this path".into(),
            ));
        }
        let columns = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok((columns, batches))
    }

    fn register(
        &self,
        ctx: &SessionContext,
        session: &Session,
        reference: &TableReference,
        with_key: bool,
    ) -> Result<()> {
        let table = reference.table();
        let Some(namespace) = reference.schema() else {
            return Err(CoreError::InvalidInput(format!(
                "table '{table}' needs its namespace: write <namespace>.{table}"
            )));
        };
        let provider: Arc<dyn datafusion::datasource::TableProvider> = if namespace == "system" {
            if !session.is_admin() {
                return Err(CoreError::PermissionDenied(format!(
                    "system.{table} is readable by admins only"
                )));
            }
            let provider =
                SystemTableProvider::new(self.sql().clone(), table).ok_or_else(|| {
                    CoreError::NotFound(format!(
                        "system.{table} does not exist; system tables are: {}",
                        SYSTEM_TABLES.join(", ")
                    ))
                })?;
            Arc::new(provider.with_live(self.live().clone()))
        } else {
            let def = self.catalog().table(namespace, table)?;
            Arc::new(DataTableProvider::new(
                self.clone(),
                def,
                session.user_id.clone(),
                with_key,
            ))
        };
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| CoreError::Query("DataFusion's default catalog is missing".into()))?;
        if catalog.schema(namespace).is_none() {
            catalog.register_schema(namespace, Arc::new(MemorySchemaProvider::new()))?;
        }
        ctx.register_table(TableReference::partial(namespace, table), provider)?;
        Ok(())
    }

    /// Runs a query and returns its rows as JSON: a lookup by primary key directly, anything
    /// else through DataFusion.
    pub(crate) async fn run_query(
        &self,
        session: &Session,
        stmt: Statement,
    ) -> Result<QueryResult> {
        if let Some(point) = super::point::recognize(&stmt)
            && let Some(result) = self.point_query(session, &point)?
        {
            return Ok(result);
        }
        let statement = DfStatement::Statement(Box::new(stmt));
        let planned = self
            .planned_statement(&query_context(), session, statement, false)
            .await?;
        result(planned)
    }

    /// EXPLAIN, as DataFusion's parser read it.
    pub(crate) async fn run_explain(
        &self,
        session: &Session,
        statement: DfStatement,
    ) -> Result<QueryResult> {
        let planned = self
            .planned_statement(&query_context(), session, statement, false)
            .await?;
        result(planned)
    }
}

/// A DataFusion context for one query: one partition (the providers read in one pass), no
/// information schema.
fn query_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    SessionContext::new_with_config(config)
}

fn result((columns, batches): (Vec<String>, Vec<RecordBatch>)) -> Result<QueryResult> {
    let rows = batches_to_json(&batches)?;
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        message: None,
    })
}
