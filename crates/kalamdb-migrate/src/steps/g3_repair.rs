//! Step 0003: normalise every system record, repair the original engine's known defects,
//! recount, and write the format marker.

use std::collections::{BTreeMap, BTreeSet};

use kalamdb_sql::{
    FormatMarker, JobRecord, JobStatus, LiveQueryRecord, NamespaceRecord, StorageLocationRecord,
    SystemRecord, TableRecord, TableSchemaRecord, UserRecord,
};
use kalamdb_store::{DEFAULT_CF, TableCf, now_ms};

use super::{Ctx, Outcome, dropped_by_job, readable_jobs, tables};
use crate::detect::Generation;
use crate::image::Image;
use kalamdb_core::Result;
use kalamdb_core::catalog::{DEFAULT_LOCATION, DEFAULT_LOCATION_PATH};
use kalamdb_core::cold::paths::batch_files;

pub fn run(image: &Image, ctx: &Ctx<'_>) -> Result<Outcome> {
    let mut out = Outcome::default();
    out.create_missing_system_cfs(image);
    let jobs_before = readable_jobs(image);
    if ctx.origin == Generation::G3 {
        tables::infer_missing(image, ctx, &jobs_before, &mut out);
    }
    // Inferred tables are part of what this step normalises and counts.
    let inferred;
    let image = if out.ops.is_empty() {
        image
    } else {
        let mut with = image.clone();
        with.apply(&out.ops);
        inferred = with;
        &inferred
    };

    let _users: Vec<UserRecord> = normalise(image, &mut out, |_| ());
    // Live queries are connection state: offline, every row is stale, readable or not.
    let n = image.records(LiveQueryRecord::CF).len();
    if n > 0 {
        for key in image.records(LiveQueryRecord::CF).keys() {
            out.delete(LiveQueryRecord::CF, key);
        }
        *out.report
            .changes
            .entry("live_queries".into())
            .or_default()
            .entry("purged (stale: no daemon runs)".into())
            .or_default() += n as u64;
        out.report.repaired.push(format!(
            "{n} stale live quer{} purged",
            if n == 1 { "y" } else { "ies" }
        ));
    }
    jobs(image, ctx, &mut out);
    let schemas: Vec<TableSchemaRecord> = normalise(image, &mut out, |_| ());
    let mut tables: Vec<TableRecord> = normalise(image, &mut out, |_| ());
    let mut locations: Vec<StorageLocationRecord> =
        normalise(image, &mut out, |l: &mut StorageLocationRecord| {
            if l.created_at == 0 {
                l.created_at = ctx.now;
            }
            if l.updated_at == 0 {
                l.updated_at = l.created_at;
            }
        });
    let mut namespaces: Vec<NamespaceRecord> =
        normalise(image, &mut out, |n: &mut NamespaceRecord| {
            if n.namespace_id.is_empty() {
                n.namespace_id = n.name.clone();
            }
            if n.options.trim().is_empty() {
                n.options = "{}".into();
            }
        });

    if !locations
        .iter()
        .any(|l| l.location_name == DEFAULT_LOCATION)
    {
        let local = kalamdb_core::catalog::default_location(ctx.now);
        out.report.repaired.push(format!(
            "storage location {DEFAULT_LOCATION} (path {DEFAULT_LOCATION_PATH}) created: tables without a location use it"
        ));
        locations.push(local);
    }

    let mut by_table: BTreeMap<&str, Vec<&TableSchemaRecord>> = BTreeMap::new();
    for s in &schemas {
        by_table.entry(s.table_id.as_str()).or_default().push(s);
    }
    dropped_tables(
        image,
        ctx,
        &jobs_before,
        &locations,
        &by_table,
        &mut tables,
        &mut out,
    )?;
    orphan_column_families(image, ctx, &jobs_before, &tables, &mut out);
    schema_versions(&by_table, &mut tables, &mut out);

    // Namespaces every table needs, then the counts.
    let known: BTreeSet<String> = namespaces.iter().map(|n| n.namespace_id.clone()).collect();
    let mut missing: BTreeMap<String, i64> = BTreeMap::new();
    for t in &tables {
        if !known.contains(&t.namespace) {
            let first = missing.entry(t.namespace.clone()).or_insert(t.created_at);
            *first = (*first).min(t.created_at);
        }
    }
    for (ns, created_at) in missing {
        out.report
            .repaired
            .push(format!("namespace {ns} had tables but no row; created"));
        namespaces.push(NamespaceRecord {
            namespace_id: ns.clone(),
            name: ns,
            created_at,
            options: "{}".into(),
            table_count: 0,
        });
    }
    let mut per_namespace: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_location: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &tables {
        *per_namespace.entry(t.namespace.as_str()).or_default() += 1;
        *per_location
            .entry(kalamdb_core::catalog::location_of(t))
            .or_default() += 1;
    }
    for ns in &mut namespaces {
        let real = per_namespace.get(ns.namespace_id.as_str());
        let what = format!("namespace {}: table_count", ns.namespace_id);
        recount(&mut ns.table_count, real, what, &mut out);
        out.put_record(image, ns);
    }
    for loc in &mut locations {
        let real = per_location.get(loc.location_name.as_str());
        let what = format!("storage location {}: usage_count", loc.location_name);
        recount(&mut loc.usage_count, real, what, &mut out);
        out.put_record(image, loc);
    }
    for t in &tables {
        out.put_record(image, t);
    }

    if !image
        .kalamdb_keys
        .contains_key(kalamdb_sql::FORMAT_MARKER_KEY)
    {
        let now = now_ms();
        let marker = kalamdb_core::CoreError::encode_json_bytes(
            "the format marker",
            &FormatMarker::version(1, now, now),
        )?;
        out.put(DEFAULT_CF, kalamdb_sql::FORMAT_MARKER_KEY, marker);
    }
    Ok(out)
}

/// Sets a stored count to the real one, reporting the repair when they differ.
fn recount(stored: &mut u64, real: Option<&u64>, what: String, out: &mut Outcome) {
    let real = real.copied().unwrap_or(0);
    if *stored != real {
        out.report
            .repaired
            .push(format!("{what} {stored} recounted as {real}"));
        *stored = real;
    }
}

/// Reads every record of `R` with the tolerant reader, and rewrites those whose bytes are
/// not already the consistent form. Unreadable records and keys without `R`'s prefix are
/// reported.
fn normalise<R: SystemRecord>(image: &Image, out: &mut Outcome, fix: impl Fn(&mut R)) -> Vec<R> {
    let mut records = Vec::new();
    for (key, bytes) in image.records(R::CF) {
        if !key.starts_with(R::KEY_PREFIX) {
            out.invalid(
                R::CF,
                key,
                format!("the key does not start with {}", R::KEY_PREFIX),
            );
            continue;
        }
        let mut record: R = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                out.invalid(
                    R::CF,
                    key,
                    format!("cannot be read as a {} record: {e}", R::TABLE),
                );
                continue;
            }
        };
        fix(&mut record);
        let expected = format!("{}{}", R::KEY_PREFIX, record.id());
        if expected != *key {
            out.invalid(
                R::CF,
                key,
                format!("the record's id says its key is {expected}"),
            );
            continue;
        }
        if out.put_record(image, &record) {
            out.count(R::TABLE, "normalised");
        }
        records.push(record);
    }
    records
}

/// Jobs the original engine left `running` (or queued) can never finish: they fail.
fn jobs(image: &Image, ctx: &Ctx<'_>, out: &mut Outcome) {
    for (key, bytes) in image.records(JobRecord::CF) {
        let Some(id) = key.strip_prefix(JobRecord::KEY_PREFIX) else {
            out.invalid(JobRecord::CF, key, "the key does not start with job:");
            continue;
        };
        if Some(id) == ctx.job_id {
            continue;
        }
        let mut job: JobRecord = match serde_json::from_slice(bytes) {
            Ok(j) => j,
            Err(e) => {
                out.invalid(
                    JobRecord::CF,
                    key,
                    format!("cannot be read as a jobs record: {e}"),
                );
                continue;
            }
        };
        if matches!(
            job.status,
            JobStatus::Running | JobStatus::Queued | JobStatus::Cancelling
        ) {
            let was = job.status;
            job.status = JobStatus::Failed;
            job.end_time = Some(job.end_time.unwrap_or(ctx.now.max(job.start_time)));
            job.error_message = Some(
                "abandoned: left unfinished by the original engine; marked failed by kalamctl migrate"
                    .into(),
            );
            out.report
                .repaired
                .push(format!("job {id} was left {was}; marked failed"));
            out.count("jobs", "marked failed (left running)");
        }
        if out.put_record(image, &job) {
            out.count("jobs", "normalised");
        }
    }
}

/// `system.tables` rows that outlived their tables: the original drop deleted `tbl:{id}`
/// instead of `table:{id}`, and emptied the column family without dropping it.
fn dropped_tables(
    image: &Image,
    ctx: &Ctx<'_>,
    jobs: &[JobRecord],
    locations: &[StorageLocationRecord],
    schemas: &BTreeMap<&str, Vec<&TableSchemaRecord>>,
    tables: &mut Vec<TableRecord>,
    out: &mut Outcome,
) -> Result<()> {
    let mut kept = Vec::new();
    for t in tables.drain(..) {
        let Some(kind) = t.table_type.kind() else {
            out.invalid(
                TableRecord::CF,
                &format!("table:{}", t.table_id),
                "table_type system is reserved",
            );
            continue;
        };
        let cf = TableCf::new(kind, &t.namespace, &t.table_name).name();
        let reason = match image.data.get(&cf) {
            None => Some(format!(
                "its column family {cf} does not exist (the original drop deleted the key tbl:{} instead)",
                t.table_id
            )),
            Some(d)
                if d.empty && dropped_by_job(jobs, &t.namespace, &t.table_name, t.created_at) =>
            {
                out.report.leftovers.column_families.push(cf.clone());
                Some(format!(
                    "a completed drop job names it and its column family {cf} is empty; `finalize` drops the column family"
                ))
            }
            Some(_) => None,
        };
        let Some(reason) = reason else {
            kept.push(t);
            continue;
        };
        out.delete(
            TableRecord::CF,
            &format!("{}{}", TableRecord::KEY_PREFIX, t.table_id),
        );
        for s in schemas.get(t.table_id.as_str()).into_iter().flatten() {
            out.delete(
                TableSchemaRecord::CF,
                &format!("{}{}", TableSchemaRecord::KEY_PREFIX, s.schema_id),
            );
        }
        out.count("tables", "deleted (dropped table)");
        out.report.repaired.push(format!(
            "system.tables row {}.{} of a dropped table removed: {reason}",
            t.namespace, t.table_name
        ));
        let files = leftover_files(ctx, &t, kind, locations)?;
        if !files.is_empty() {
            out.report.repaired.push(format!(
                "{} Parquet file(s) of dropped table {}.{} remain (the drop looked under the unresolved ${{user_id}} path); `finalize` deletes them",
                files.len(),
                t.namespace,
                t.table_name
            ));
            out.report.leftovers.files.extend(files);
        }
    }
    *tables = kept;
    Ok(())
}

/// The Parquet files a dropped table left behind, for every user.
fn leftover_files(
    ctx: &Ctx<'_>,
    t: &TableRecord,
    kind: kalamdb_store::TableKind,
    locations: &[StorageLocationRecord],
) -> Result<Vec<String>> {
    let Some(template) = super::template_of(t, kind, locations) else {
        return Ok(Vec::new());
    };
    if template.is_object() {
        // A bucket's objects are not deleted by a migration.
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for (_, dir) in template.existing_dirs(ctx.dir)? {
        for f in batch_files(&dir)? {
            files.push(f.to_string());
        }
    }
    Ok(files)
}

/// Empty data column families no table owns, of tables a completed drop job names.
fn orphan_column_families(
    image: &Image,
    ctx: &Ctx<'_>,
    jobs: &[JobRecord],
    tables: &[TableRecord],
    out: &mut Outcome,
) {
    if ctx.origin == Generation::G1 {
        // Step 0001 decided these from the schema folders.
        return;
    }
    let owned: BTreeSet<(&str, &str)> = tables
        .iter()
        .map(|t| (t.namespace.as_str(), t.table_name.as_str()))
        .collect();
    for (name, d) in &image.data {
        if owned.contains(&(d.cf.namespace.as_str(), d.cf.table.as_str()))
            || out.report.leftovers.column_families.contains(name)
        {
            continue;
        }
        if d.empty && dropped_by_job(jobs, &d.cf.namespace, &d.cf.table, 0) {
            out.report.leftovers.column_families.push(name.clone());
            out.report.repaired.push(format!(
                "column family {name} of a dropped table is empty but was never dropped; `finalize` drops it"
            ));
        }
    }
}

/// A table's `schema_version` is its newest schema.
fn schema_versions(
    schemas: &BTreeMap<&str, Vec<&TableSchemaRecord>>,
    tables: &mut [TableRecord],
    out: &mut Outcome,
) {
    for t in tables {
        let newest = schemas
            .get(t.table_id.as_str())
            .into_iter()
            .flatten()
            .map(|s| s.version)
            .max();
        match newest {
            Some(v) if v != t.schema_version => {
                out.report.repaired.push(format!(
                    "{}.{}: schema_version {} set to its newest schema, {v}",
                    t.namespace, t.table_name, t.schema_version
                ));
                t.schema_version = v;
            }
            Some(_) => {}
            None => out.invalid(
                TableRecord::CF,
                &format!("{}{}", TableRecord::KEY_PREFIX, t.table_id),
                "the table has no schema in system_table_schemas and none could be inferred",
            ),
        }
    }
}
