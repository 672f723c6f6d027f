//! Batch files a flush wrote but did not record: it died between making the file durable and
//! the one write that records it and removes its rows from the hot tier. No read ever sees
//! such a file. It may be removed only when every row in it is still in the hot tier; a file
//! holding any row found nowhere else (one copied in by hand, say) is left alone.

use std::collections::BTreeSet;

use kalamdb_store::TableKind;
use serde_json::Value;

use crate::cold::parquet::read_rows;
use crate::cold::paths::batch_files;
use crate::cold::uploads::Uploads;
use crate::cold::{ColdPath, ROW_ID};
use crate::{Engine, Result};

/// Whether every row of `file` is in the hot tier of `ns.table` (for `user`, in a user
/// table). A file whose rows carry no `_row_id`, or that cannot be read, is not.
pub fn rows_all_hot(
    engine: &Engine,
    kind: TableKind,
    (ns, table): (&str, &str),
    user: &str,
    file: &ColdPath,
) -> Result<bool> {
    let Ok(rows) = read_rows(file, Some(&[ROW_ID])) else {
        return Ok(false);
    };
    for row in rows {
        let Some(Value::String(id)) = row.get(ROW_ID) else {
            return Ok(false);
        };
        let hot = match kind {
            TableKind::User => engine.user_store().get(ns, table, user, id)?,
            _ => engine.shared_store().get(ns, table, id)?,
        };
        if hot.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes the unrecorded batch files in `dir` (one user's directory of `ns.table`) whose
/// rows are all still hot, and (on object storage) aborts the uploads into it that a killed
/// flush left open; returns the files. The caller holds the table's flush lock.
pub fn reclaim(
    engine: &Engine,
    kind: TableKind,
    (ns, table): (&str, &str),
    user: &str,
    dir: &ColdPath,
) -> Result<Vec<ColdPath>> {
    abort_uploads(engine, &format!("{ns}.{table}"))?;
    let files = batch_files(dir)?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let recorded: BTreeSet<String> = engine
        .sql()
        .batches_of(ns, table, user)?
        .into_iter()
        .map(|b| b.file_name)
        .collect();
    let mut removed = Vec::new();
    for file in files {
        let name = file.file_name().unwrap_or_default();
        if recorded.contains(name) || !rows_all_hot(engine, kind, (ns, table), user, &file)? {
            continue;
        }
        file.remove_durable()?;
        removed.push(file);
    }
    Ok(removed)
}

/// Aborts the multipart uploads of `table`'s files (`namespace.table`) that a killed process
/// left open, as `D/uploads/` records them. The caller holds the table's flush lock, so none
/// of them is still being written.
pub fn abort_uploads(engine: &Engine, table: &str) -> Result<()> {
    for object in Uploads::new(engine.data_dir().uploads()).abort_of(table)? {
        tracing::info!(object = %object, "aborted the upload a killed process left open");
    }
    Ok(())
}
