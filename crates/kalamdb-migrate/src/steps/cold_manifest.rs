//! Step 0004: record every Parquet batch file of every user and shared table in the
//! cold-tier manifest (objects in a bucket too, read with the location's credentials), bring table options within their bounds, and write the format-2
//! marker.
//!
//! Reading a file for its SHA-256 is the costly part, and `apply` computes its plan more
//! than once in one process; what a file yields is kept for the process's life, keyed by
//! path (or URL), size and modification time, so each file is read once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use kalamdb_sql::{
    ColdBatchRecord, FormatMarker, SchemaJson, StorageLocationRecord, SystemRecord as _,
    TableRecord, TableSchemaRecord,
};
use kalamdb_store::{DEFAULT_CF, TableKind};

use super::{Ctx, Outcome, dropped_by_job, readable, readable_jobs, resolved, template_of};
use crate::image::Image;
use kalamdb_core::catalog::types::ColumnType;
use kalamdb_core::catalog::{PRIMARY_KEY_OPTION, is_system_column};
use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::manifest::{self, Content, Owner};
use kalamdb_core::cold::parquet::{WrittenFile, read_schema};
use kalamdb_core::cold::paths::batch_files;
use kalamdb_core::{CoreError, Result};

/// The job id the step's records carry (the same in a fresh and a resumed run).
const RECORDED_BY: &str = "migrate:0004";

pub fn run(image: &Image, ctx: &Ctx<'_>) -> Result<Outcome> {
    let mut out = Outcome::default();
    out.create_missing_system_cfs(image);
    let locations: Vec<StorageLocationRecord> = readable(image);
    let mut tables: Vec<TableRecord> = readable(image);
    super::bounds::clamp_options(image, &mut tables, &mut out);
    let schemas: Vec<TableSchemaRecord> = readable(image);
    let mut versions: BTreeMap<&str, Vec<(u32, SchemaJson)>> = BTreeMap::new();
    for s in &schemas {
        if let Ok(json) = s.schema() {
            versions
                .entry(s.table_id.as_str())
                .or_default()
                .push((s.version, json));
        }
    }
    let mut owned: BTreeSet<PathBuf> = BTreeSet::new();
    for t in &tables {
        let Some(kind) = t.table_type.kind() else {
            continue;
        };
        if kind == TableKind::Stream {
            continue;
        }
        let Some(template) = template_of(t, kind, &locations) else {
            continue;
        };
        // A table on object storage has its objects recorded like local files; a bucket
        // this run cannot reach would leave them unread, so it is named as invalid.
        let on_bucket = template.is_object();
        let dirs = resolved(template, t, &locations).and_then(|template| {
            let dirs = template.existing_dirs(ctx.dir)?;
            Ok((template, dirs))
        });
        let (template, dirs) = match dirs {
            Ok(found) => found,
            Err(e) if on_bucket => {
                out.invalid(
                    TableRecord::CF,
                    &format!("{}{}", TableRecord::KEY_PREFIX, t.table_id),
                    format!(
                        "the batch files of {}.{} on storage location '{}' cannot be listed, so they cannot be recorded ({e}); pass --config FILE whose storage.credentials reach the bucket, or --skip-invalid to leave them unrecorded (no query reads them then)",
                        t.namespace,
                        t.table_name,
                        kalamdb_core::catalog::location_of(t)
                    ),
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let table_versions = versions
            .get(t.table_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let pk = table_versions
            .iter()
            .max_by_key(|(v, _)| *v)
            .and_then(|(_, json)| json.options.get(PRIMARY_KEY_OPTION))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        for (user, dir) in dirs {
            let user = if kind == TableKind::User {
                user
            } else {
                String::new()
            };
            for file in batch_files(&dir)? {
                if let Some(local) = file.as_local() {
                    owned.insert(local.to_path_buf());
                }
                let owner = Owner {
                    namespace: &t.namespace,
                    table: &t.table_name,
                    user_id: &user,
                };
                let (written, mut content) = match describe_once(&file, pk.as_deref()) {
                    Ok(d) => d,
                    Err(e) => {
                        out.invalid(
                            ColdBatchRecord::CF,
                            &file.to_string(),
                            format!(
                                "batch file of {}.{} cannot be read, so it cannot be recorded ({e}); restore it from a backup, or pass --skip-invalid to leave it unrecorded (no query reads it then)",
                                t.namespace, t.table_name
                            ),
                        );
                        continue;
                    }
                };
                content.schema_version = matching_version(&file, table_versions);
                let mut record = manifest::record_for(
                    owner,
                    &template,
                    ctx.dir,
                    &written,
                    content,
                    RECORDED_BY,
                )?;
                record.created_at = ctx.now;
                if out.put_record(image, &record) {
                    out.count("cold_batches", "recorded");
                }
            }
        }
    }
    let mut stray = Vec::new();
    unowned_parquet(&ctx.dir.storage(), &owned, &mut stray);
    // Files of dropped tables are step 0003's leftovers, which `finalize` removes.
    let jobs = readable_jobs(image);
    let storage = ctx.dir.storage();
    stray.retain(|f| {
        let mut parts = f.strip_prefix(&storage).into_iter().flat_map(|r| r.iter());
        match (
            parts.next().and_then(|p| p.to_str()),
            parts.next().and_then(|p| p.to_str()),
        ) {
            (Some(ns), Some(table)) => !dropped_by_job(&jobs, ns, table, 0),
            _ => true,
        }
    });
    for f in stray {
        out.report.notes.push(format!(
            "Parquet file {} belongs to no table: it is left in place and not recorded",
            f.display()
        ));
    }
    let created_at = image
        .kalamdb_keys
        .get(kalamdb_sql::FORMAT_MARKER_KEY)
        .and_then(|b| serde_json::from_slice::<FormatMarker>(b).ok())
        .map_or(ctx.now, |m| m.created_at);
    let marker = CoreError::encode_json_bytes(
        "the format marker",
        &FormatMarker::current(created_at, kalamdb_store::now_ms()),
    )?;
    out.put(DEFAULT_CF, kalamdb_sql::FORMAT_MARKER_KEY, marker);
    Ok(out)
}

/// The newest schema version whose columns include every data column of the file.
fn matching_version(file: &ColdPath, versions: &[(u32, SchemaJson)]) -> Option<u32> {
    let schema = read_schema(file).ok()?;
    versions
        .iter()
        .filter(|(_, json)| {
            schema
                .fields()
                .iter()
                .filter(|f| !is_system_column(f.name()))
                .all(|f| {
                    json.fields.iter().any(|sf| {
                        sf.name == *f.name()
                            && ColumnType::from_arrow_spelling(&sf.data_type)
                                .is_some_and(|ty| ty.arrow() == *f.data_type())
                    })
                })
        })
        .map(|(v, _)| *v)
        .max()
}

type Described = (WrittenFile, Content);
/// A version of a file: its path (or URL), size and modification time (an object's is not
/// listed: its key and size stand for it within one run).
type FileVersion = (String, u64, Option<SystemTime>);

/// [`manifest::describe`], once per file version in this process.
fn describe_once(file: &ColdPath, pk: Option<&str>) -> Result<Described> {
    static SEEN: OnceLock<Mutex<HashMap<FileVersion, Described>>> = OnceLock::new();
    let key = match file.as_local() {
        Some(local) => {
            let meta = std::fs::metadata(local).map_err(|e| CoreError::io(local, e))?;
            (
                file.to_string(),
                meta.len(),
                Some(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
            )
        }
        None => (file.to_string(), file.size()?.unwrap_or(0), None),
    };
    let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(d) = seen.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(d);
    }
    let described = manifest::describe(file, pk)?;
    if let Ok(mut m) = seen.lock() {
        m.insert(key, described.clone());
    }
    Ok(described)
}

/// Every `*.parquet` file under `dir` that is not in `owned`.
fn unowned_parquet(dir: &Path, owned: &BTreeSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => unowned_parquet(&p, owned, out),
            Ok(_) if p.extension().is_some_and(|x| x == "parquet") && !owned.contains(&p) => {
                out.push(p)
            }
            _ => {}
        }
    }
}
