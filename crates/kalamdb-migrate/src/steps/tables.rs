//! Tables known only by their data column family: a `system.tables` row and a version-1
//! schema inferred from the rows.

use kalamdb_sql::{JobRecord, SystemRecord, TableRecord, TableSchemaRecord, TableType};

use super::{Ctx, Outcome, dropped_by_job};
use crate::image::Image;
use crate::infer::column_type;
use kalamdb_core::catalog::types::ColumnDef;
use kalamdb_core::catalog::{DEFAULT_LOCATION, schema_json};

/// Gives every data column family without a schema a table row and an inferred schema,
/// or reports why it cannot. Dropped tables' empty column families are left to the repair
/// step.
pub fn infer_missing(image: &Image, ctx: &Ctx<'_>, jobs: &[JobRecord], out: &mut Outcome) {
    // `schema:{ns}:{table}:{version}`: the tables that have one.
    let with_schema: std::collections::BTreeSet<&str> = image
        .records(TableSchemaRecord::CF)
        .keys()
        .filter_map(|k| k.strip_prefix(TableSchemaRecord::KEY_PREFIX))
        .filter_map(|rest| rest.rsplit_once(':').map(|(table_id, _)| table_id))
        .collect();
    for (name, data) in &image.data {
        let (ns, table) = (&data.cf.namespace, &data.cf.table);
        let table_id = TableRecord::id_for(ns, table);
        let row_key = format!("{}{table_id}", TableRecord::KEY_PREFIX);
        let row: Option<TableRecord> = image
            .records(TableRecord::CF)
            .get(&row_key)
            .and_then(|b| serde_json::from_slice(b).ok());
        if with_schema.contains(table_id.as_str()) {
            continue;
        }
        let created = row.as_ref().map_or(0, |r| r.created_at);
        if data.empty {
            if !dropped_by_job(jobs, ns, table, created) {
                out.invalid(
                    name,
                    "",
                    "no rows and no schema, so its columns cannot be inferred; recreate the table after the migration, or pass --skip-invalid to leave the column family uncatalogued",
                );
            }
            continue;
        }
        let Some(inferred) = &data.inferred else {
            continue;
        };
        if inferred.bad_rows > 0 {
            out.invalid(
                name,
                "",
                format!(
                    "{} of its rows are not JSON objects, so its columns cannot be inferred",
                    inferred.bad_rows
                ),
            );
            continue;
        }
        let mut columns = Vec::new();
        let mut conflicts = Vec::new();
        for (column, kinds) in &inferred.kinds {
            match column_type(*kinds) {
                Ok(Some(ty)) => columns.push(ColumnDef {
                    name: column.clone(),
                    ty,
                    nullable: true,
                }),
                Ok(None) => out.report.notes.push(format!(
                    "{ns}.{table}: column {column} is null in every row, so its type cannot be inferred; it is not added"
                )),
                Err(kinds) => conflicts.push(format!("{column} ({kinds})")),
            }
        }
        if !conflicts.is_empty() {
            out.invalid(
                name,
                "",
                format!(
                    "columns hold values of different kinds, so no type fits: {}",
                    conflicts.join("; ")
                ),
            );
            continue;
        }
        let record = match row {
            Some(mut r) => {
                r.schema_version = 1;
                r
            }
            None => TableRecord {
                table_id: table_id.clone(),
                table_name: table.clone(),
                namespace: ns.clone(),
                table_type: TableType::from(data.cf.kind),
                created_at: inferred.first_ms.unwrap_or(ctx.now),
                storage_location: DEFAULT_LOCATION.to_string(),
                flush_policy: String::new(),
                schema_version: 1,
                deleted_retention_hours: None,
                ttl_seconds: None,
                max_buffer: None,
            },
        };
        let schema = schema_json(data.cf.kind, &columns, None);
        let schema_key = format!("{}{table_id}", TableSchemaRecord::KEY_PREFIX);
        let Some(arrow_schema) = out
            .encode(TableSchemaRecord::CF, &schema_key, &schema)
            .and_then(|b| String::from_utf8(b).ok())
        else {
            continue;
        };
        let schema = TableSchemaRecord {
            schema_id: TableSchemaRecord::id_for(&table_id, 1),
            table_id: table_id.clone(),
            version: 1,
            arrow_schema,
            created_at: record.created_at,
            changes: r#"["inferred from rows by kalamctl migrate"]"#.to_string(),
        };
        out.put_record(image, &record);
        out.put_record(image, &schema);
        out.count("tables", "schema inferred from rows");
    }
}
