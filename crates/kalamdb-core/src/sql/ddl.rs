//! Namespaces, CREATE TABLE, SHOW and DESCRIBE.

use kalamdb_store::{Row, TableKind};
use serde_json::Value;

use crate::catalog::NewTable;
use crate::catalog::names::validate_namespace;
use crate::catalog::types::{DELETED, UPDATED};
use crate::{Engine, QueryResult, Result};

/// A result row from `(column, value)` pairs.
pub(super) fn row(pairs: Vec<(&str, Value)>) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Engine {
    pub(crate) async fn create_namespace(
        &self,
        name: &str,
        if_not_exists: bool,
    ) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        Ok(if self.catalog().create_namespace(name, if_not_exists)? {
            QueryResult::done(1, format!("namespace {name} created"))
        } else {
            QueryResult::done(0, format!("namespace {name} already exists"))
        })
    }

    pub(crate) async fn alter_namespace(
        &self,
        name: &str,
        options: Vec<(String, String)>,
    ) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        self.catalog().alter_namespace(name, options)?;
        Ok(QueryResult::done(1, format!("namespace {name} altered")))
    }

    pub(crate) async fn drop_namespace(&self, name: &str, if_exists: bool) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        Ok(if self.catalog().drop_namespace(name, if_exists)? {
            QueryResult::done(1, format!("namespace {name} dropped"))
        } else {
            QueryResult::done(0, format!("namespace {name} does not exist"))
        })
    }

    pub(crate) fn show_namespaces(&self) -> Result<QueryResult> {
        let rows = self
            .catalog()
            .namespaces()?
            .into_iter()
            .map(|ns| {
                row(vec![
                    ("name", ns.name.into()),
                    ("table_count", ns.table_count.into()),
                    ("created_at", ns.created_at.into()),
                    ("options", ns.options.into()),
                ])
            })
            .collect();
        Ok(QueryResult::rows(
            &["name", "table_count", "created_at", "options"],
            rows,
        ))
    }

    /// Creates the column family, then writes the catalog rows atomically.
    pub(crate) async fn create_table(
        &self,
        table: NewTable,
        if_not_exists: bool,
    ) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        validate_namespace(&table.namespace)?;
        let qualified = format!("{}.{}", table.namespace, table.name);
        self.catalog().namespace(&table.namespace)?;
        if self
            .catalog()
            .find_table(&table.namespace, &table.name)?
            .is_some()
        {
            return if if_not_exists {
                Ok(QueryResult::done(
                    0,
                    format!("table {qualified} already exists"),
                ))
            } else {
                Err(crate::CoreError::AlreadyExists(format!(
                    "table '{qualified}' already exists"
                )))
            };
        }
        if let Some(job) = self.unfinished_deletion(&qualified)? {
            // Finishing that job would delete this table's column family and files.
            return Err(crate::CoreError::Conflict(format!(
                "an earlier drop of {qualified} has not finished (job {}, {}); finish it first with `kalamctl jobs resume {}`",
                job.job_id, job.status, job.job_id
            )));
        }
        let cf = kalamdb_store::TableCf::new(table.kind, &table.namespace, &table.name).name();
        // Refuse bad options before anything is created.
        match &table.storage {
            Some(s) if !self.sql().storage_locations().exists(s)? => {
                crate::cold::paths::StorageTemplate::for_path(
                    s,
                    table.kind,
                    &table.namespace,
                    &table.name,
                )?;
            }
            _ => {}
        }
        self.storage().create_cf(&cf)?;
        if let Err(e) = self.catalog().create_table(&table) {
            // Leave no orphan column family behind a refused create.
            let _ = self.storage().drop_cf(&cf);
            return Err(e);
        }
        Ok(QueryResult::done(
            1,
            format!("{} table {qualified} created", table.kind),
        ))
    }

    pub(crate) fn show_tables(&self, namespace: Option<&str>) -> Result<QueryResult> {
        if let Some(ns) = namespace {
            self.catalog().namespace(ns)?;
        }
        let rows = self
            .catalog()
            .tables(namespace)?
            .into_iter()
            .map(|t| {
                row(vec![
                    ("namespace", t.namespace.into()),
                    ("table_name", t.table_name.into()),
                    ("table_type", t.table_type.as_str().into()),
                    ("storage_location", t.storage_location.into()),
                    ("flush_policy", t.flush_policy.into()),
                    ("schema_version", t.schema_version.into()),
                    ("created_at", t.created_at.into()),
                ])
            })
            .collect();
        Ok(QueryResult::rows(
            &[
                "namespace",
                "table_name",
                "table_type",
                "storage_location",
                "flush_policy",
                "schema_version",
                "created_at",
            ],
            rows,
        ))
    }

    pub(crate) fn describe_table(&self, namespace: &str, table: &str) -> Result<QueryResult> {
        let def = self.catalog().table(namespace, table)?;
        let mut rows: Vec<Row> = def
            .columns
            .iter()
            .map(|c| {
                row(vec![
                    ("column_name", c.name.clone().into()),
                    ("data_type", c.ty.sql_name().into()),
                    ("is_nullable", c.nullable.into()),
                    (
                        "is_primary_key",
                        (def.primary_key.as_deref() == Some(c.name.as_str())).into(),
                    ),
                    ("is_system", false.into()),
                ])
            })
            .collect();
        if def.kind != TableKind::Stream {
            for (name, ty) in [(UPDATED, "TIMESTAMP"), (DELETED, "BOOLEAN")] {
                rows.push(row(vec![
                    ("column_name", name.into()),
                    ("data_type", ty.into()),
                    ("is_nullable", false.into()),
                    ("is_primary_key", false.into()),
                    ("is_system", true.into()),
                ]));
            }
        }
        Ok(QueryResult::rows(
            &[
                "column_name",
                "data_type",
                "is_nullable",
                "is_primary_key",
                "is_system",
            ],
            rows,
        ))
    }
}
