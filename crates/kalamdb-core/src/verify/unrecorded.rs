//! Whether a batch file no manifest entry records may be removed: only when every row in it
//! is still in the hot tier, as after a flush that died between writing the file and
//! recording it. A file holding any row found nowhere else is left for the operator.

use std::path::Path;

use kalamdb_store::TableKind;
use serde_json::Value;

use crate::catalog::types::ROW_ID;
use crate::cold::parquet::read_rows;
use crate::{Engine, Result};

/// Whether every row of `file` (found in one of a table's batch directories) is in the hot
/// tier of that table, for the user whose directory it is in.
pub(crate) fn rows_all_hot(engine: &Engine, file: &Path) -> Result<bool> {
    let Some(dir) = file.parent() else {
        return Ok(false);
    };
    for record in engine.catalog().tables(None)? {
        let Some(kind) = crate::catalog::kind_of(record.table_type) else {
            continue;
        };
        if kind == TableKind::Stream {
            continue;
        }
        let Ok(template) = engine.catalog().storage_template(&record, kind) else {
            continue;
        };
        for (user, d) in template.existing_dirs(engine.data_dir())? {
            if d != dir {
                continue;
            }
            let Ok(rows) = read_rows(file, Some(&[ROW_ID])) else {
                return Ok(false);
            };
            let (ns, t) = (record.namespace.as_str(), record.table_name.as_str());
            for row in rows {
                let Some(Value::String(id)) = row.get(ROW_ID) else {
                    return Ok(false);
                };
                let hot = match kind {
                    TableKind::User => engine.user_store().get(ns, t, &user, id)?,
                    _ => engine.shared_store().get(ns, t, id)?,
                };
                if hot.is_none() {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
    }
    Ok(false)
}
