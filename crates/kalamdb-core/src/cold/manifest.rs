//! The cold-tier manifest: which batch files a table has, and what each must be.
//!
//! Every batch file is recorded in `system_cold_batches` ([`ColdBatchRecord`]) with its size,
//! row count, key range and SHA-256. Reads plan from the records, never by listing
//! directories, so a file that goes missing is an error rather than silently fewer rows, and
//! a file dropped in by hand is never read. See `specs/format.md`.

use kalamdb_sql::ColdBatchRecord;
use serde_json::Value;

use super::parquet::{self, WrittenFile};
use super::path::ColdPath;
use super::paths::StorageTemplate;
use super::{ROW_ID, key_of_value};
use crate::data_dir::DataDir;
use crate::{CoreError, Result};

/// Which table and user a batch file belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub namespace: &'a str,
    pub table: &'a str,
    /// `""` for shared tables.
    pub user_id: &'a str,
}

/// What is known of a batch file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub row_count: u64,
    pub min_key: Option<String>,
    pub max_key: Option<String>,
    pub schema_version: Option<u32>,
}

impl Content {
    /// The content of rows with these keys.
    pub fn of_keys<'k>(keys: impl IntoIterator<Item = &'k str>, schema_version: u32) -> Content {
        let mut row_count = 0u64;
        let (mut min, mut max): (Option<&str>, Option<&str>) = (None, None);
        for k in keys {
            row_count = row_count.saturating_add(1);
            min = Some(min.map_or(k, |m| m.min(k)));
            max = Some(max.map_or(k, |m| m.max(k)));
        }
        Content {
            row_count,
            min_key: min.map(str::to_string),
            max_key: max.map(str::to_string),
            schema_version: Some(schema_version),
        }
    }
}

/// The manifest record of a file just written.
pub fn record_for(
    owner: Owner<'_>,
    template: &StorageTemplate,
    data_dir: &DataDir,
    file: &WrittenFile,
    content: Content,
    job_id: &str,
) -> Result<ColdBatchRecord> {
    let path = template.relative(data_dir, &file.path).ok_or_else(|| {
        CoreError::Query(format!(
            "batch file {} is not under its storage location {}",
            file.path,
            template
                .base(data_dir)
                .map(|b| b.to_string())
                .unwrap_or_default()
        ))
    })?;
    let file_name = file.path.file_name().unwrap_or_default().to_string();
    Ok(ColdBatchRecord {
        namespace: owner.namespace.to_string(),
        table_name: owner.table.to_string(),
        user_id: owner.user_id.to_string(),
        file_name,
        path,
        size: file.size,
        row_count: content.row_count,
        min_key: content.min_key,
        max_key: content.max_key,
        schema_version: content.schema_version,
        job_id: job_id.to_string(),
        sha256: file.sha256.clone(),
        created_at: kalamdb_store::now_ms(),
    })
}

/// The files the manifest records for a table, every user, in key order.
pub fn recorded_files(
    sql: &kalamdb_sql::KalamSql,
    template: &StorageTemplate,
    data_dir: &DataDir,
    namespace: &str,
    table: &str,
) -> Result<Vec<ColdPath>> {
    sql.table_batches(namespace, table)?
        .iter()
        .map(|b| template.locate(data_dir, &b.path))
        .collect()
}

/// Reads an existing file (one a migration finds): its checksum, size, footer row count and
/// key range, keyed as reads key it (`_row_id`, else the primary key).
pub fn describe(path: &ColdPath, primary_key: Option<&str>) -> Result<(WrittenFile, Content)> {
    let (sha256, size) = path.sha256_chunks(|_| Ok(()))?;
    let row_count = parquet::row_count(path)?;
    let mut columns = vec![ROW_ID];
    columns.extend(primary_key);
    let mut keys = Vec::new();
    let mut keyless = false;
    for row in parquet::read_rows(path, Some(&columns))? {
        let key = match row.get(ROW_ID) {
            Some(Value::String(id)) => Some(id.clone()),
            _ => primary_key
                .and_then(|pk| row.get(pk))
                .and_then(key_of_value),
        };
        match key {
            Some(k) => keys.push(k),
            None => keyless = true,
        }
    }
    let mut content = Content::of_keys(keys.iter().map(String::as_str), 0);
    content.row_count = row_count;
    content.schema_version = None;
    if keyless {
        content.min_key = None;
        content.max_key = None;
    }
    let file = WrittenFile {
        path: path.clone(),
        size,
        sha256,
    };
    Ok((file, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_compare_as_text() {
        let c = Content::of_keys(["5", "10", "7"], 3);
        assert_eq!(c.row_count, 3);
        assert_eq!(c.min_key.as_deref(), Some("10"));
        assert_eq!(c.max_key.as_deref(), Some("7"));
        assert_eq!(c.schema_version, Some(3));
        let none = Content::of_keys(std::iter::empty(), 1);
        assert_eq!((none.row_count, none.min_key), (0, None));
    }
}
