//! The point-lookup fast path: `SELECT * | cols FROM ns.t WHERE pk = literal`, answered by a
//! key lookup in both tiers (a get on the hot tier, the Parquet files whose key range and
//! bloom filter may hold the key) without planning a DataFusion query.
//!
//! The answer is the one DataFusion gives: the same read ([`Engine::read_rows`] with the
//! key, soft-deleted rows hidden, the session's own rows of a user table), the same Arrow
//! conversion and the same JSON rendering. Anything else, including every error, goes the
//! DataFusion way, so a statement recognized here differs from the general path in speed only.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor,
    UnaryOperator, Value as SqlValue,
};
use kalamdb_store::Row;
use serde_json::Value;

use crate::catalog::names::resolved;
use crate::catalog::types::ColumnType;
use crate::cold::arrow_rows::rows_to_batch;
use crate::result::batches_to_json;
use crate::table_data::ReadOptions;
use crate::{Engine, QueryResult, Result, Session};

/// A recognized point query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PointQuery {
    namespace: String,
    table: String,
    /// `None`: `*`.
    columns: Option<Vec<String>>,
    /// The column the WHERE fixes, and to what.
    column: String,
    value: Literal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Int(i64),
    Text(String),
}

/// Recognizes `SELECT * | c1, c2 FROM ns.t WHERE col = literal` (or `literal = col`), and
/// nothing more: no alias, DISTINCT, ORDER BY, LIMIT or other clause.
pub(crate) fn recognize(statement: &Statement) -> Option<PointQuery> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, .. } = &from.relation else {
        return None;
    };
    let [
        ObjectNamePart::Identifier(ns),
        ObjectNamePart::Identifier(t),
    ] = name.0.as_slice()
    else {
        return None;
    };
    let columns = match select.projection.as_slice() {
        [SelectItem::Wildcard(_)] => None,
        items => Some(
            items
                .iter()
                .map(|item| match item {
                    SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(resolved(ident)),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>()?,
        ),
    };
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = &select.selection
    else {
        return None;
    };
    let (column, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Identifier(c), v) | (v, Expr::Identifier(c)) => (resolved(c), literal(v)?),
        _ => return None,
    };
    // Whatever the pieces above did not look at (a JOIN, an alias, DISTINCT, GROUP BY, ORDER
    // BY, LIMIT, a wildcard's EXCEPT, ...) shows in the statement's text and not in this one.
    let projection: Vec<String> = select.projection.iter().map(ToString::to_string).collect();
    let canonical = format!(
        "SELECT {} FROM {name} WHERE {}",
        projection.join(", "),
        select.selection.as_ref()?
    );
    if query.to_string() != canonical
        || projection
            .first()
            .is_some_and(|p| columns.is_none() && p != "*")
    {
        return None;
    }
    Some(PointQuery {
        namespace: resolved(ns),
        table: resolved(t),
        columns,
        column,
        value,
    })
}

fn literal(e: &Expr) -> Option<Literal> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, false) => n.parse().ok().map(Literal::Int),
            SqlValue::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Literal::Int(n) => n.checked_neg().map(Literal::Int),
            Literal::Text(_) => None,
        },
        _ => None,
    }
}

impl Literal {
    /// The row key a primary key of type `ty` equal to this literal has, where DataFusion
    /// would compare the two without a cast the fast path does not make.
    fn key_for(&self, ty: ColumnType) -> Option<String> {
        match (ty, self) {
            (ColumnType::Int | ColumnType::BigInt, Literal::Int(n)) => Some(n.to_string()),
            (ColumnType::Text, Literal::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Whether a stored value equals this literal as DataFusion would see it after the
    /// row is typed (an INT value out of range is null, and null equals nothing).
    fn matches(&self, ty: ColumnType, value: Option<&Value>) -> bool {
        match (self, value) {
            (Literal::Int(n), Some(v)) => match ty {
                ColumnType::Int => v
                    .as_i64()
                    .is_some_and(|v| i32::try_from(v).is_ok() && v == *n),
                _ => v.as_i64() == Some(*n),
            },
            (Literal::Text(s), Some(Value::String(v))) => v == s,
            _ => false,
        }
    }
}

impl Engine {
    /// Answers a recognized point query, or `None` when it must go through DataFusion.
    pub(crate) fn point_query(
        &self,
        session: &Session,
        q: &PointQuery,
    ) -> Result<Option<QueryResult>> {
        if q.namespace == "system" {
            return Ok(None);
        }
        // A missing table (and every other refusal) is DataFusion's to report.
        let Ok(def) = self.catalog().table(&q.namespace, &q.table) else {
            return Ok(None);
        };
        let Some(pk) = def.primary_key.as_deref().filter(|pk| *pk == q.column) else {
            return Ok(None);
        };
        let Some(ty) = def.column(pk).map(|c| c.ty) else {
            return Ok(None);
        };
        let Some(key) = q.value.key_for(ty) else {
            return Ok(None);
        };
        let schema = def.arrow_schema();
        let indices = match &q.columns {
            None => (0..schema.fields().len()).collect::<Vec<_>>(),
            Some(columns) => {
                let mut indices = Vec::with_capacity(columns.len());
                for c in columns {
                    match schema.index_of(c) {
                        // A repeated column is an error DataFusion words.
                        Ok(i) if !indices.contains(&i) => indices.push(i),
                        _ => return Ok(None),
                    }
                }
                indices
            }
        };
        let opts = ReadOptions {
            include_deleted: false,
            key: Some(key),
        };
        // On the calling thread: a get, the manifest, and a few Parquet pages where it says
        // the key may be cold (`read_cold` leaves the runtime's queue for objects).
        let rows = self.read_rows(&def, &session.user_id, &opts)?;
        let rows: Vec<&Row> = rows
            .iter()
            .map(|(_, row)| row)
            .filter(|row| q.value.matches(ty, row.get(pk)))
            .collect();
        let batch = rows_to_batch(&schema, &rows, &[])?
            .project(&indices)
            .map_err(|e| crate::CoreError::Query(e.to_string()))?;
        let columns = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let rows = batches_to_json(&[batch])?;
        Ok(Some(QueryResult {
            row_count: rows.len(),
            columns,
            rows,
            message: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    /// What `recognize` makes of a text holding exactly one statement (`None` otherwise).
    fn recognize(sql: &str) -> Option<PointQuery> {
        match Parser::parse_sql(&GenericDialect {}, sql).ok()?.as_slice() {
            [statement] => super::recognize(statement),
            _ => None,
        }
    }

    fn point(columns: Option<&[&str]>, column: &str, value: Literal) -> Option<PointQuery> {
        Some(PointQuery {
            namespace: "app".into(),
            table: "t".into(),
            columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            column: column.into(),
            value,
        })
    }

    #[test]
    fn recognizes_point_queries_only() {
        assert_eq!(
            recognize("SELECT * FROM app.t WHERE id = 5"),
            point(None, "id", Literal::Int(5))
        );
        assert_eq!(
            recognize("select Body, \"X\" from App.T where 'k' = ID"),
            point(Some(&["body", "X"]), "id", Literal::Text("k".into()))
        );
        assert_eq!(
            recognize("SELECT * FROM app.t WHERE id = -7"),
            point(None, "id", Literal::Int(-7))
        );
        for other in [
            "SELECT * FROM app.t WHERE id = 5 LIMIT 1",
            "SELECT * FROM app.t WHERE id = 5 ORDER BY id",
            "SELECT DISTINCT * FROM app.t WHERE id = 5",
            "SELECT * FROM app.t AS x WHERE id = 5",
            "SELECT * EXCEPT (body) FROM app.t WHERE id = 5",
            "SELECT id AS k FROM app.t WHERE id = 5",
            "SELECT * FROM app.t WHERE id = 5 AND body = 'x'",
            "SELECT * FROM app.t WHERE id > 5",
            "SELECT * FROM app.t WHERE id = 5.0",
            "SELECT * FROM app.t WHERE id = 99999999999999999999",
            "SELECT * FROM app.t, app.u WHERE id = 5",
            "SELECT * FROM app.t JOIN app.u ON true WHERE id = 5",
            "SELECT * FROM t WHERE id = 5",
            "SELECT * FROM app.t WHERE id = 5; SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM app.t WHERE id = 5",
            "SELECT * FROM app.t WHERE id = 5 UNION SELECT * FROM app.t WHERE id = 6",
            "SELECT count(*) FROM app.t WHERE id = 5",
        ] {
            assert_eq!(recognize(other), None, "{other}");
        }
    }
}
