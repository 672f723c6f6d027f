//! Cold-tier checks. In a current-format directory the cold-tier manifest is the truth: every
//! recorded batch must exist with its recorded size, footer row count and (unless `fast`)
//! SHA-256; a batch file in a table's directory that no entry records is reported (it was
//! never visible: a flush that died before recording it). Every file then must open, carry
//! the system columns and match a schema version; stream tables have none; and no Parquet
//! file under the data directory's `storage/` or any storage location's base belongs to no
//! table. A legacy (unmarked) directory has no manifest: its files are found by listing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kalamdb_sql::{ColdBatchRecord, FormatState, SystemRecord as _};
use kalamdb_store::TableKind;

use super::catalog::{CatalogView, KnownTable};
use super::{Code, Scan};
use kalamdb_core::Result;
use kalamdb_core::catalog::is_system_column;
use kalamdb_core::catalog::types::ColumnType;
use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::parquet::{read_schema, row_count};
use kalamdb_core::cold::paths::{StorageTemplate, batch_files};

pub(crate) fn check(scan: &mut Scan<'_>, catalog: &CatalogView, fast: bool) -> Result<()> {
    let dd = scan.engine.data_dir().clone();
    let sql = scan.engine.sql().clone();
    let with_manifest = matches!(sql.format_state()?, FormatState::Current(_));
    let mut recorded: BTreeMap<(String, String), Vec<ColdBatchRecord>> = BTreeMap::new();
    if with_manifest {
        let (all, bad) = sql.cold_batches().scan_lenient()?;
        for b in bad {
            scan.report(
                Code::RecordInvalid,
                format!("{}:{}", b.cf, b.key),
                format!("the record cannot be read: {}", b.reason),
            );
        }
        for b in all {
            recorded
                .entry((b.namespace.clone(), b.table_name.clone()))
                .or_default()
                .push(b);
        }
    }
    let mut owned: BTreeSet<ColdPath> = BTreeSet::new();
    // Where files may belong to a table whose files cannot be listed: not orphans.
    let mut unknown: Vec<PathBuf> = Vec::new();
    for t in &catalog.tables {
        // A table whose location is missing was reported already: where its files are is
        // unknown, so the default place for them is left alone rather than called orphans.
        let template = match scan.engine.catalog().storage_template(&t.record, t.kind) {
            Ok(template) if t.location_ok => template,
            _ => {
                unknown.push(
                    dd.storage()
                        .join(&t.record.namespace)
                        .join(&t.record.table_name),
                );
                continue;
            }
        };
        let mut listed = Vec::new();
        for (_, dir) in template.existing_dirs(&dd)? {
            listed.extend(batch_files(&dir)?);
        }
        owned.extend(listed.iter().cloned());
        let key = (t.record.namespace.clone(), t.record.table_name.clone());
        let entries = recorded.remove(&key).unwrap_or_default();
        let (files, bytes, rows) = if with_manifest && t.kind != TableKind::Stream {
            check_recorded(scan, t, &template, &entries, &listed, fast, &mut owned)
        } else {
            let mut rows = 0u64;
            for file in &listed {
                check_file(scan, t, file);
                rows = rows.saturating_add(row_count(file).unwrap_or(0));
            }
            let bytes = listed
                .iter()
                .map(|f| f.size().ok().flatten().unwrap_or(0))
                .sum();
            (listed.len() as u64, bytes, rows)
        };
        if let Some(c) = scan.summary.table_counts.get_mut(&t.qualified()) {
            c.parquet_files = files;
            c.parquet_bytes = bytes;
            c.parquet_rows = rows;
        }
        scan.summary.parquet_files += files;
    }
    // Files of tables being dropped are the deletion job's to remove. Any other Parquet file
    // that no table's template reaches is invisible to queries: an orphan.
    for name in &catalog.being_dropped {
        if let Some((ns, table)) = name.split_once('.') {
            unknown.push(dd.storage().join(ns).join(table));
        }
    }
    let mut found = BTreeSet::new();
    for root in orphan_roots(scan, &dd)? {
        parquet_under(&root, &mut found);
    }
    for file in found {
        if owned.contains(&ColdPath::Local(file.clone()))
            || unknown.iter().any(|r| file.starts_with(r))
        {
            continue;
        }
        scan.report(
            Code::ParquetOrphan,
            file.display().to_string(),
            format!(
                "Parquet file {} belongs to no table in system.tables",
                file.display()
            ),
        );
    }
    Ok(())
}

/// Checks a table's recorded batches against the files; returns the recorded files, their
/// recorded bytes, and the rows their footers hold.
fn check_recorded(
    scan: &mut Scan<'_>,
    t: &KnownTable,
    template: &StorageTemplate,
    entries: &[ColdBatchRecord],
    listed: &[ColdPath],
    fast: bool,
    owned: &mut BTreeSet<ColdPath>,
) -> (u64, u64, u64) {
    let dd = scan.engine.data_dir().clone();
    let name = t.qualified();
    let mut recorded_paths = BTreeSet::new();
    let (mut bytes, mut rows) = (0u64, 0u64);
    for b in entries {
        bytes = bytes.saturating_add(b.size);
        let path = match template.locate(&dd, &b.path) {
            Ok(p) => p,
            Err(e) => {
                scan.report(Code::BatchMissing, b.id(), e.to_string());
                continue;
            }
        };
        recorded_paths.insert(path.clone());
        owned.insert(path.clone());
        // A file that is not what the entry records is reported as that alone.
        let checked = check_batch(scan, &name, b, &path, fast);
        rows = rows.saturating_add(checked.footer_rows.unwrap_or(0));
        if checked.matched {
            check_file(scan, t, &path);
        }
    }
    for file in listed.iter().filter(|f| !recorded_paths.contains(*f)) {
        scan.report(
            Code::BatchUnrecorded,
            file.to_string(),
            format!("batch file {file} of {name} is in no cold-tier manifest entry, so no query reads it"),
        );
    }
    (entries.len() as u64, bytes, rows)
}

/// What [`check_batch`] found of one file.
struct CheckedBatch {
    /// The file is what its entry records.
    matched: bool,
    /// The rows its footer records, when it was read.
    footer_rows: Option<u64>,
}

/// A recorded batch against its file: present, same size, same footer row count, same bytes.
fn check_batch(
    scan: &mut Scan<'_>,
    table: &str,
    b: &ColdBatchRecord,
    path: &ColdPath,
    fast: bool,
) -> CheckedBatch {
    let footer_rows = || row_count(path).ok();
    let unmatched = |footer_rows| CheckedBatch {
        matched: false,
        footer_rows,
    };
    let object = path.to_string();
    let size = match path.size() {
        Ok(Some(size)) => size,
        Err(e)
            if !matches!(e.kind(), kalamdb_core::ErrorKind::Integrity)
                && path.as_local().is_none() =>
        {
            // Object storage that cannot be reached is not a missing batch.
            scan.report(Code::LocationUnreachable, object, e.to_string());
            return unmatched(None);
        }
        _ => {
            scan.report(
                Code::BatchMissing,
                object,
                format!(
                    "batch file {path} of {table} is recorded ({} rows, {} bytes) but missing: its rows are lost to every query",
                    b.row_count, b.size
                ),
            );
            return unmatched(None);
        }
    };
    if size != b.size {
        scan.report(
            Code::BatchSizeMismatch,
            object,
            format!(
                "batch file {path} of {table} has {size} bytes; the manifest records {}",
                b.size
            ),
        );
        return unmatched(footer_rows());
    }
    if !fast {
        match path.sha256_chunks(|_| Ok(())) {
            Ok((sha, _)) if sha != b.sha256 => {
                scan.report(
                    Code::BatchChecksumMismatch,
                    object,
                    format!(
                        "batch file {path} of {table} has SHA-256 {sha}; the manifest records {}",
                        b.sha256
                    ),
                );
                return unmatched(footer_rows());
            }
            Ok(_) => {}
            Err(e) => {
                scan.report(Code::BatchMissing, object, e.to_string());
                return unmatched(None);
            }
        }
    }
    match row_count(path) {
        Ok(rows) if rows != b.row_count => {
            scan.report(
                Code::BatchRowsMismatch,
                object,
                format!(
                    "batch file {path} of {table} holds {rows} rows by its footer; the manifest records {}",
                    b.row_count
                ),
            );
            unmatched(Some(rows))
        }
        Ok(rows) => CheckedBatch {
            matched: true,
            footer_rows: Some(rows),
        },
        // An unreadable footer is reported by the file checks.
        Err(_) => CheckedBatch {
            matched: true,
            footer_rows: None,
        },
    }
}

/// Where to look for orphans: `D/storage` and the base of every storage location, except a
/// base that contains the data directory itself (its other folders are not the cold tier's).
fn orphan_roots(
    scan: &Scan<'_>,
    dd: &kalamdb_core::data_dir::DataDir,
) -> Result<BTreeSet<PathBuf>> {
    let mut roots = BTreeSet::from([dd.storage()]);
    let (locations, _) = scan.engine.sql().storage_locations().scan_lenient()?;
    for l in locations {
        // A bucket's objects are checked table by table (unrecorded batches), not here.
        let Some(base) =
            StorageTemplate::for_location(&l.path, TableKind::Shared, "n", "t").base_dir(dd)
        else {
            continue;
        };
        if !dd.root().starts_with(&base) {
            roots.insert(base);
        }
    }
    Ok(roots)
}

fn check_file(scan: &mut Scan<'_>, t: &KnownTable, file: &ColdPath) {
    let object = file.to_string();
    let name = t.qualified();
    if t.kind == TableKind::Stream {
        scan.report(
            Code::StreamParquet,
            object,
            format!("stream table {name} has a Parquet file; stream tables are never flushed"),
        );
        return;
    }
    let schema = match read_schema(file) {
        Ok(s) => s,
        Err(e) => {
            scan.report(Code::ParquetUnreadable, object, e.to_string());
            return;
        }
    };
    let has = |c: &str| schema.field_with_name(c).is_ok();
    let missing: Vec<&str> = [kalamdb_store::UPDATED, kalamdb_store::DELETED]
        .into_iter()
        .filter(|c| !has(c))
        .collect();
    if !missing.is_empty() {
        scan.report(
            Code::ParquetSystemColumns,
            object.clone(),
            format!("Parquet file of {name} lacks {}", missing.join(" and ")),
        );
    }
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !is_system_column(f.name()))
        .collect();
    let fits_a_version = t.versions.iter().any(|v| {
        columns.iter().all(|f| {
            v.fields.iter().any(|sf| {
                sf.name == *f.name()
                    && ColumnType::from_arrow_spelling(&sf.data_type)
                        .is_some_and(|ty| ty.arrow() == *f.data_type())
            })
        })
    });
    if !fits_a_version && !t.versions.is_empty() {
        let shown: Vec<String> = columns
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        scan.report(
            Code::ParquetSchemaMismatch,
            object,
            format!(
                "Parquet file of {name} has columns ({}) that match none of its {} schema version(s)",
                shown.join(", "),
                t.versions.len()
            ),
        );
    }
}

/// Every `*.parquet` file under `dir`.
fn parquet_under(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => parquet_under(&p, out),
            Ok(_) if p.extension().is_some_and(|x| x == "parquet") => {
                out.insert(p);
            }
            _ => {}
        }
    }
}
