//! Whether a batch file no manifest entry records may be removed by `--repair`: the table and
//! user whose directory holds it are found, then [`kalamdb_core::leftovers::rows_all_hot`]
//! decides.

use std::path::Path;

use kalamdb_store::TableKind;

use kalamdb_core::leftovers::rows_all_hot;
use kalamdb_core::{Engine, Result};

/// Whether every row of `file` (found in one of a table's batch directories) is in the hot
/// tier of that table, for the user whose directory it is in.
pub(crate) fn rows_all_hot_in_place(engine: &Engine, file: &Path) -> Result<bool> {
    let Some(dir) = file.parent() else {
        return Ok(false);
    };
    for record in engine.catalog().tables(None)? {
        let Some(kind) = record.table_type.kind() else {
            continue;
        };
        if kind == TableKind::Stream {
            continue;
        }
        let Ok(template) = engine.catalog().storage_template(&record, kind) else {
            continue;
        };
        for (user, d) in template.existing_dirs(engine.data_dir())? {
            if d == dir {
                let table = (record.namespace.as_str(), record.table_name.as_str());
                return rows_all_hot(engine, kind, table, &user, file);
            }
        }
    }
    Ok(false)
}
