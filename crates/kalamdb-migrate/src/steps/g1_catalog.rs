//! Step 0001: G1's catalog (`system_table:*` column families and `conf/` JSON files) into the
//! G2 column families.

use std::collections::{BTreeMap, BTreeSet};

use kalamdb_sql::tolerant::millis_from_json;
use kalamdb_sql::{NamespaceRecord, TableRecord, TableSchemaRecord, TableType};
use kalamdb_store::TableKind;
use serde_json::{Map, Value};

use super::{Ctx, Outcome};
use crate::image::{G1_COLUMN_FAMILIES, Image};
use kalamdb_core::catalog::{DEFAULT_LOCATION, DEFAULT_LOCATION_PATH};
use kalamdb_core::cold::paths::{StorageTemplate, batch_files};

const CONF: &str = "conf";

pub fn run(image: &Image, ctx: &Ctx<'_>) -> Outcome {
    let mut out = Outcome::default();
    out.create_missing_system_cfs(image);
    for (g1, g2) in G1_COLUMN_FAMILIES {
        let entity = g2.trim_start_matches("system_");
        for (key, value) in image.records(g1) {
            if image.records(g2).get(key) != Some(value) {
                out.put(g2, key, value.clone());
                out.count(entity, "copied from the G1 column family");
            }
        }
    }
    let empty = BTreeMap::new();
    let conf = image.conf.as_ref().unwrap_or(&empty);
    namespaces(conf, ctx, &mut out, image);
    locations(conf, image, &mut out);
    let tables = tables(conf, image, ctx, &mut out);
    for (name, data) in &image.data {
        let id = (data.cf.namespace.clone(), data.cf.table.clone());
        if tables.contains(&id) {
            continue;
        }
        if data.empty {
            out.report.repaired.push(format!(
                "column family {name} is empty and has no schema folder: a dropped table's, which the drop never removed; `finalize` drops it"
            ));
            out.report.leftovers.column_families.push(name.clone());
            // The drop looked for Parquet files under the unresolved ${user_id} path.
            let template = StorageTemplate::for_location(
                DEFAULT_LOCATION_PATH,
                data.cf.kind,
                &data.cf.namespace,
                &data.cf.table,
            );
            let files: Vec<String> = template
                .existing_dirs(ctx.dir)
                .unwrap_or_default()
                .iter()
                .flat_map(|(_, d)| batch_files(d).unwrap_or_default())
                .map(|f| f.to_string())
                .collect();
            if !files.is_empty() {
                out.report.repaired.push(format!(
                    "{} Parquet file(s) of the dropped table {}.{} remain; `finalize` deletes them",
                    files.len(),
                    data.cf.namespace,
                    data.cf.table
                ));
                out.report.leftovers.files.extend(files);
            }
        } else {
            out.invalid(
                name,
                "",
                format!(
                    "holds rows, but conf/{}/schemas/{}/ does not exist, so G1 has no such table; restore the schema folder, or pass --skip-invalid to leave the column family as it is",
                    data.cf.namespace, data.cf.table
                ),
            );
        }
    }
    out
}

fn parse_object(
    conf: &BTreeMap<String, Vec<u8>>,
    file: &str,
    out: &mut Outcome,
) -> Option<Map<String, Value>> {
    let bytes = conf.get(file)?;
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Some(m),
        Ok(_) => {
            out.invalid(CONF, file, "not a JSON object");
            None
        }
        Err(e) => {
            out.invalid(CONF, file, format!("not valid JSON: {e}"));
            None
        }
    }
}

/// `conf/namespaces.json`: `{name: {name, created_at (RFC 3339), options (object), table_count}}`.
fn namespaces(conf: &BTreeMap<String, Vec<u8>>, ctx: &Ctx<'_>, out: &mut Outcome, image: &Image) {
    let Some(map) = parse_object(conf, "namespaces.json", out) else {
        return;
    };
    for (name, entry) in map {
        let Value::Object(entry) = entry else {
            out.invalid(
                CONF,
                &format!("namespaces.json:{name}"),
                "not a JSON object",
            );
            continue;
        };
        let options = match entry.get("options") {
            None | Some(Value::Null) => "{}".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        let record = NamespaceRecord {
            namespace_id: name.clone(),
            name: name.clone(),
            created_at: entry
                .get("created_at")
                .and_then(millis_from_json)
                .unwrap_or(ctx.now),
            options,
            table_count: entry
                .get("table_count")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        };
        if out.put_record(image, &record) {
            out.count("namespaces", "created from conf/namespaces.json");
        }
    }
}

/// `conf/storage_locations.json` fills in locations the column family lacks.
fn locations(conf: &BTreeMap<String, Vec<u8>>, image: &Image, out: &mut Outcome) {
    let Some(map) = parse_object(conf, "storage_locations.json", out) else {
        return;
    };
    for (name, entry) in map {
        let key = format!("location:{name}");
        let known = image
            .records("system_table:storage_locations")
            .contains_key(&key)
            || image.records("system_storage_locations").contains_key(&key);
        if known {
            continue;
        }
        let Value::Object(mut entry) = entry else {
            out.invalid(
                CONF,
                &format!("storage_locations.json:{name}"),
                "not a JSON object",
            );
            continue;
        };
        entry
            .entry("location_name")
            .or_insert_with(|| Value::String(name.clone()));
        out.put(
            "system_storage_locations",
            &key,
            Value::Object(entry).to_string().into_bytes(),
        );
        out.count(
            "storage_locations",
            "created from conf/storage_locations.json",
        );
    }
}

/// A file in a schema folder: its name and bytes.
type SchemaFile<'a> = (&'a str, &'a [u8]);

/// One version of a table's schema, as its folder holds it.
struct Version {
    schema: Value,
    created_at: Option<i64>,
    description: Option<String>,
}

/// `conf/{ns}/schemas/{table}/`: a `system.tables` row and every schema version. Returns the
/// tables found.
fn tables(
    conf: &BTreeMap<String, Vec<u8>>,
    image: &Image,
    ctx: &Ctx<'_>,
    out: &mut Outcome,
) -> BTreeSet<(String, String)> {
    let mut folders: BTreeMap<(String, String), Vec<SchemaFile<'_>>> = BTreeMap::new();
    for (path, bytes) in conf {
        let parts: Vec<&str> = path.splitn(4, '/').collect();
        if parts.len() == 4 && parts[1] == "schemas" {
            folders
                .entry((parts[0].to_string(), parts[2].to_string()))
                .or_default()
                .push((parts[3], bytes));
        }
    }
    let mut found = BTreeSet::new();
    for ((ns, table), files) in folders {
        found.insert((ns.clone(), table.clone()));
        let folder = format!("{ns}/schemas/{table}");
        if let Err(reason) = table_from_folder(&ns, &table, &files, image, ctx, out) {
            out.invalid(CONF, &folder, reason);
        }
    }
    found
}

fn table_from_folder(
    ns: &str,
    table: &str,
    files: &[SchemaFile<'_>],
    image: &Image,
    ctx: &Ctx<'_>,
    out: &mut Outcome,
) -> Result<(), String> {
    let mut versions: BTreeMap<u32, Version> = BTreeMap::new();
    let mut history: BTreeMap<u64, (Option<i64>, Option<String>)> = BTreeMap::new();
    for (file, bytes) in files {
        if let Some(n) = file
            .strip_prefix("schema_v")
            .and_then(|r| r.strip_suffix(".json"))
        {
            let n: u32 = n
                .parse()
                .map_err(|_| format!("{file}: not schema_v{{N}}.json"))?;
            let schema: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("{file}: not valid JSON: {e}"))?;
            if !schema.get("fields").is_some_and(Value::is_array) {
                return Err(format!("{file}: has no \"fields\" array"));
            }
            versions.insert(
                n,
                Version {
                    schema,
                    created_at: None,
                    description: None,
                },
            );
        } else if *file == "manifest.json" {
            let manifest: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("manifest.json: not valid JSON: {e}"))?;
            for entry in manifest
                .get("version_history")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = entry.get("version").and_then(Value::as_u64) {
                    history.insert(
                        v,
                        (
                            entry.get("created_at").and_then(millis_from_json),
                            entry
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        ),
                    );
                }
            }
        }
    }
    for (n, v) in versions.iter_mut() {
        if let Some((created, description)) = history.get(&u64::from(*n)) {
            v.created_at = *created;
            v.description = description.clone();
        }
    }
    let Some((&newest, latest)) = versions.iter().next_back() else {
        return Err("the schema folder has no schema_v{N}.json".into());
    };
    if versions.keys().copied().ne(1..=newest) {
        return Err(format!(
            "schema versions {:?} are not 1..{newest} without gaps",
            versions.keys().collect::<Vec<_>>()
        ));
    }
    let options = latest
        .schema
        .get("options")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let kind = kind_for(ns, table, &options, image)?;
    let table_id = TableRecord::id_for(ns, table);
    let created_at = versions[&1].created_at.unwrap_or(ctx.now);
    let record = TableRecord {
        table_id: table_id.clone(),
        table_name: table.to_string(),
        namespace: ns.to_string(),
        table_type: TableType::from(kind),
        created_at,
        storage_location: ["storage_location", "storage_id", "location"]
            .iter()
            .find_map(|k| options.get(*k).and_then(Value::as_str))
            .unwrap_or(DEFAULT_LOCATION)
            .to_string(),
        flush_policy: match options.get("flush_policy") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        },
        schema_version: newest,
        deleted_retention_hours: options
            .get("deleted_retention_hours")
            .and_then(Value::as_u64),
        ttl_seconds: None,
        max_buffer: None,
    };
    out.put_record(image, &record);
    out.count("tables", "created from conf/ schema folders");
    for (n, v) in &versions {
        let changes = match (&v.description, n) {
            (Some(d), _) => vec![d.clone()],
            (None, 1) => vec!["created".to_string()],
            (None, _) => vec![format!("schema version {n}")],
        };
        let schema = TableSchemaRecord {
            schema_id: TableSchemaRecord::id_for(&table_id, *n),
            table_id: table_id.clone(),
            version: *n,
            arrow_schema: v.schema.to_string(),
            created_at: v.created_at.unwrap_or(created_at),
            // A list of strings: its JSON text cannot fail.
            changes: serde_json::Value::from(changes).to_string(),
        };
        out.put_record(image, &schema);
        out.count("table_schemas", "created from schema_v{N}.json");
    }
    Ok(())
}

/// A G1 table's type: its data column family's name says it; a table without one may name
/// its type in the schema's options.
fn kind_for(
    ns: &str,
    table: &str,
    options: &Map<String, Value>,
    image: &Image,
) -> Result<TableKind, String> {
    let kinds: Vec<TableKind> = image
        .data
        .values()
        .filter(|d| d.cf.namespace == ns && d.cf.table == table)
        .map(|d| d.cf.kind)
        .collect();
    match kinds.as_slice() {
        [kind] => Ok(*kind),
        [] => options
            .get("table_type")
            .cloned()
            .and_then(|v| serde_json::from_value::<TableType>(v).ok())
            .and_then(TableType::kind)
            .ok_or_else(|| {
                "no data column family, and the schema's options name no table_type".to_string()
            }),
        _ => Err(format!(
            "{} data column families claim this table ({})",
            kinds.len(),
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
