//! A subscription's query, compiled once: its table, the columns it shows, and the predicate
//! a row must meet. Only `SELECT * | columns FROM namespace.table [WHERE predicate]` can be
//! evaluated on each changed row alone, so only that is taken.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor,
    Value as SqlValue,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use kalamdb_store::Row;

use crate::catalog::Catalog;
use crate::catalog::TableDef;
use crate::catalog::names::resolved;
use crate::catalog::types::ColumnType;
use crate::cold::arrow_rows::rows_to_batch;
use crate::result::batches_to_json;
use crate::{CoreError, Result};

const SHAPE: &str = "a live query is SELECT * | columns FROM <namespace>.<table> [WHERE predicate]";

/// A compiled subscription query.
pub(crate) struct LiveQuery {
    pub def: TableDef,
    /// The table as queries see it.
    pub schema: SchemaRef,
    projection: Vec<usize>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// A `column = literal` the predicate requires (alone or under AND), as the column and
    /// the literal's text: a change none of whose rows has that value is skipped without
    /// evaluating the predicate, so many subscriptions on one table stay cheap.
    pub required: Option<(String, String)>,
}

impl std::fmt::Debug for LiveQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery")
            .field("table", &self.def.qualified())
            .field("projection", &self.projection)
            .finish()
    }
}

fn refuse(why: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidInput(format!("{why}; {SHAPE}, which is evaluated on each change"))
}

impl LiveQuery {
    pub fn compile(catalog: &Catalog, sql: &str) -> Result<LiveQuery> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql)
            .map_err(|e| CoreError::InvalidInput(format!("malformed SQL: {e}")))?;
        let [Statement::Query(query)] = statements.as_slice() else {
            return Err(refuse("a live query is one SELECT statement"));
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(refuse(format!("'{sql}' is not a plain SELECT")));
        };
        let [from] = select.from.as_slice() else {
            return Err(refuse("a live query reads exactly one table"));
        };
        if !from.joins.is_empty() {
            return Err(refuse(
                "a live query reads exactly one table, without joins",
            ));
        }
        let TableFactor::Table { name, .. } = &from.relation else {
            return Err(refuse(format!("'{}' is not a table", from.relation)));
        };
        let [
            ObjectNamePart::Identifier(ns),
            ObjectNamePart::Identifier(t),
        ] = name.0.as_slice()
        else {
            return Err(refuse(format!(
                "'{name}' needs its namespace: write <namespace>.<table>"
            )));
        };
        // Whatever the pieces above did not look at (a JOIN, an alias, DISTINCT, GROUP BY,
        // ORDER BY, LIMIT, ...) shows in the statement's text and not in this one.
        let projection_text: Vec<String> =
            select.projection.iter().map(ToString::to_string).collect();
        let mut canonical = format!("SELECT {} FROM {name}", projection_text.join(", "));
        if let Some(selection) = &select.selection {
            canonical.push_str(&format!(" WHERE {selection}"));
        }
        if query.to_string() != canonical {
            return Err(refuse(format!(
                "'{sql}' has clauses (joins, aliases, DISTINCT, GROUP BY, ORDER BY, LIMIT) a change cannot be checked against alone"
            )));
        }
        let (ns, t) = (resolved(ns), resolved(t));
        if ns == "system" {
            return Err(refuse("system tables cannot be subscribed to"));
        }
        let def = catalog.table(&ns, &t)?;
        let schema = def.arrow_schema();
        let projection = match select.projection.as_slice() {
            [SelectItem::Wildcard(_)] if projection_text.first().is_some_and(|p| p == "*") => {
                (0..schema.fields().len()).collect()
            }
            items => {
                let mut indices = Vec::with_capacity(items.len());
                for item in items {
                    let SelectItem::UnnamedExpr(Expr::Identifier(ident)) = item else {
                        return Err(refuse(format!(
                            "'{item}' is not a column; a live query shows columns as they are"
                        )));
                    };
                    let column = resolved(ident);
                    let i = schema.index_of(&column).map_err(|_| {
                        CoreError::InvalidInput(format!(
                            "column '{column}' does not exist in {}",
                            def.qualified()
                        ))
                    })?;
                    if indices.contains(&i) {
                        return Err(refuse(format!("column '{column}' is named twice")));
                    }
                    indices.push(i);
                }
                indices
            }
        };
        let filter = match &select.selection {
            None => None,
            Some(selection) => Some(predicate(&schema, &selection.to_string(), &def)?),
        };
        let required = select
            .selection
            .as_ref()
            .and_then(|s| required_equality(s, &def));
        Ok(LiveQuery {
            def,
            schema,
            projection,
            filter,
            required,
        })
    }

    /// The names of the columns it shows.
    pub fn columns(&self) -> Vec<String> {
        self.projection
            .iter()
            .map(|i| self.schema.field(*i).name().clone())
            .collect()
    }

    /// Rows in stored form as a batch of the table's schema, for [`Self::mask`] and
    /// [`Self::render`].
    pub fn batch(&self, rows: &[&Row]) -> Result<RecordBatch> {
        rows_to_batch(&self.schema, rows, &[])
    }

    /// Which rows of `batch` meet the predicate (all, without one); a null is a no.
    pub fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let Some(filter) = &self.filter else {
            return Ok(BooleanArray::from(vec![true; batch.num_rows()]));
        };
        let values = filter
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| CoreError::Query(format!("evaluating a live query's WHERE: {e}")))?;
        let values = values
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| CoreError::Query("a live query's WHERE is not boolean".into()))?;
        Ok(values
            .iter()
            .map(|v| Some(v.unwrap_or(false)))
            .collect::<BooleanArray>())
    }

    /// The rows `keep` selects, with the query's columns, rendered as a query result's rows.
    pub fn render(&self, batch: &RecordBatch, keep: &BooleanArray) -> Result<Vec<Row>> {
        let projected = batch
            .project(&self.projection)
            .and_then(|b| filter_record_batch(&b, keep))
            .map_err(|e| CoreError::Query(e.to_string()))?;
        batches_to_json(&[projected])
    }
}

/// A `column = literal` that `expr` requires, where the literal's text is exactly the text
/// of the values that equal it: a string literal on a TEXT column, an integer on an INT or
/// BIGINT one. Found at the top or under AND only (an OR does not require either side).
fn required_equality(expr: &Expr, def: &TableDef) -> Option<(String, String)> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => required_equality(left, def).or_else(|| required_equality(right, def)),
        Expr::Nested(inner) => required_equality(inner, def),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (column, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Identifier(c), Expr::Value(v)) | (Expr::Value(v), Expr::Identifier(c)) => {
                    (resolved(c), &v.value)
                }
                _ => return None,
            };
            let ty = def.column(&column)?.ty;
            let text = match (ty, value) {
                (ColumnType::Text, SqlValue::SingleQuotedString(s)) => s.clone(),
                (ColumnType::Int | ColumnType::BigInt, SqlValue::Number(n, false)) => {
                    n.parse::<i64>().ok()?.to_string()
                }
                _ => return None,
            };
            Some((column, text))
        }
        _ => None,
    }
}

/// The WHERE predicate, typed against the table's schema by DataFusion.
fn predicate(schema: &SchemaRef, text: &str, def: &TableDef) -> Result<Arc<dyn PhysicalExpr>> {
    let bad = |e: &dyn std::fmt::Display| {
        CoreError::InvalidInput(format!(
            "the WHERE of a live query on {} cannot be evaluated: {e}",
            def.qualified()
        ))
    };
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| bad(&e))?;
    let ctx = SessionContext::new();
    let expr = ctx.parse_sql_expr(text, &df_schema).map_err(|e| bad(&e))?;
    let physical = ctx
        .create_physical_expr(expr, &df_schema)
        .map_err(|e| bad(&e))?;
    match physical.data_type(schema) {
        Ok(DataType::Boolean) => Ok(physical),
        Ok(other) => Err(bad(&format!("'{text}' is {other}, not a condition"))),
        Err(e) => Err(bad(&e)),
    }
}
