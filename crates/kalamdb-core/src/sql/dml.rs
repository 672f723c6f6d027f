//! INSERT, UPDATE and DELETE.
//!
//! INSERT takes literal rows. UPDATE and DELETE find their rows, and evaluate SET
//! expressions, with a DataFusion query over the table (so WHERE may be any predicate), then
//! write the changed rows back through the table's store. DELETE is soft for user and shared
//! tables (`_deleted = true`); an UPDATE never touches a deleted row.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, StringArray};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, ObjectName, SetExpr, Statement, TableFactor, TableObject,
    UnaryOperator, Value as SqlValue,
};
use kalamdb_store::{Row, TableKind, now_ms};
use serde_json::Value;

use crate::catalog::TableDef;
use crate::catalog::types::{DELETED, UPDATED};
use crate::cold::arrow_rows::batch_to_rows;
use crate::live::ChangeKind;
use crate::providers::KEY_COLUMN;
use crate::table_data::key_of_value;
use crate::{CoreError, Engine, QueryResult, Result, Session};

/// A new row id: `{epoch_ms}_{n}`, as the original insert path wrote them.
fn next_row_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{}_{}", now_ms(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A value of an INSERT row: a literal already read, or one whose reading may have failed
/// (reported when the checks reach it, after the problems of earlier rows).
trait InsertValue {
    fn into_value(self) -> Result<Value>;
}

impl InsertValue for Value {
    fn into_value(self) -> Result<Value> {
        Ok(self)
    }
}

impl InsertValue for Result<Value> {
    fn into_value(self) -> Result<Value> {
        self
    }
}

fn relation_name(factor: &TableFactor) -> Result<&ObjectName> {
    match factor {
        TableFactor::Table { name, .. } => Ok(name),
        other => Err(CoreError::InvalidInput(format!("'{other}' is not a table"))),
    }
}

/// Evaluates an INSERT value: literals only (and `NOW()`).
pub(super) fn literal(e: &Expr) -> Result<Value> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .map_err(|_| CoreError::InvalidInput(format!("'{n}' is not a number"))),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Ok(Value::from(s.clone()))
            }
            SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
            SqlValue::Null => Ok(Value::Null),
            other => Err(CoreError::InvalidInput(format!(
                "value {other} is not supported in INSERT"
            ))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Value::Number(n) if n.is_i64() => Ok(Value::from(-n.as_i64().unwrap_or_default())),
            Value::Number(n) => Ok(Value::from(-n.as_f64().unwrap_or_default())),
            _ => Err(CoreError::InvalidInput(format!("cannot negate {expr}"))),
        },
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("now") => {
            Ok(Value::from(now_ms()))
        }
        other => Err(CoreError::InvalidInput(format!(
            "INSERT values must be literals; '{other}' is an expression (use UPDATE ... SET for computed values)"
        ))),
    }
}

impl Engine {
    pub(crate) async fn insert(&self, session: &Session, stmt: &Statement) -> Result<QueryResult> {
        let Statement::Insert(insert) = stmt else {
            return Err(CoreError::InvalidInput("expected INSERT".into()));
        };
        let TableObject::TableName(name) = &insert.table else {
            return Err(CoreError::InvalidInput(
                "INSERT INTO a table function is not supported".into(),
            ));
        };
        let (ns, t) = super::parse::qualified(name)?;
        let def = self.catalog().table(&ns, &t)?;
        let columns = (!insert.columns.is_empty()).then(|| {
            insert
                .columns
                .iter()
                .map(|c| c.to_string().trim_matches('"').to_string())
                .collect()
        });
        let Some(source) = &insert.source else {
            return Err(CoreError::InvalidInput("INSERT needs VALUES (...)".into()));
        };
        let SetExpr::Values(values) = source.body.as_ref() else {
            return Err(CoreError::InvalidInput(
                "INSERT supports VALUES (...) rows only".into(),
            ));
        };
        // A value that is not a literal fails where the loop below reaches it.
        let rows: Vec<Vec<Result<Value>>> = values
            .rows
            .iter()
            .map(|r| r.content.iter().map(literal).collect())
            .collect();
        self.insert_rows(session, def, columns, rows).await
    }

    /// An INSERT of literal rows read without sqlparser: the same checks and write.
    pub(crate) async fn insert_literal(
        &self,
        session: &Session,
        insert: super::values::LiteralInsert,
    ) -> Result<QueryResult> {
        let def = self.catalog().table(&insert.namespace, &insert.table)?;
        self.insert_rows(session, def, insert.columns, insert.rows)
            .await
    }

    /// Checks rows of values for `columns` (all, in order, when `None`) and writes them in
    /// one batch, refusing the whole statement on the first problem.
    async fn insert_rows<V: InsertValue>(
        &self,
        session: &Session,
        def: TableDef,
        columns: Option<Vec<String>>,
        values: Vec<Vec<V>>,
    ) -> Result<QueryResult> {
        let (ns, t) = (def.namespace().to_string(), def.name().to_string());
        let columns: Vec<String> =
            columns.unwrap_or_else(|| def.columns.iter().map(|c| c.name.clone()).collect());
        let mut defs = Vec::with_capacity(columns.len());
        for c in &columns {
            match def.column(c) {
                Some(d) => defs.push(d),
                None => {
                    let what = if crate::catalog::is_system_column(c) {
                        "is maintained by the engine"
                    } else {
                        "does not exist"
                    };
                    return Err(CoreError::InvalidInput(format!(
                        "column '{c}' {what} in {}",
                        def.qualified()
                    )));
                }
            }
        }
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        if let Some((i, c)) = names
            .iter()
            .enumerate()
            .find(|(i, c)| names[..*i].contains(c))
        {
            return Err(CoreError::InvalidInput(format!(
                "column '{c}' is named twice in the column list (position {}); name each column once",
                i + 1
            )));
        }
        let key_at = def
            .primary_key
            .as_deref()
            .and_then(|pk| names.iter().position(|n| *n == pk));
        // A NOT NULL column the statement leaves out fails every row: the first is named below.
        let required_left_out = def
            .columns
            .iter()
            .any(|c| !c.nullable && !names.contains(&c.name.as_str()));

        // Build and check every row before anything is written.
        let mut rows: Vec<(String, Vec<Value>)> = Vec::with_capacity(values.len());
        let mut seen = HashSet::with_capacity(values.len());
        for (i, exprs) in values.into_iter().enumerate() {
            if exprs.len() != columns.len() {
                return Err(CoreError::InvalidInput(format!(
                    "row {} has {} values for {} columns",
                    i + 1,
                    exprs.len(),
                    columns.len()
                )));
            }
            // Room for the two system columns the store adds.
            let mut row = Vec::with_capacity(columns.len() + 2);
            let mut required_null = false;
            for ((col, cdef), e) in columns.iter().zip(&defs).zip(exprs) {
                let v = cdef.ty.coerce(&e.into_value()?).map_err(|why| {
                    CoreError::InvalidInput(format!("column '{col}', row {}: {why}", i + 1))
                })?;
                required_null |= v.is_null() && !cdef.nullable;
                row.push(v);
            }
            if required_left_out || required_null {
                for c in def.columns.iter().filter(|c| !c.nullable) {
                    let at = names.iter().position(|n| *n == c.name);
                    if at.and_then(|at| row.get(at)).is_none_or(Value::is_null) {
                        return Err(CoreError::InvalidInput(format!(
                            "column '{}' is NOT NULL; row {} gives no value",
                            c.name,
                            i + 1
                        )));
                    }
                }
            }
            let key = match &def.primary_key {
                Some(pk) => key_at
                    .and_then(|at| row.get(at))
                    .and_then(key_of_value)
                    .ok_or_else(|| {
                        CoreError::InvalidInput(format!(
                            "row {} has no value for primary key '{pk}'",
                            i + 1
                        ))
                    })?,
                None => next_row_id(),
            };
            if !seen.insert(key.clone()) {
                return Err(CoreError::InvalidInput(format!(
                    "duplicate primary key '{key}' within the INSERT"
                )));
            }
            rows.push((key, row));
        }

        let lock = self.table_lock(&ns, &t);
        // INSERTs of different users into a user table go side by side (see `TableLock`).
        let qualified = def.qualified();
        let user = (def.kind == TableKind::User).then_some(session.user_id.as_str());
        let _held = lock.insert(user, || self.live().records(&qualified)).await;
        let n = rows.len();
        // The existence checks (the hot tier, and Parquet files for keys that may be cold) and
        // the write (an fsync, with synced writes) are blocking I/O: off the runtime's queue.
        crate::blocking::run(|| {
            if def.primary_key.is_some() && def.kind != TableKind::Stream {
                let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
                let live = self.live_keys(&def, &session.user_id, &keys)?;
                if let Some(key) = keys.iter().find(|key| live.contains(**key)) {
                    return Err(CoreError::AlreadyExists(format!(
                        "duplicate primary key '{key}' in {}; the row already exists",
                        def.qualified()
                    )));
                }
            }
            self.insert_values(&def, &session.user_id, &names, rows)
        })?;
        Ok(QueryResult::done(n, format!("{n} row(s) inserted")))
    }

    /// Writes new rows given as values in the order of `columns`. With no live query to tell,
    /// user and shared rows go to the store as values, encoded without building a map of
    /// each; otherwise as maps, through `write_rows`, which publishes them.
    fn insert_values(
        &self,
        def: &TableDef,
        user_id: &str,
        columns: &[&str],
        rows: Vec<(String, Vec<Value>)>,
    ) -> Result<()> {
        // Under the table's lock, as a subscription's start is: none begins in between.
        if def.kind == TableKind::Stream || self.live().records(&def.qualified()) {
            let rows = rows
                .into_iter()
                .map(|(key, values)| {
                    let row: Row = columns
                        .iter()
                        .zip(values)
                        .filter(|(_, v)| !v.is_null())
                        .map(|(c, v)| (c.to_string(), v))
                        .collect();
                    (key, row)
                })
                .collect();
            return self.write_rows(def, user_id, rows, ChangeKind::Insert, None);
        }
        let (ns, t) = (def.namespace(), def.name());
        self.stats().wrote(rows.len() as u64);
        match def.kind {
            TableKind::User => self
                .user_store()
                .put_values(ns, t, user_id, columns, rows)?,
            _ => self.shared_store().put_values(ns, t, columns, rows)?,
        }
        Ok(())
    }

    /// Which of `keys` a live row already holds: one batched read of the hot tier, then,
    /// for the keys not there, one pass over the Parquet files that may hold them.
    fn live_keys(&self, def: &TableDef, user_id: &str, keys: &[&str]) -> Result<HashSet<String>> {
        let (ns, t) = (def.namespace(), def.name());
        let hot = match def.kind {
            TableKind::User => self.user_store().get_many(ns, t, user_id, keys)?,
            _ => self.shared_store().get_many(ns, t, keys)?,
        };
        let mut live = HashSet::new();
        let mut not_hot = HashSet::new();
        for (key, row) in keys.iter().zip(hot) {
            match row {
                // The hot version is the newest: a soft-deleted one frees the key.
                Some(row) => {
                    if row.get(DELETED) != Some(&Value::Bool(true)) {
                        live.insert(key.to_string());
                    }
                }
                None => {
                    not_hot.insert(key.to_string());
                }
            }
        }
        let user = (def.kind == TableKind::User).then_some(user_id);
        live.extend(self.cold_live_keys(def, user, not_hot)?);
        Ok(live)
    }

    /// Writes whole rows by key, through the table's store, atomically, and publishes the
    /// change to the table's live subscribers. User and shared rows are stamped `_updated`
    /// here, so that what subscribers receive is what was written.
    fn write_rows(
        &self,
        def: &TableDef,
        user_id: &str,
        mut rows: Vec<(String, Row)>,
        kind: ChangeKind,
        old: Option<Vec<Row>>,
    ) -> Result<()> {
        if def.has_system_columns() {
            let now = Value::from(now_ms());
            for (_, row) in &mut rows {
                row.insert(UPDATED.into(), now.clone());
                row.entry(DELETED).or_insert(Value::Bool(false));
            }
        }
        self.write_published(def, user_id, rows, kind, old, |rows| {
            self.store_rows(def, user_id, rows)
        })
    }

    fn store_rows(&self, def: &TableDef, user_id: &str, rows: Vec<(String, Row)>) -> Result<()> {
        let (ns, t) = (def.namespace(), def.name());
        self.stats().wrote(rows.len() as u64);
        match def.kind {
            TableKind::User => self.user_store().put_batch(
                ns,
                t,
                rows.into_iter()
                    .map(|(k, r)| (user_id.to_string(), k, r))
                    .collect(),
            )?,
            TableKind::Shared => self.shared_store().put_batch(ns, t, rows)?,
            TableKind::Stream => {
                let now = now_ms();
                self.stream_store().put_batch(
                    ns,
                    t,
                    rows.into_iter().map(|(k, r)| (now, k, r)).collect(),
                )?
            }
        }
        Ok(())
    }

    /// Runs `SELECT *, <extra> FROM table WHERE <selection>` with the key column exposed.
    async fn matching_rows(
        &self,
        session: &Session,
        def: &TableDef,
        extra: &[String],
        selection: Option<&Expr>,
    ) -> Result<Vec<(String, Row)>> {
        let mut sql = String::from("SELECT *");
        for e in extra {
            sql.push_str(", ");
            sql.push_str(e);
        }
        sql.push_str(&format!(" FROM {}", def.qualified()));
        if let Some(w) = selection {
            sql.push_str(&format!(" WHERE {w}"));
        }
        let mut out = Vec::new();
        for batch in self.query_batches(session, &sql, true).await? {
            let keys = batch
                .column_by_name(KEY_COLUMN)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .ok_or_else(|| CoreError::Query("the key column is missing".into()))?;
            for (i, mut row) in batch_to_rows(&batch)?.into_iter().enumerate() {
                row.remove(KEY_COLUMN);
                if keys.is_valid(i) {
                    out.push((keys.value(i).to_string(), row));
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn update(&self, session: &Session, stmt: &Statement) -> Result<QueryResult> {
        let Statement::Update(update) = stmt else {
            return Err(CoreError::InvalidInput("expected UPDATE".into()));
        };
        if update.from.is_some() || !update.table.joins.is_empty() {
            return Err(CoreError::InvalidInput(
                "UPDATE ... FROM and joins are not supported".into(),
            ));
        }
        let (ns, t) = super::parse::qualified(relation_name(&update.table.relation)?)?;
        let def = self.catalog().table(&ns, &t)?;
        let mut targets = Vec::new();
        let mut exprs = Vec::new();
        for (i, a) in update.assignments.iter().enumerate() {
            let AssignmentTarget::ColumnName(col) = &a.target else {
                return Err(CoreError::InvalidInput(
                    "tuple assignments are not supported".into(),
                ));
            };
            let col = col
                .0
                .last()
                .map(|p| p.to_string().trim_matches('"').to_string())
                .unwrap_or_default();
            let Some(cdef) = def.column(&col) else {
                let what = if crate::catalog::is_system_column(&col) {
                    "is maintained by the engine"
                } else {
                    "does not exist"
                };
                return Err(CoreError::InvalidInput(format!(
                    "column '{col}' {what} in {}",
                    def.qualified()
                )));
            };
            if def.primary_key.as_deref() == Some(col.as_str()) {
                return Err(CoreError::InvalidInput(format!(
                    "the primary key '{col}' cannot be updated; delete the row and insert a new one"
                )));
            }
            exprs.push(format!("({}) AS \"__set_{i}\"", a.value));
            targets.push(cdef.clone());
        }

        let lock = self.table_lock(&ns, &t);
        let _guard = lock.exclusive().await;
        let matched = self
            .matching_rows(session, &def, &exprs, update.selection.as_ref())
            .await?;
        let mut changed = Vec::new();
        let mut before = Vec::new();
        for (key, mut row) in matched {
            if row.get(DELETED) == Some(&Value::Bool(true)) {
                continue; // An UPDATE never resurrects a deleted row.
            }
            let mut old = row.clone();
            old.retain(|k, v| !k.starts_with("__set_") && !v.is_null());
            before.push(old);
            for (i, cdef) in targets.iter().enumerate() {
                let v = row.remove(&format!("__set_{i}")).unwrap_or(Value::Null);
                let v = cdef.ty.coerce(&v).map_err(|why| {
                    CoreError::InvalidInput(format!("column '{}': {why}", cdef.name))
                })?;
                if v.is_null() && !cdef.nullable {
                    return Err(CoreError::InvalidInput(format!(
                        "column '{}' is NOT NULL",
                        cdef.name
                    )));
                }
                row.insert(cdef.name.clone(), v);
            }
            row.remove(UPDATED);
            row.retain(|_, v| !v.is_null());
            changed.push((key, row));
        }
        let n = changed.len();
        crate::blocking::run(|| self.write_changed(&def, &session.user_id, changed, before))?;
        Ok(QueryResult::done(n, format!("{n} row(s) updated")))
    }

    /// Writes rows found by a query back by key; stream keys are `{ts}:{row_id}`.
    fn write_changed(
        &self,
        def: &TableDef,
        user_id: &str,
        rows: Vec<(String, Row)>,
        before: Vec<Row>,
    ) -> Result<()> {
        if def.kind != TableKind::Stream {
            return self.write_rows(def, user_id, rows, ChangeKind::Update, Some(before));
        }
        let parsed = rows
            .into_iter()
            .map(|(k, r)| {
                let (ts, id) = kalamdb_store::keys::parse_stream_key(&k)
                    .ok_or_else(|| CoreError::Query(format!("bad stream key '{k}'")))?;
                Ok((ts, id.to_string(), r))
            })
            .collect::<Result<Vec<_>>>()?;
        let published: Vec<(String, Row)> = parsed
            .iter()
            .map(|(_, id, row)| (id.clone(), row.clone()))
            .collect();
        self.write_published(
            def,
            user_id,
            published,
            ChangeKind::Update,
            Some(before),
            |_| {
                self.stream_store()
                    .put_batch(def.namespace(), def.name(), parsed)?;
                Ok(())
            },
        )
    }

    pub(crate) async fn delete(&self, session: &Session, stmt: &Statement) -> Result<QueryResult> {
        let Statement::Delete(delete) = stmt else {
            return Err(CoreError::InvalidInput("expected DELETE".into()));
        };
        let from = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [table] = from.as_slice() else {
            return Err(CoreError::InvalidInput(
                "DELETE takes exactly one table".into(),
            ));
        };
        if delete.using.is_some() || !table.joins.is_empty() {
            return Err(CoreError::InvalidInput(
                "DELETE ... USING and joins are not supported".into(),
            ));
        }
        let (ns, t) = super::parse::qualified(relation_name(&table.relation)?)?;
        let def = self.catalog().table(&ns, &t)?;
        let lock = self.table_lock(&ns, &t);
        let _guard = lock.exclusive().await;
        let matched = self
            .matching_rows(session, &def, &[], delete.selection.as_ref())
            .await?;
        let n;
        if def.kind == TableKind::Stream {
            let keys: Vec<(i64, String)> = matched
                .iter()
                .filter_map(|(k, _)| {
                    kalamdb_store::keys::parse_stream_key(k).map(|(ts, id)| (ts, id.to_string()))
                })
                .collect();
            n = keys.len();
            self.stats().wrote(n as u64);
            let gone: Vec<(String, Row)> = matched.into_iter().collect();
            self.write_published(
                &def,
                &session.user_id,
                gone,
                ChangeKind::Delete,
                None,
                |_| {
                    self.stream_store().remove(&ns, &t, keys)?;
                    Ok(())
                },
            )?;
        } else {
            let rows: Vec<(String, Row)> = matched
                .into_iter()
                .filter(|(_, r)| r.get(DELETED) != Some(&Value::Bool(true)))
                .map(|(k, mut r)| {
                    r.remove(UPDATED);
                    r.retain(|_, v| !v.is_null());
                    r.insert(DELETED.into(), Value::Bool(true));
                    (k, r)
                })
                .collect();
            n = rows.len();
            crate::blocking::run(|| {
                self.write_rows(&def, &session.user_id, rows, ChangeKind::Delete, None)
            })?;
        }
        Ok(QueryResult::done(n, format!("{n} row(s) deleted")))
    }
}
