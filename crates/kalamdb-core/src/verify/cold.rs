//! Cold-tier checks: every table's Parquet files (path template resolved for every user)
//! open, carry the system columns and match a schema version; stream tables have none; no
//! Parquet file under the storage directory belongs to no table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kalamdb_store::TableKind;

use super::catalog::{CatalogView, KnownTable};
use super::{Code, Scan};
use crate::Result;
use crate::catalog::is_system_column;
use crate::catalog::types::ColumnType;
use crate::cold::parquet::read_schema;
use crate::cold::paths::batch_files;

pub(crate) fn check(scan: &mut Scan<'_>, catalog: &CatalogView) -> Result<()> {
    let dd = scan.engine.data_dir().clone();
    let mut owned: BTreeSet<PathBuf> = BTreeSet::new();
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
        let mut files = Vec::new();
        for (_, dir) in template.existing_dirs(&dd)? {
            files.extend(batch_files(&dir)?);
        }
        for file in &files {
            owned.insert(file.clone());
            check_file(scan, t, file);
        }
        if let Some(c) = scan.summary.table_counts.get_mut(&t.qualified()) {
            c.parquet_files = files.len() as u64;
            c.parquet_bytes = files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
        }
        scan.summary.parquet_files += files.len() as u64;
    }
    // Files of tables being dropped are the deletion job's to remove. Any other Parquet file
    // that no table's template reaches is invisible to queries: an orphan.
    for name in &catalog.being_dropped {
        if let Some((ns, table)) = name.split_once('.') {
            unknown.push(dd.storage().join(ns).join(table));
        }
    }
    let mut found = Vec::new();
    parquet_under(&dd.storage(), &mut found);
    for file in found {
        if owned.contains(&file) || unknown.iter().any(|r| file.starts_with(r)) {
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

fn check_file(scan: &mut Scan<'_>, t: &KnownTable, file: &Path) {
    let object = file.display().to_string();
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
fn parquet_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => parquet_under(&p, out),
            Ok(_) if p.extension().is_some_and(|x| x == "parquet") => out.push(p),
            _ => {}
        }
    }
}
