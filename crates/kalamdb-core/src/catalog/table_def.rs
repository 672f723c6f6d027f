//! A table as the engine uses it: its `system.tables` row joined with its current schema.

use datafusion::arrow::datatypes::SchemaRef;
use kalamdb_sql::{FlushPolicy, SchemaField, SchemaJson, TableRecord, TableSchemaRecord};
use kalamdb_store::{TableCf, TableKind};

use super::types::{ColumnDef, ColumnType, DELETED, ROW_ID, UPDATED, arrow_schema};
use crate::{CoreError, Result};

/// Schema option naming the primary-key column.
pub const PRIMARY_KEY_OPTION: &str = "primary_key";

#[derive(Debug, Clone)]
pub struct TableDef {
    pub record: TableRecord,
    pub kind: TableKind,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Option<String>,
    pub flush_policy: Option<FlushPolicy>,
}

impl TableDef {
    pub fn namespace(&self) -> &str {
        &self.record.namespace
    }
    pub fn name(&self) -> &str {
        &self.record.table_name
    }
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.record.namespace, self.record.table_name)
    }
    pub fn cf(&self) -> TableCf {
        TableCf::new(self.kind, self.namespace(), self.name())
    }
    /// User and shared tables carry `_updated` and `_deleted`; stream tables do not.
    pub fn has_system_columns(&self) -> bool {
        self.kind != TableKind::Stream
    }
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// The schema queries see.
    pub fn arrow_schema(&self) -> SchemaRef {
        arrow_schema(&self.columns, self.has_system_columns(), &[])
    }

    /// Joins a table row with its schema row.
    pub fn from_records(record: TableRecord, schema: &TableSchemaRecord) -> Result<TableDef> {
        let Some(kind) = record.table_type.kind() else {
            return Err(CoreError::InvalidInput(format!(
                "{} is a system table",
                record.table_id
            )));
        };
        let malformed = |reason: String| {
            CoreError::Catalog(kalamdb_sql::SqlError::Malformed {
                table: "table_schemas",
                key: format!("schema:{}", schema.schema_id),
                reason,
            })
        };
        let json = schema.schema().map_err(|e| malformed(e.to_string()))?;
        let mut columns = Vec::new();
        for f in json.fields.iter().filter(|f| !is_system_column(&f.name)) {
            let ty = ColumnType::from_arrow_spelling(&f.data_type).ok_or_else(|| {
                malformed(format!(
                    "column '{}' has unsupported type {}",
                    f.name, f.data_type
                ))
            })?;
            columns.push(ColumnDef {
                name: f.name.clone(),
                ty,
                nullable: f.nullable,
            });
        }
        let primary_key = json
            .options
            .get(PRIMARY_KEY_OPTION)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let flush_policy = record.flush_policy().map_err(|e| {
            CoreError::Catalog(kalamdb_sql::SqlError::Malformed {
                table: "tables",
                key: format!("table:{}", record.table_id),
                reason: format!("flush_policy: {e}"),
            })
        })?;
        Ok(TableDef {
            record,
            kind,
            columns,
            primary_key,
            flush_policy,
        })
    }
}

/// Whether a column name is one the engine maintains.
pub fn is_system_column(name: &str) -> bool {
    name == UPDATED || name == DELETED || name == ROW_ID
}

/// The stored schema JSON for a table's columns, with the system columns of its kind.
pub fn schema_json(
    kind: TableKind,
    columns: &[ColumnDef],
    primary_key: Option<&str>,
) -> SchemaJson {
    let mut fields: Vec<SchemaField> = columns
        .iter()
        .map(|c| SchemaField {
            name: c.name.clone(),
            data_type: c.ty.arrow_spelling().into(),
            nullable: c.nullable,
        })
        .collect();
    if kind != TableKind::Stream {
        fields.push(SchemaField {
            name: UPDATED.into(),
            data_type: ColumnType::Timestamp.arrow_spelling().into(),
            nullable: false,
        });
        fields.push(SchemaField {
            name: DELETED.into(),
            data_type: ColumnType::Boolean.arrow_spelling().into(),
            nullable: false,
        });
    }
    let mut options = serde_json::Map::new();
    options.insert("table_type".into(), kind.as_str().into());
    if let Some(pk) = primary_key {
        options.insert(PRIMARY_KEY_OPTION.into(), pk.into());
    }
    SchemaJson { fields, options }
}
