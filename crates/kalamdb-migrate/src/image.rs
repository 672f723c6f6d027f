//! What a migration reads, held in memory: the raw catalog records, G1's `conf/` files and
//! the data column families. Steps are pure functions of an image, so a plan and a resumed
//! run compute exactly what an uninterrupted run writes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::Path;

use kalamdb_sql::SYSTEM_COLUMN_FAMILIES;
use kalamdb_store::{DEFAULT_CF, Storage, TableCf};
use serde::{Deserialize, Serialize};

use super::infer::{Inferred, infer_rows};
use kalamdb_core::{CoreError, Result};

/// G1's four CatalogStore column families, in the order of their G2 names.
pub const G1_COLUMN_FAMILIES: [(&str, &str); 4] = [
    ("system_table:users", "system_users"),
    ("system_table:live_queries", "system_live_queries"),
    ("system_table:storage_locations", "system_storage_locations"),
    ("system_table:jobs", "system_jobs"),
];

/// Added in G2 and never written.
pub const COUNTERS_CF: &str = "user_table_counters";

/// Keys in the default column family that belong to kalamdb (the marker, the migration
/// journal and history).
pub const KALAMDB_KEY_PREFIX: &str = "kalamdb:";

/// A record that a migration cannot convert.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Invalid {
    /// The column family, or `conf` for a G1 file.
    pub column_family: String,
    /// The key, or the file's path under `conf/`.
    pub key: String,
    pub reason: String,
}

/// One write a step makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    CreateCf(String),
    Put {
        cf: String,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        cf: String,
        key: String,
    },
}

/// A data column family.
#[derive(Debug, Clone)]
pub struct DataCf {
    pub cf: TableCf,
    pub empty: bool,
    /// Columns inferred from the rows, for tables that have no schema.
    pub inferred: Option<Inferred>,
}

/// The migration's view of a directory.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Every column family's name.
    pub all_cfs: BTreeSet<String>,
    /// Raw records of the catalog column families (G1's and the seven system ones).
    pub catalog: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// `kalamdb:*` keys of the default column family.
    pub kalamdb_keys: BTreeMap<String, Vec<u8>>,
    /// The data column families, by name.
    pub data: BTreeMap<String, DataCf>,
    /// G1's `conf/` files by path relative to `conf/`; `None` when there is no `conf/`.
    pub conf: Option<BTreeMap<String, Vec<u8>>>,
    /// Catalog keys that are not UTF-8.
    pub bad_keys: Vec<Invalid>,
}

/// Whether a column family holds catalog records a migration converts.
pub fn is_catalog_cf(name: &str) -> bool {
    SYSTEM_COLUMN_FAMILIES.contains(&name) || G1_COLUMN_FAMILIES.iter().any(|(g1, _)| *g1 == name)
}

impl Image {
    /// Reads the catalog, the `conf/` files and the data column families' names and
    /// emptiness. Row data is not read; see [`Image::infer_tables`].
    pub fn load(storage: &Storage, rocksdb_dir: &Path) -> Result<Image> {
        let mut image = Image {
            all_cfs: storage.column_families()?.into_iter().collect(),
            ..Image::default()
        };
        for name in image.all_cfs.clone() {
            if is_catalog_cf(&name) {
                let mut records = BTreeMap::new();
                let mut bad = Vec::new();
                storage.scan_prefix(&name, b"", |k, v| {
                    match std::str::from_utf8(k) {
                        Ok(key) => {
                            records.insert(key.to_string(), v.to_vec());
                        }
                        Err(_) => bad.push(Invalid {
                            column_family: name.clone(),
                            key: String::from_utf8_lossy(k).into_owned(),
                            reason: "the key is not UTF-8".into(),
                        }),
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
                image.catalog.insert(name.clone(), records);
                image.bad_keys.extend(bad);
            } else if let Some(cf) = TableCf::parse(&name) {
                let empty = storage.is_cf_empty(&name)?;
                image.data.insert(
                    name.clone(),
                    DataCf {
                        cf,
                        empty,
                        inferred: None,
                    },
                );
            }
        }
        storage.scan_prefix(DEFAULT_CF, KALAMDB_KEY_PREFIX.as_bytes(), |k, v| {
            image
                .kalamdb_keys
                .insert(String::from_utf8_lossy(k).into_owned(), v.to_vec());
            Ok(ControlFlow::Continue(()))
        })?;
        image.conf = read_conf(&rocksdb_dir.join("conf"))?;
        Ok(image)
    }

    /// Infers the columns of every non-empty data column family whose table has no schema
    /// rows yet. Reads those tables' rows; the other tables' rows are never read.
    pub fn infer_tables(&mut self, storage: &Storage) -> Result<()> {
        let schemas = self.records("system_table_schemas");
        let with_schema: BTreeSet<String> = schemas
            .keys()
            .filter_map(|k| k.strip_prefix("schema:"))
            .filter_map(|rest| {
                rest.rsplit_once(':')
                    .map(|(table_id, _)| table_id.to_string())
            })
            .collect();
        for (name, data) in self.data.iter_mut() {
            let table_id = format!("{}:{}", data.cf.namespace, data.cf.table);
            if data.empty || with_schema.contains(&table_id) {
                continue;
            }
            data.inferred = Some(infer_rows(storage, name, data.cf.kind)?);
        }
        Ok(())
    }

    /// The records of a catalog column family (empty if it does not exist).
    pub fn records(&self, cf: &str) -> &BTreeMap<String, Vec<u8>> {
        static EMPTY: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        self.catalog.get(cf).unwrap_or(&EMPTY)
    }

    /// Applies a step's writes to the image, as [`super::apply`] applies them to the disk.
    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::CreateCf(name) => {
                    self.all_cfs.insert(name.clone());
                    if is_catalog_cf(name) {
                        self.catalog.entry(name.clone()).or_default();
                    }
                }
                Op::Put { cf, key, value } if cf == DEFAULT_CF => {
                    self.kalamdb_keys.insert(key.clone(), value.clone());
                }
                Op::Put { cf, key, value } => {
                    self.catalog
                        .entry(cf.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Op::Delete { cf, key } if cf == DEFAULT_CF => {
                    self.kalamdb_keys.remove(key);
                }
                Op::Delete { cf, key } => {
                    if let Some(records) = self.catalog.get_mut(cf) {
                        records.remove(key);
                    }
                }
            }
        }
    }
}

/// Every file under `conf/`, by relative path with `/` separators. A schema folder
/// (`{ns}/schemas/{table}`) is also listed as `{ns}/schemas/{table}/`: it declares a table even
/// when it holds no file.
fn read_conf(root: &Path) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    if !root.is_dir() {
        return Ok(None);
    }
    let relative = |path: &Path| -> Vec<String> {
        path.strip_prefix(root)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| CoreError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CoreError::io(&dir, e))?;
            let path = entry.path();
            let rel = relative(&path);
            if path.is_dir() {
                if rel.len() == 3 && rel[1] == "schemas" {
                    files.entry(format!("{}/", rel.join("/"))).or_default();
                }
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
                files.insert(rel.join("/"), bytes);
            }
        }
    }
    Ok(Some(files))
}
