//! Whether a batch file no manifest entry records may be removed by `--repair`: the table and
//! user whose directory holds it are found, then [`kalamdb_core::leftovers::rows_all_hot`]
//! decides.

use kalamdb_store::TableKind;

use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::paths::batch_files;
use kalamdb_core::leftovers::rows_all_hot;
use kalamdb_core::{Engine, Result};

/// The batch file named `object` (as verify reported it: a path, or an `s3://` URL) if every
/// one of its rows is in the hot tier of the table, for the user whose directory holds it.
pub(crate) fn removable(engine: &Engine, object: &str) -> Result<Option<ColdPath>> {
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
        for (user, dir) in template.existing_dirs(engine.data_dir())? {
            let Some(file) = batch_files(&dir)?
                .into_iter()
                .find(|f| f.to_string() == object)
            else {
                continue;
            };
            let table = (record.namespace.as_str(), record.table_name.as_str());
            return Ok(rows_all_hot(engine, kind, table, &user, &file)?.then_some(file));
        }
    }
    Ok(None)
}
